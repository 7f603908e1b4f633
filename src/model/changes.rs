//! The change set: alarms, their transitions, rule states (pending delays), shelvings,
//! alarm tests, answered requests and signed acknowledgements, as the alarm engine
//! produces them and the store persists them in the same transaction as the readings
//! that caused them; and what the engine resumes from after a start ([`Saved`]).

use serde::{Deserialize, Serialize};

use super::{AlarmState, Severity, TimestampMs};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlarmRow {
    pub id: i64,
    pub rule: String,
    pub sensor: String,
    pub asset: String,
    pub severity: Severity,
    pub state: AlarmState,
    pub raised_at: TimestampMs,
    pub since: TimestampMs,
    pub value: Option<f64>,
    pub latching: bool,
    /// Rule ids of the family whose condition holds, comma separated.
    pub firing: String,
    pub returned: bool,
    pub suppressed: Option<String>,
    pub incident: Option<i64>,
    pub acked_by: Option<String>,
    pub acked_at: Option<TimestampMs>,
    pub ack_comment: Option<String>,
    pub ack_path: Option<String>,
    pub cleared_at: Option<TimestampMs>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventRow {
    pub t: TimestampMs,
    pub alarm: Option<i64>,
    pub rule: Option<String>,
    pub sensor: Option<String>,
    pub kind: String,
    pub state: String,
    pub severity: Option<String>,
    pub value: Option<f64>,
    pub actor: String,
    pub comment: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RuleStateRow {
    pub rule: String,
    pub cond: Option<bool>,
    pub since: Option<TimestampMs>,
    pub fired: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ShelfRow {
    pub id: i64,
    pub sensor: String,
    pub from: TimestampMs,
    pub until: TimestampMs,
    pub by: String,
    pub reason: String,
    pub ended: bool,
}

/// A request to the daemon, as queued by the command line.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestRow {
    pub id: i64,
    pub kind: String,
    pub args: serde_json::Value,
}

/// Everything one evaluation step changed, written in one go.
#[derive(Debug, Default, Clone)]
pub struct Changes {
    pub events: Vec<EventRow>,
    pub alarms: Vec<AlarmRow>,
    pub rule_states: Vec<RuleStateRow>,
    pub shelves: Vec<ShelfRow>,
    /// Requests answered: (id, ok, result text).
    pub answered: Vec<(i64, bool, String)>,
    /// Alarm tests started.
    pub tests: Vec<TestRow>,
    /// Acknowledgements signed: the store writes each signature with its acknowledgement.
    pub signed_acks: Vec<SignedAck>,
}

/// A person whose password was just checked: who signs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signer {
    pub user: String,
    pub printed_name: String,
}

/// An acknowledgement of `alarm` at `at` signed by `signer` (meaning `acknowledged`),
/// whose password the caller checked before it queued the acknowledgement.
#[derive(Debug, Clone, PartialEq)]
pub struct SignedAck {
    pub alarm: i64,
    pub at: TimestampMs,
    pub signer: Signer,
}

/// An alarm test: a synthetic excursion through a real rule, never a stored reading.
#[derive(Debug, Clone, PartialEq)]
pub struct TestRow {
    pub sensor: String,
    pub rule: String,
    pub alarm: i64,
    pub started_at: TimestampMs,
    pub by: String,
    pub value: f64,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
            && self.alarms.is_empty()
            && self.rule_states.is_empty()
            && self.shelves.is_empty()
            && self.answered.is_empty()
            && self.tests.is_empty()
            && self.signed_acks.is_empty()
    }
}

/// What the engine resumes from after a start.
#[derive(Debug, Default, Clone)]
pub struct Saved {
    pub open: Vec<AlarmRow>,
    pub rule_states: Vec<RuleStateRow>,
    pub shelves: Vec<ShelfRow>,
    pub max_alarm_id: i64,
    pub max_shelf_id: i64,
    /// Ids of the alarms that are tests.
    pub test_alarms: Vec<i64>,
}
