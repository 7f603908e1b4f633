//! Where readings are kept: the embedded SQLite store and its writer thread.

pub mod embedded;
pub mod writer;

pub use embedded::{Row, Store, StoreError, StoredReading};
pub use writer::{Batch, StoreHandle, WriterJoin};
