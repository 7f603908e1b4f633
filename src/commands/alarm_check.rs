//! `alarm-check`: the physical alarm check (AABB). `start` records a running check of a
//! sensor and shelves it for `[alarm_check] max_duration` under the reason
//! `alarm check N by USER`: its alarms are raised and stored as usual, and paged only to
//! the person doing the check (the `[[contact]]` whose id is `--by`, once per alarm, no
//! escalation), or to nobody with `--silent` or when `--by` names no contact. `finish` reads back the first stored reading at
//! which each high and low rule's condition held (see
//! [`crate::store::quality::alarm_check`]), records the reference thermometer's reading,
//! signed with the finisher's password, says whether it passed, and ends the check's
//! shelving. `list` shows every
//! check; a check past its deadline ends as abandoned whenever checks are started,
//! finished or listed.

use std::path::Path;

use super::{CommandError, load_for_reading, read_password};
use crate::config::{CheckedRule, Config, checked_rules};
use crate::escape::control;
use crate::model::{format_rfc3339, now_ms};
use crate::pipeline::control::{ControlError, Request};
use crate::store::Store;
use crate::store::quality::alarm_check::{AlarmCheck, Finish, Trigger, shelving_reason};

/// The high and low rules that raise alarms of the written sensor of `cfg` named `id`.
fn sensor_rules(cfg: &Config, id: &str) -> Result<Vec<CheckedRule>, CommandError> {
    let bad = CommandError::BadInput;
    let Some(si) = cfg.sensors.iter().position(|s| s.id == id && !s.source.is_own()) else {
        return Err(bad(format!("--sensor: unknown sensor {id:?}")));
    };
    let rules = checked_rules(&cfg.sensors, &cfg.rules, si);
    if rules.is_empty() {
        return Err(bad(format!("--sensor: sensor {id:?} has no high or low rule to check")));
    }
    Ok(rules)
}

fn print_abandoned(abandoned: &[AlarmCheck]) {
    for a in abandoned {
        println!(
            "alarm check {} of {} was not finished by {}: abandoned",
            a.id,
            a.sensor,
            format_rfc3339(a.deadline)
        );
    }
}

/// `alarm-check start`: records a running check of `sensor` by `by` and shelves the
/// sensor for `[alarm_check] max_duration`. Bad input (exit 2): an unknown sensor, one
/// with no high or low rule, a check of it already running.
pub fn start(config: &Path, sensor: &str, by: &str, silent: bool) -> Result<(), CommandError> {
    let bad = CommandError::BadInput;
    let by = crate::pipeline::control::checked_by(by).map_err(|e| bad(format!("--by: {e}")))?;
    let cfg = load_for_reading(config)?;
    let rules = sensor_rules(&cfg, sensor)?;
    let now = now_ms();
    let max = cfg.alarm_check.max_duration;
    let deadline = crate::model::later(now, max);
    let started = {
        let mut store = Store::open(&cfg.store.path)?;
        let abandoned = store.abandon_overdue_alarm_checks(now)?;
        print_abandoned(&abandoned);
        store.start_alarm_check(sensor, by, silent, cfg.alarm_check.tolerance, deadline, now)?
    };
    let check = started.map_err(|running| {
        bad(format!(
            "alarm check {} of {sensor} by {} is running since {}; finish it first",
            running.id,
            control(&running.started_by),
            format_rfc3339(running.started_at)
        ))
    })?;
    let reason = shelving_reason(check.id, by);
    match crate::pipeline::control::submit(
        &cfg,
        Request::Shelve {
            sensor,
            duration: max,
            by,
            reason: &reason,
        },
    ) {
        Ok(_) => {}
        Err(ControlError::Refused(e) | ControlError::Failed(e)) => {
            return Err(CommandError::Failed(format!(
                "alarm check {} of {sensor} is recorded, but its paging could not be held: {e}",
                check.id
            )));
        }
    }
    let names: Vec<String> = rules
        .iter()
        .map(|(id, t, high)| format!("{id} ({} {t})", if *high { ">" } else { "<" }))
        .collect();
    let pages = if silent {
        "nobody (silent)".to_string()
    } else if cfg.notify.contacts.iter().any(|c| c.id == by) {
        format!("{} only, once per alarm", control(by))
    } else {
        format!("nobody ({} is no [[contact]])", control(by))
    };
    println!(
        "alarm check {} of {sensor} started by {}{}: rules {}; pages go to {pages} until {} (tolerance {})",
        check.id,
        control(by),
        if silent { " (silent)" } else { "" },
        names.join(", "),
        format_rfc3339(deadline),
        check.tolerance
    );
    Ok(())
}

/// `alarm-check finish`: records the running check of `sensor` with the reference
/// thermometer's reading, signed by dashboard user `by` (password from standard input).
/// Bad input (exit 2): no running check, a reference that is not a number, no rule that
/// triggered since the check started. A wrong password records nothing (exit 1). A
/// check that fails is recorded and exits 1.
pub fn finish(config: &Path, sensor: &str, reference: f64, by: &str) -> Result<(), CommandError> {
    let bad = CommandError::BadInput;
    if !reference.is_finite() {
        return Err(bad("--reference: not a number".into()));
    }
    let cfg = load_for_reading(config)?;
    let rules = sensor_rules(&cfg, sensor)?;
    let now = now_ms();
    let mut store = Store::open(&cfg.store.path)?;
    print_abandoned(&store.abandon_overdue_alarm_checks(now)?);
    let Some(check) = store.running_alarm_check(sensor)? else {
        return Err(bad(format!("no alarm check of {sensor} is running")));
    };
    let mut triggers = Vec::new();
    for (rule, threshold, high) in &rules {
        if let Some((t, value)) = store.first_reading_beyond(sensor, check.started_at, now, *threshold, *high)? {
            triggers.push(Trigger {
                rule: rule.clone(),
                threshold: *threshold,
                value,
                t,
            });
        }
    }
    if triggers.is_empty() {
        return Err(bad(format!(
            "no high or low rule of {sensor} triggered since alarm check {} started at {}; take the probe past a threshold first",
            check.id,
            format_rfc3339(check.started_at)
        )));
    }
    let password = read_password(&format!(
        "password of {by} (signing alarm check {} of {sensor}, reference {reference}): ",
        check.id
    ))?;
    let signer = store
        .signer(by, &password, &format!("alarm check {}", check.id), now_ms())?
        .map_err(|e| CommandError::Failed(e.to_string()))?;
    let done = store
        .finish_alarm_check(
            &signer,
            &Finish {
                check: check.id,
                reference,
                triggers: &triggers,
            },
            now_ms(),
        )?
        .ok_or_else(|| CommandError::Failed(format!("alarm check {} is no longer running", check.id)))?;
    for t in &done.triggers {
        println!(
            "rule {} (threshold {}) triggered at {} on {}",
            t.rule,
            t.threshold,
            t.value,
            format_rfc3339(t.t)
        );
    }
    let line = format!(
        "alarm check {} of {sensor} {}: reference {reference}, rule {}, difference {:+} (tolerance {}); signed by {} ({}) as \"alarm check\"",
        done.id,
        done.state.as_str(),
        done.rule.as_deref().unwrap_or("-"),
        done.difference.unwrap_or(f64::NAN),
        done.tolerance,
        control(done.printed_name.as_deref().unwrap_or("")),
        control(done.signed_by.as_deref().unwrap_or(""))
    );
    println!("{line}");
    let reason = shelving_reason(done.id, &done.started_by);
    match crate::pipeline::control::submit(
        &cfg,
        Request::EndShelving {
            sensor,
            reason: &reason,
        },
    ) {
        Ok(text) => println!("{text}: paging of {sensor} is back to normal"),
        Err(ControlError::Refused(e) | ControlError::Failed(e)) => eprintln!(
            "cryowatch: alarm check {} is recorded, but its shelving could not be ended ({e}); it runs out at {}",
            done.id,
            format_rfc3339(done.deadline)
        ),
    }
    match done.state {
        crate::store::quality::alarm_check::CheckState::Passed => Ok(()),
        _ => Err(CommandError::Failed(format!(
            "alarm check {} of {sensor} failed",
            done.id
        ))),
    }
}

/// `alarm-check list`: every check, oldest first, after ending the overdue ones.
pub fn list(config: &Path, json: bool) -> Result<(), CommandError> {
    let cfg = load_for_reading(config)?;
    let mut store = Store::open(&cfg.store.path)?;
    let abandoned = store.abandon_overdue_alarm_checks(now_ms())?;
    let checks = store.alarm_checks()?;
    if json {
        println!("{}", serde_json::to_value(&checks).unwrap_or_default());
        return Ok(());
    }
    print_abandoned(&abandoned);
    if checks.is_empty() {
        println!("no alarm check on record");
    }
    for a in &checks {
        println!(
            "{:>4} {:<24} {:<9} started {} by {:<16} reference {:<8} difference {}",
            a.id,
            control(&a.sensor),
            a.state.as_str(),
            format_rfc3339(a.started_at),
            control(&a.started_by),
            a.reference.map_or("-".into(), |r| r.to_string()),
            a.difference.map_or("-".into(), |d| format!("{d:+}"))
        );
    }
    Ok(())
}
