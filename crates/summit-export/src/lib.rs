//! summit-export (work in progress).
