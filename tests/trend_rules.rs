//! `forecast` and `no_event` rules in the alarm engine over a real store, with time
//! under the test's control: a dewar whose supply is cut warms slowly; the forecast
//! warns hours before the threshold, naming the predicted time, while the high alarm
//! waits for the threshold itself; a fill that does not come within its time raises
//! `no_event`, which the fill clears and which a restart neither forgets nor postpones.

mod common;

use common::engine_rig::{MIN, Rig, T0};

const HOUR: i64 = 60 * MIN;

/// The open `no-fill` alarm, if any (the other sensors of the rig go stale meanwhile).
fn no_fill(rig: &Rig) -> Option<cryowatch::store::alarms::AlarmRow> {
    rig.open().into_iter().find(|a| a.rule == "no-fill")
}

const TREND_RULES: &str = r#"
[[rule]]
id = "warm"
sensor = "dewar-1.temp"
kind = "high"
threshold = -150.0
severity = "critical"
[[rule]]
id = "heading-warm"
sensor = "dewar-1.temp"
kind = "forecast"
threshold = -150.0
direction = "rising"
window = "2h"
horizon = "12h"
severity = "warning"
[[rule]]
id = "no-fill"
sensor = "dewar-1.lid"
kind = "no_event"
equals = 1
within = "36h"
severity = "alarm"
"#;

/// A supply-loss warming: steady at -192 °C for `steady` minutes, then rising
/// 0.02 °C a minute (1.2 °C an hour) with ±0.3 °C of noise and a lid opening.
fn temp(minute: i64, steady: i64) -> f64 {
    let base = if minute < steady {
        -192.0
    } else {
        -192.0 + 0.02 * (minute - steady) as f64
    };
    let noise = [0.3, -0.2, 0.1, -0.3, 0.2][(minute % 5) as usize];
    let lid = if minute == steady + 200 { 25.0 } else { 0.0 };
    base + noise + lid
}

#[test]
fn a_forecast_warns_hours_before_the_threshold_and_the_high_alarm_follows() {
    let mut rig = Rig::new(TREND_RULES);
    // Fills every 24 h keep no_event quiet: the lid reads 1 at each.
    let steady = 3 * 60;
    let mut warned_at = None;
    let mut alarmed_at = None;
    for m in 0..(steady + 45 * 60) {
        let t = T0 + m * MIN;
        if m % (24 * 60) == 0 {
            rig.read("dewar-1.lid", t, 1.0);
            rig.read("dewar-1.lid", t + 1000, 0.0);
        }
        rig.read("dewar-1.temp", t, temp(m, steady));
        let open: Vec<String> = rig.open().into_iter().map(|a| a.rule).collect();
        if warned_at.is_none() && open.iter().any(|r| r == "heading-warm") {
            warned_at = Some(m);
        }
        if open.iter().any(|r| r == "warm") {
            alarmed_at = Some(m);
            break;
        }
    }
    // -192 to -150 at 1.2 °C an hour: the threshold comes 35 h after the warming began.
    let warned = warned_at.expect("the forecast warned") - steady;
    let alarmed = alarmed_at.expect("the high alarm followed") - steady;
    assert!(
        (33 * 60..=36 * 60).contains(&alarmed),
        "the high alarm at {alarmed} min of warming"
    );
    // 12 h ahead (the horizon), give or take the fit's start-up and the noise.
    let ahead = alarmed - warned;
    assert!(
        (10 * 60..=13 * 60).contains(&ahead),
        "the forecast warned {ahead} min before the alarm (at {warned} min of warming)"
    );
    // Its raise names the predicted time; steady readings never warned.
    let raised = rig
        .events()
        .into_iter()
        .find(|e| e.rule.as_deref() == Some("heading-warm") && e.kind == "raised")
        .expect("the forecast's raise");
    assert!(
        raised.comment.starts_with("at this rate -150 in "),
        "{}",
        raised.comment
    );
    assert!(warned > 60, "no warning from the steady hours: {warned}");
    assert!(rig.kinds("no-fill").is_empty(), "{:?}", rig.kinds("no-fill"));
}

#[test]
fn a_fill_that_does_not_come_within_its_time_raises_no_event_until_it_comes() {
    let mut rig = Rig::new(TREND_RULES);
    rig.read("dewar-1.lid", T0, 1.0);
    rig.read("dewar-1.lid", T0 + MIN, 0.0);
    for h in 1..36 {
        rig.read("dewar-1.lid", T0 + h * HOUR, 0.0);
    }
    assert!(no_fill(&rig).is_none(), "35 h without a fill: not yet");
    rig.tick(T0 + 36 * HOUR + 1000);
    // Raised as of 36 h after the last fill, naming it.
    let alarm = no_fill(&rig).expect("no fill in 36 h");
    assert_eq!(alarm.since, T0 + 36 * HOUR);
    let raised = rig
        .events()
        .into_iter()
        .find(|e| e.rule.as_deref() == Some("no-fill") && e.kind == "raised")
        .expect("raised");
    assert!(
        raised.comment.starts_with("last read 1 at 2026-11-23T08:00:00"),
        "{}",
        raised.comment
    );

    // The fill clears it; the next one is due 36 h after it.
    rig.read("dewar-1.lid", T0 + 40 * HOUR, 1.0);
    assert!(no_fill(&rig).is_none(), "{:?}", rig.open());
    rig.read("dewar-1.lid", T0 + 40 * HOUR + MIN, 0.0);

    // A restart 30 h after that fill remembers it from the store: due at 76 h, not
    // 36 h after the restart.
    rig.restart(T0 + 70 * HOUR);
    rig.tick(T0 + 75 * HOUR);
    assert!(no_fill(&rig).is_none());
    rig.tick(T0 + 76 * HOUR + 1000);
    assert!(no_fill(&rig).is_some());
}

#[test]
fn a_restart_long_after_the_last_fill_raises_no_event_at_once() {
    let mut rig = Rig::new(TREND_RULES);
    // Readings every hour for 50 h, the only fill at the start, and no clock tick
    // evaluated: the history read back at the restart has no fill in the last 36 h.
    rig.read("dewar-1.lid", T0, 1.0);
    for h in 1..50 {
        rig.read_without_tick("dewar-1.lid", T0 + h * HOUR, 0.0);
    }
    assert!(no_fill(&rig).is_none(), "only the clock decides an absence");
    rig.restart(T0 + 50 * HOUR);
    rig.tick(T0 + 50 * HOUR + 1000);
    assert!(no_fill(&rig).is_some(), "{:?}", rig.open());
}
