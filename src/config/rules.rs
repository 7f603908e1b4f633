//! `[[rule]]`: the checked rules the alarm engine runs on, their checks, and the default
//! rules each asset kind brings. Maintenance windows and test pages, checked in
//! `maintenance`, are re-exported here with the rest of the alarm vocabulary.
//!
//! Defaults: every sensor gets a `stale` and a `fault` rule; temperature sensors of a
//! cold-storage asset get a `high` rule (see [`DEFAULT_HIGH`]). A default is named
//! `<sensor>:<kind>` (e.g. `dewar-1.temp:high`); a written rule with that id replaces it
//! (`enabled = false` turns it off), and any written rule of the same kind on the same
//! sensor replaces it too.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use super::check::Checker;
use super::modbus::ModbusDevice;
use super::raw;
use super::sensor::{Asset, Sensor, SensorSource};
use super::ups::UpsDevice;

pub use super::every::{MonthDay, Months};
pub use super::maintenance::{Maintenance, TEST_PAGE_GRACE, TestSchedule, Window};
pub use crate::model::Severity;

/// What a rule watches.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// Value above `threshold`; clears at or below `threshold - hysteresis`.
    High { threshold: f64, hysteresis: f64 },
    /// Value below `threshold`; clears at or above `threshold + hysteresis`.
    Low { threshold: f64, hysteresis: f64 },
    /// Change over `window` faster than `per_minute` degrees (units) per minute.
    Rate {
        per_minute: f64,
        window: Duration,
        rising: bool,
        hysteresis: f64,
    },
    /// No good reading for `after`.
    Stale { after: Duration },
    /// The probe reports a fault (a sentinel value, quality `sensor_fault`).
    Fault,
    /// A discrete value equals `equals`.
    State { equals: f64 },
    /// A robust line through the readings of the last `window` reaches `threshold`
    /// (going up when `rising`) within `horizon` ([`crate::alarm::forecast`]).
    Forecast {
        threshold: f64,
        rising: bool,
        window: Duration,
        horizon: Duration,
    },
    /// The sensor has not read `equals` (an expected event: a fill) for `within`.
    NoEvent { equals: f64, within: Duration },
    /// Every one of these rules' conditions holds (indices into `Config::rules`).
    All(Vec<usize>),
    /// At least one of these rules' conditions holds.
    Any(Vec<usize>),
}

impl Condition {
    pub fn kind(&self) -> &'static str {
        match self {
            Condition::High { .. } => "high",
            Condition::Low { .. } => "low",
            Condition::Rate { .. } => "rate",
            Condition::Stale { .. } => "stale",
            Condition::Fault => "fault",
            Condition::State { .. } => "state",
            Condition::Forecast { .. } => "forecast",
            Condition::NoEvent { .. } => "no_event",
            Condition::All(_) => "all",
            Condition::Any(_) => "any",
        }
    }
}

/// Where a rule came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// `[[rule]]` number `index` in the file.
    Written(usize),
    /// A default; the text says why it applies.
    Default(String),
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    /// The sensor read (for `all`/`any`: the sensor the alarm is shown under).
    pub sensor: usize,
    pub condition: Condition,
    pub severity: Severity,
    /// How long the condition must hold before the alarm is raised.
    pub delay: Duration,
    pub escalation: Option<String>,
    /// Stays active after return to normal until acknowledged.
    pub latching: bool,
    /// False: only a condition for `all`/`any` rules.
    pub raises: bool,
    /// Opens a site power incident.
    pub power_incident: bool,
    /// A later stage of its family at the same severity (the 30-day calibration warning
    /// after the 90-day one): when it begins to hold while the family's alarm is
    /// acknowledged, the alarm is raised again and paged.
    pub restage: bool,
    pub origin: Origin,
}

impl Rule {
    /// Rules in the same family on the same sensor share one alarm: the more severe one
    /// upgrades it instead of raising a second. A sensor's `stale` and `fault` rules are
    /// one family.
    pub fn family(&self) -> String {
        match &self.condition {
            Condition::Rate { rising, .. } => {
                format!("{}/rate/{}", self.sensor, if *rising { "rising" } else { "falling" })
            }
            Condition::State { equals } => format!("{}/state/{equals}", self.sensor),
            Condition::All(_) | Condition::Any(_) => format!("rule/{}", self.id),
            // A probe that breaks usually both goes silent and reports a fault: one
            // alarm, whichever comes first, joined by the other.
            Condition::Stale { .. } | Condition::Fault => format!("{}/signal", self.sensor),
            c => format!("{}/{}", self.sensor, c.kind()),
        }
    }
}

/// Default high-temperature rule per asset kind: (kind, threshold °C, severity, delay).
/// The delay lets a door opening or an LN2 fill pass without an alarm.
pub const DEFAULT_HIGH: &[(&str, f64, Severity, Duration)] = &[
    ("ln2_dewar", -150.0, Severity::Critical, Duration::from_secs(120)),
    ("freezer_minus150", -135.0, Severity::Alarm, Duration::from_secs(300)),
    ("freezer_minus80", -70.0, Severity::Alarm, Duration::from_secs(600)),
    ("freezer_minus20", -10.0, Severity::Alarm, Duration::from_secs(600)),
    ("refrigerator", 8.0, Severity::Alarm, Duration::from_secs(600)),
];
const DEFAULT_HYSTERESIS: f64 = 2.0;
const DEFAULT_FAULT_DELAY: Duration = Duration::from_secs(60);
/// `stale_after` of an MQTT sensor that names none.
const DEFAULT_MQTT_STALE: Duration = Duration::from_secs(300);

/// How long without a good reading before a sensor is stale: its `stale_after`, else
/// three poll intervals of its device (at least 30 s), else 5 minutes for pushed data.
pub fn stale_after(sensor: &Sensor, devices: &[ModbusDevice], ups: &[UpsDevice]) -> Duration {
    if let Some(d) = sensor.stale_after {
        return d;
    }
    let polled = |interval: Duration| (interval * 3).max(Duration::from_secs(30));
    match &sensor.source {
        SensorSource::Modbus(p) => devices
            .get(p.device)
            .map(|d| polled(d.poll_interval))
            .unwrap_or(DEFAULT_MQTT_STALE),
        SensorSource::Ups(p) => ups
            .iter()
            .find(|u| u.id == p.ups)
            .map(|u| polled(u.poll_interval))
            .unwrap_or(DEFAULT_MQTT_STALE),
        SensorSource::Serial(p) if p.query.is_some() => polled(p.poll_interval),
        // Fed by events only: as long as pushed data.
        SensorSource::Mqtt(_) | SensorSource::Serial(_) => DEFAULT_MQTT_STALE,
        // Written after every look at the record, at least once a minute; a full
        // verification of years of readings may hold it back for a while.
        SensorSource::Monitor | SensorSource::Security => Duration::from_secs(3600),
        // Written at least hourly (crate::calibration): three missed hours are stale.
        SensorSource::Calibration(_) => Duration::from_secs(3 * 3600),
    }
}

/// What rules refer to: the checked sensors, assets and devices, and the declared
/// escalation ids.
pub(super) struct RuleInputs<'a> {
    pub sensors: &'a [Sensor],
    pub assets: &'a [Asset],
    pub devices: &'a [ModbusDevice],
    pub ups: &'a [UpsDevice],
    /// Sensor id → index.
    pub sensor_idx: HashMap<&'a str, usize>,
    pub escalations: &'a HashSet<&'a str>,
}

/// Checks `[[rule]]` and adds the defaults the written rules leave in place.
pub(super) fn rules(c: &mut Checker, raw: &[raw::Rule], inp: &RuleInputs) -> Vec<Rule> {
    c.unique_ids("rule", raw.iter().map(|r| r.id.as_str()));
    let written_idx: HashMap<&str, usize> = raw.iter().enumerate().map(|(i, r)| (r.id.as_str(), i)).collect();

    // First pass: every written rule that is enabled, in file order; `all`/`any` children
    // are resolved once the indices of the final list are known.
    let mut rules: Vec<Rule> = Vec::new();
    let mut combos: Vec<(usize, usize, bool)> = Vec::new(); // (rule index, raw index, all?)
    for (i, r) in raw.iter().enumerate() {
        let p = format!("rule[{i}]");
        if let Some(rule) = written_rule(c, &p, i, r, inp) {
            if matches!(rule.condition, Condition::All(_) | Condition::Any(_)) {
                combos.push((rules.len(), i, matches!(rule.condition, Condition::All(_))));
            }
            if r.enabled != Some(false) {
                rules.push(rule);
            }
        }
    }
    let by_id: HashMap<String, usize> = rules.iter().enumerate().map(|(i, r)| (r.id.clone(), i)).collect();
    for (ri, i, all) in combos {
        let r = &raw[i];
        let p = format!("rule[{i}]");
        if r.enabled == Some(false) {
            continue;
        }
        let mut children = Vec::new();
        for (j, child) in r.of.iter().enumerate() {
            match by_id.get(child.as_str()) {
                Some(&ci) if matches!(rules[ci].condition, Condition::All(_) | Condition::Any(_)) => c.err(
                    format!("{p}.of[{j}]"),
                    format!("rule {child:?} is itself all/any; combine the underlying rules directly"),
                ),
                Some(&ci) => children.push(ci),
                None if written_idx.contains_key(child.as_str()) => c.err(
                    format!("{p}.of[{j}]"),
                    format!("rule {child:?} is disabled (enabled = false)"),
                ),
                None => c.err(format!("{p}.of[{j}]"), format!("unknown rule {child:?}")),
            }
        }
        if r.sensor.is_none()
            && let Some(&first) = children.first()
        {
            rules[ri].sensor = rules[first].sensor;
        }
        rules[ri].condition = if all {
            Condition::All(children)
        } else {
            Condition::Any(children)
        };
    }

    // Defaults, unless a written rule (enabled or not) takes their id or their kind.
    let written: HashSet<(String, &str)> = raw
        .iter()
        .filter_map(|r| Some((r.sensor.clone()?, r.kind.as_str())))
        .collect();
    for (si, s) in inp.sensors.iter().enumerate() {
        let Some(asset) = inp.assets.get(s.asset) else { continue };
        if s.source.is_own() {
            // The monitor's own sensor has its one rule (`monitor`), nothing to go stale.
            continue;
        }
        let mut defaults = vec![
            (
                "stale",
                Condition::Stale {
                    after: stale_after(s, inp.devices, inp.ups),
                },
                Severity::Alarm,
                Duration::ZERO,
                "every sensor".to_string(),
            ),
            (
                "fault",
                Condition::Fault,
                Severity::Alarm,
                DEFAULT_FAULT_DELAY,
                "every sensor".to_string(),
            ),
        ];
        if matches!(&s.source, SensorSource::Serial(p) if p.query.is_none()) && s.stale_after.is_none() {
            // Fed by events only ([[serial.event]]): a fill every few hours is not a
            // silent sensor. A written `stale` rule or `stale_after` still applies.
            defaults.retain(|d| d.0 != "stale");
        }
        if s.quantity == "temperature"
            && let Some((kind, threshold, severity, delay)) = DEFAULT_HIGH.iter().find(|d| d.0 == asset.kind)
        {
            defaults.insert(
                0,
                (
                    "high",
                    Condition::High {
                        threshold: *threshold,
                        hysteresis: DEFAULT_HYSTERESIS,
                    },
                    *severity,
                    *delay,
                    format!("asset {} is a {kind}", asset.id),
                ),
            );
        }
        for (kind, condition, severity, delay, why) in defaults {
            let id = format!("{}:{kind}", s.id);
            if written_idx.contains_key(id.as_str()) || written.contains(&(s.id.clone(), kind)) {
                continue;
            }
            rules.push(Rule {
                id,
                sensor: si,
                condition,
                severity,
                delay,
                escalation: None,
                latching: false,
                raises: true,
                power_incident: false,
                restage: false,
                origin: Origin::Default(why),
            });
        }
    }
    rules
}

/// Checks written rule `i` at key path `p`; an `all`/`any` rule comes back without its
/// children, which [`rules`] resolves once every rule's index is known.
fn written_rule(c: &mut Checker, p: &str, i: usize, r: &raw::Rule, inp: &RuleInputs) -> Option<Rule> {
    let kind = c.one_of(
        &format!("{p}.kind"),
        &r.kind,
        &[
            "high", "low", "rate", "stale", "fault", "state", "forecast", "no_event", "all", "any",
        ],
    );
    let combo = matches!(kind, Some("all" | "any"));
    let sensor = match &r.sensor {
        Some(s) => match inp.sensor_idx.get(s.as_str()) {
            Some(&si) => Some(si),
            None => {
                c.err(format!("{p}.sensor"), format!("unknown sensor {s:?} (rule {:?})", r.id));
                None
            }
        },
        None if combo => Some(0),
        None => {
            c.err(
                format!("{p}.sensor"),
                format!("missing: a {:?} rule reads one sensor", r.kind),
            );
            None
        }
    };
    let need = |c: &mut Checker, key: &str, v: Option<f64>, what: &str| -> Option<f64> {
        match v {
            Some(x) if x.is_finite() => Some(x),
            Some(x) => {
                c.err(format!("{p}.{key}"), format!("must be a finite number, found {x}"));
                None
            }
            None => {
                c.err(
                    format!("{p}.{key}"),
                    format!("missing: a {:?} rule needs {what}", r.kind),
                );
                None
            }
        }
    };
    let hysteresis = match r.hysteresis {
        Some(h) if h < 0.0 || !h.is_finite() => {
            c.err(
                format!("{p}.hysteresis"),
                format!("must be zero or positive, found {h}"),
            );
            0.0
        }
        Some(h) => h,
        None => 0.0,
    };
    let allowed: &[&str] = match kind {
        Some("high" | "low") => &["threshold", "hysteresis"],
        Some("rate") => &["threshold", "hysteresis", "window", "direction"],
        Some("forecast") => &["threshold", "window", "direction", "horizon"],
        Some("no_event") => &["equals", "within"],
        Some("state") => &["equals"],
        Some("all" | "any") => &["of"],
        _ => &[],
    };
    for (key, given) in [
        ("threshold", r.threshold.is_some()),
        ("hysteresis", r.hysteresis.is_some()),
        ("window", r.window.is_some()),
        ("direction", r.direction.is_some()),
        ("equals", r.equals.is_some()),
        ("horizon", r.horizon.is_some()),
        ("within", r.within.is_some()),
        ("of", !r.of.is_empty()),
    ] {
        if given && kind.is_some() && !allowed.contains(&key) {
            c.err(format!("{p}.{key}"), format!("does not apply to kind = {:?}", r.kind));
        }
    }
    let condition = (|| {
        Some(match kind? {
            "high" => Condition::High {
                threshold: need(c, "threshold", r.threshold, "a threshold")?,
                hysteresis,
            },
            "low" => Condition::Low {
                threshold: need(c, "threshold", r.threshold, "a threshold")?,
                hysteresis,
            },
            "rate" => {
                let window = c.positive_duration(&format!("{p}.window"), r.window.as_deref(), Duration::from_secs(300));
                let rising = match r.direction.as_deref() {
                    None => Some(true),
                    Some(d) => c
                        .one_of(&format!("{p}.direction"), d, &["rising", "falling"])
                        .map(|d| d == "rising"),
                };
                let per_minute = need(c, "threshold", r.threshold, "a threshold (units per minute)")?;
                if per_minute <= 0.0 {
                    c.err(
                        format!("{p}.threshold"),
                        format!("a rate threshold is a speed and must be positive, found {per_minute}; use direction = \"falling\" for a fall"),
                    );
                }
                let rising = rising?;
                Condition::Rate {
                    per_minute,
                    window,
                    rising,
                    hysteresis,
                }
            }
            "stale" => {
                let s = &inp.sensors[sensor?];
                Condition::Stale {
                    after: stale_after(s, inp.devices, inp.ups),
                }
            }
            "forecast" => {
                let threshold = need(c, "threshold", r.threshold, "a threshold")?;
                super::trend::forecast(c, p, r, threshold)?
            }
            "no_event" => {
                let equals = need(c, "equals", r.equals, "equals = <value>")?;
                super::trend::no_event(c, p, r, equals)?
            }
            "fault" => Condition::Fault,
            "state" => Condition::State {
                equals: need(c, "equals", r.equals, "equals = <value>")?,
            },
            _ => {
                if r.of.len() < 2 {
                    c.err(
                        format!("{p}.of"),
                        format!(
                            "an {:?} rule combines at least two rules: of = [\"rule-a\", \"rule-b\"]",
                            r.kind
                        ),
                    );
                }
                Condition::All(Vec::new())
            }
        })
    })();
    let delay = match &r.delay {
        Some(d) => c.duration(&format!("{p}.delay"), d).unwrap_or_default(),
        None => Duration::ZERO,
    };
    let severity = match &r.severity {
        Some(s) => Severity::parse(s).or_else(|| {
            c.one_of(&format!("{p}.severity"), s, &["warning", "alarm", "critical"]);
            None
        }),
        None => Some(Severity::Alarm),
    };
    if let Some(e) = &r.escalation
        && !inp.escalations.contains(e.as_str())
    {
        c.err(format!("{p}.escalation"), format!("unknown escalation {e:?}"));
    }
    let (sensor, severity, condition) = (sensor?, severity?, condition?);
    // An all/any rule without `sensor` holds index 0 until its children are known;
    // there may be no sensor at all.
    let on_battery_point = matches!(
        inp.sensors.get(sensor).map(|s| &s.source),
        Some(SensorSource::Ups(u)) if u.variable == "on_battery"
    ) && !combo;
    let power_incident = match r.incident.as_deref() {
        Some(v) => c.one_of(&format!("{p}.incident"), v, &["power"]).is_some(),
        None => on_battery_point && matches!(condition, Condition::State { equals } if equals == 1.0),
    };
    Some(Rule {
        id: r.id.clone(),
        sensor,
        condition,
        severity,
        delay,
        escalation: r.escalation.clone(),
        latching: r.latching.unwrap_or(false),
        raises: r.raise.unwrap_or(true),
        power_incident,
        restage: false,
        origin: Origin::Written(i),
    })
}

#[cfg(test)]
mod tests {
    /// Found by fuzzing (fuzz/fuzz_targets/config_load.rs): an `all` rule without
    /// `sensor` in a file without sensors made `check` panic instead of listing problems.
    #[test]
    fn an_all_rule_in_a_file_without_sensors_is_a_problem_not_a_panic() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let file = dir.path().join("cryowatch.toml");
        std::fs::write(
            &file,
            "[site]\nname = \"lab\"\n\n[store]\npath = \"cw.db\"\n\n\
             [[rule]]\nid = \"both\"\nkind = \"all\"\nof = [\"a\", \"b\"]\n",
        )
        .expect("write the configuration");
        let problems = crate::config::load(&file).expect_err("the file is refused").problems;
        assert!(
            problems
                .iter()
                .any(|p| p.path == "rule[0].of[0]" && p.message.contains("unknown rule")),
            "{problems:?}"
        );
    }
}
