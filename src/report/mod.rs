//! What people read back out of the store: history exports, the status overview, the
//! InfluxDB mirror's state, and the auditor's asset report with its renderers.

pub mod alarms;
pub mod asset;
pub mod explain;
pub mod history;
pub mod indicators;
pub mod mirror;
pub mod render;
pub mod selftest;
pub mod status;
