//! Filled in by its peer tests.
