//! Where alarms become pages.
//!
//! - [`channel`]: the message and delivery result every channel speaks.
pub mod acklink;
pub mod channel;
pub mod channels;
pub mod dispatcher;
pub mod escalation;
pub mod inbound;
pub mod incident;
pub mod message;
pub mod modem;
pub mod oncall;
pub mod smtp;
pub mod testpage;
pub mod twilio;
pub mod webhook;
