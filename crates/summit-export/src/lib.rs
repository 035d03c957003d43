//! summit-export (in progress): the output directory of a Summit run.
#![warn(missing_docs)]

mod error;
mod input;

pub use error::{ExportError, Result};
pub use input::{
    ClassInfo, DatasetInfo, ExportInput, LayerDesc, Overview, OverviewLayer, PatchGeometry,
    PatchSource, SkippedInput, Timings, WriteOptions,
};
