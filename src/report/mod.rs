//! What people read back out of the store: history exports and the status overview.

pub mod alarms;
pub mod explain;
pub mod history;
pub mod status;
