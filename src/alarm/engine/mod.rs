//! The alarm engine: feeds readings and the clock through the pure rule evaluation
//! ([`super::condition`]) and lifecycle ([`super::lifecycle`]), applies
//! acknowledgements and shelvings, groups alarms into power incidents, and collects
//! every change as store rows ([`Changes`]). It does no I/O itself: the store writer
//! commits the changes in the same transaction as the readings that caused them.
//!
//! Its parts: `resume` builds the engine from the configuration and what the store
//! saved; `evaluate` runs one reading through the rules of its sensor; `timers` handles
//! what time alone decides (stale sensors, delays, maintenance windows and shelvings
//! running out); `requests` carries out acknowledgements and shelvings; `test_alarm`
//! raises and completes alarm tests; `changes` turns all of it into the rows of the
//! change set.

use std::time::Duration;

use crate::config::rules::Rule;
use crate::model::TimestampMs;
use crate::model::changes::Changes;

use super::condition::{RateWindow, RuleState};
use super::lifecycle::{Alarm, AlarmId};
use super::suppress::Shelf;

mod changes;
mod evaluate;
mod requests;
mod resume;
mod test_alarm;
mod timers;

/// The longest a shelving may last.
pub const MAX_SHELVE: Duration = Duration::from_secs(7 * 24 * 3600);

pub struct Engine {
    rules: Vec<Rule>,
    sensor_names: Vec<String>,
    /// A discrete sensor's names of its 0 and 1 (`None` for a measurement).
    state_names: Vec<Option<[String; 2]>>,
    asset_of_sensor: Vec<String>,
    maintenance: Vec<crate::config::rules::Maintenance>,
    tz: jiff::tz::TimeZone,
    states: Vec<RuleState>,
    /// Rule → family index; family → its open alarm.
    family_of: Vec<usize>,
    open: Vec<Option<Alarm>>,
    /// Open alarm tests (`cryowatch test-alarm`): outside the rule families, so a test
    /// never holds back or absorbs a real alarm.
    tests: Vec<Option<Alarm>>,
    /// Non-combined rules per sensor, and the combined rules each rule feeds.
    by_sensor: Vec<Vec<usize>>,
    combos_of: Vec<Vec<usize>>,
    stale_rules: Vec<usize>,
    /// `no_event` rules, decided by the clock; per rule, when its sensor last read the
    /// expected value (or, when the history read back at a restart does not hold it,
    /// the oldest reading there: the event has not come since then at least).
    event_rules: Vec<usize>,
    last_event: Vec<Option<TimestampMs>>,
    last_good: Vec<Option<TimestampMs>>,
    last_value: Vec<Option<f64>>,
    /// Time of the newest reading evaluated, per sensor.
    last_eval: Vec<Option<TimestampMs>>,
    /// Nobody can expect a reading from before the engine started.
    started: TimestampMs,
    rate: Vec<Option<RateWindow>>,
    shelves: Vec<Shelf>,
    suppressed: Vec<Option<String>>,
    /// Per maintenance window: open now, and when to look again.
    window_open: Vec<bool>,
    window_next: Vec<TimestampMs>,
    /// Sensor → the maintenance windows that name it; sensor → alarm families shown under it.
    windows_of: Vec<Vec<usize>>,
    families_of: Vec<Vec<usize>>,
    /// Sensors whose suppression must be worked out again on the next tick.
    suppression_dirty: Vec<usize>,
    next_alarm: AlarmId,
    next_shelf: i64,
    /// The open power incident: the id of the alarm that opened it.
    incident: Option<AlarmId>,
    out: Changes,
    dirty_rules: Vec<usize>,
    /// Readings evaluated.
    pub evaluated: u64,
}
