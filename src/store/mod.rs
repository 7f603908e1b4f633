//! Where readings and alarms are kept: the embedded SQLite store, its alarm tables, the
//! outboxes (pages to send, readings to mirror), and the writer thread that commits them.

pub mod acklinks;
pub mod alarms;
pub mod audit;
pub mod embedded;
pub mod figures;
pub mod flags;
pub mod indicators;
pub mod lock;
pub mod mirror;
pub mod mqtt_session;
pub mod outage;
pub mod outbox;
pub mod outputs;
pub mod planning;
pub mod quality;
pub mod retention;
pub mod users;

pub use embedded::{HistoryKey, Row, Store, StoreError, StoredReading};
