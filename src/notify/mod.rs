//! Where alarms become pages.
//!
//! - [`channel`]: the message and delivery result every channel speaks.
pub mod channel;
