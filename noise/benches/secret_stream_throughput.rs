//! Placeholder so the workspace manifest parses while the bench is written; replace freely.
fn main() {}
