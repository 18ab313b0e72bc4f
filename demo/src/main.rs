//! The article's experiment (filled in by the demo work).
fn main() {}
