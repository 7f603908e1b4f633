//! Where alarms become pages.
//!
//! - [`channel`]: the message and delivery result every channel speaks.
pub mod channel;
pub mod dispatcher;
pub mod escalation;
pub mod message;
pub mod oncall;
