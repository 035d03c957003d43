//! placeholder, replaced in step 3
fn main() {}
