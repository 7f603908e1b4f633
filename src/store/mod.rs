//! Where readings and alarms are kept: the embedded SQLite store, its alarm tables, and
//! the writer thread that commits both.

pub mod alarms;
pub mod embedded;
pub mod outbox;
pub mod writer;

pub use embedded::{Row, Store, StoreError, StoredReading};
pub use writer::{Batch, StoreHandle, WriterJoin};
