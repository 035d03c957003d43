//! The `summit` subcommands other than `serve`: `run` (the whole pipeline over the embedded
//! default, an ONNX model or InceptionV1 weights), `merge` (shard outputs into one) and
//! `compare` (two classes of an output, or several models over one dataset). Each is an
//! argument struct (clap) and a `run` function; the examples of the same names call them.
//!
//! The commands report errors with `anyhow` (a cause chain printed one cause a line, see
//! [`exit_with`]); the explorer's library ([`Explorer`](crate::Explorer), the server) has
//! [`CliError`](crate::CliError).

pub mod common;
pub mod compare_classes;
pub mod compare_models;
pub mod fashion;
pub mod inception;
pub mod merge;
pub mod onnx;

pub use common::{error_text, exit_with};

/// The embedded Fashion-MNIST test set (`t10k-*-idx*-ubyte.gz`): the repository's
/// `assets/fashion-mnist`, where this crate was built from.
pub const EMBEDDED_DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../assets/fashion-mnist");
