//! Where readings enter: each source turns device traffic into [`Reading`]s and hands
//! them to the store writer.
//!
//! [`Reading`]: crate::model::Reading

pub mod backoff;
pub mod modbus;
pub mod mqtt;
pub mod serial;
pub mod ups;
