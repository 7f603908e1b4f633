//! What people read back out of the store: history exports, the status overview and
//! the InfluxDB mirror's state.

pub mod alarms;
pub mod explain;
pub mod history;
pub mod mirror;
pub mod render;
pub mod status;
