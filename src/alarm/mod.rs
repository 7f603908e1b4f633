//! Where readings become alarms.
//!
//! - [`condition`]: rule evaluation, pure (threshold, rate, state, fault, combinations,
//!   delays).
//! - [`forecast`]: where a sensor is heading, pure (a robust line through a window,
//!   and when it reaches a threshold).
//! - [`lifecycle`]: the alarm state machine, pure (raise, upgrade, latch, acknowledge,
//!   clear).
//! - [`suppress`]: maintenance windows and shelving, pure.
//! - [`engine`]: runs them over readings and the clock and turns every change into the
//!   change set ([`crate::model::changes`]); the commit stage ([`crate::pipeline`])
//!   persists it with the readings that caused them.
//!
//! Nothing here reads or writes the store.

pub mod condition;
pub mod engine;
pub mod forecast;
pub mod lifecycle;
pub mod suppress;
