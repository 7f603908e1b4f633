//! Where readings become alarms.
//!
//! - [`condition`]: rule evaluation, pure (threshold, rate, state, fault, combinations,
//!   delays).
//! - [`lifecycle`]: the alarm state machine, pure (raise, upgrade, latch, acknowledge,
//!   clear).
//! - [`suppress`]: maintenance windows and shelving, pure.
//! - [`engine`]: runs them over readings and the clock and turns every change into store
//!   rows; the store writer commits them with the readings that caused them.
//! - [`control`]: acknowledge and shelve from the command line, against a running daemon
//!   or a stopped one.

pub mod condition;
pub mod control;
pub mod engine;
pub mod lifecycle;
pub mod suppress;
