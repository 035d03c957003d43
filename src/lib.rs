//! summit-rs: the workspace root package (examples, benches and integration tests live here).
