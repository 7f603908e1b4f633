//! `cryowatch quality` on a seeded November ([`common::quality_month`]): alarms with
//! known acknowledgement times (one by command line, one by email link under the
//! contact's printed name), a nuisance alarm, an escalation to step 2 and one to a
//! second round, a page delivered through its fallback and one given up, an alarm test,
//! a scheduled test page, open deviations (one cleared in October, still open at the
//! period's end), alarm checks under a monthly schedule, and readings. Every figure
//! of the CSV is recomputed here from what was seeded, figure by figure; the PDF shows
//! the headline figures.

mod common;

use std::collections::BTreeMap;

use common::quality_month::{FROM, MIN, READINGS, Seeded, TO, alarms, checks, ms, seed, site};
use common::{Site, cryowatch, pdf_text};

/// The CSV's figure rows: (figure, month, asset, rule, contact, hour) → value.
type Figures = BTreeMap<(String, String, String, String, String, String), f64>;

fn parse(csv: &str) -> (Figures, Vec<Vec<String>>) {
    let mut figures = Figures::new();
    let mut records = Vec::new();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("figure,month,asset,rule,contact,hour,value,of,record,detail")
    );
    for line in lines {
        // Only `detail` (the last field) may be quoted: split the first nine fields.
        let f: Vec<String> = line.splitn(10, ',').map(str::to_string).collect();
        assert_eq!(f.len(), 10, "{line}");
        if f[8].is_empty() {
            assert!(!f[6].is_empty(), "a figure row without a value: {line}");
            let key = (
                f[0].clone(),
                f[1].clone(),
                f[2].clone(),
                f[3].clone(),
                f[4].clone(),
                f[5].clone(),
            );
            figures.insert(key, f[6].parse().unwrap_or_else(|_| panic!("value in {line}")));
        } else {
            records.push(f);
        }
    }
    (figures, records)
}

/// Nearest rank, computed here on its own.
fn nearest_rank(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.max(1) - 1]
}

fn run(site: &Site, out: &str) -> std::path::PathBuf {
    let path = site.path().join(out);
    let res = cryowatch()
        .args(["quality", "-c", &site.config_str(), "--from", FROM, "--to", TO, "--out"])
        .arg(&path)
        .output()
        .expect("cryowatch runs");
    assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
    path
}

#[test]
fn the_quality_figures_of_a_seeded_month_match_their_recomputation() {
    let site = site();
    seed(&site);
    let csv = std::fs::read_to_string(run(&site, "q.csv")).expect("csv");
    let (got, records) = parse(&csv);
    let (from, to) = (ms(FROM), ms(TO));
    let nov = |figure: &str| {
        (
            figure.to_string(),
            "2026-11".to_string(),
            "dewar-1".to_string(),
            String::new(),
            String::new(),
            String::new(),
        )
    };
    let mut want = Figures::new();
    let seeded = alarms();
    let in_period: Vec<&Seeded> = seeded
        .iter()
        .filter(|a| !a.test && a.raised >= from && a.raised < to)
        .collect();
    want.insert(nov("alarms"), in_period.len() as f64);
    for rule in ["warm", "lid"] {
        let mut k = nov("alarms");
        k.3 = rule.into();
        want.insert(k, in_period.iter().filter(|a| a.rule == rule).count() as f64);
    }
    // Both rules watch limits: every alarm is an excursion.
    want.insert(nov("excursions"), in_period.len() as f64);
    let minutes: f64 = in_period
        .iter()
        .map(|a| (a.returned.or(a.cleared).unwrap_or(to).min(to) - a.since) as f64 / MIN as f64)
        .sum();
    want.insert(nov("excursion_minutes"), minutes);
    // Time to acknowledge, from the alarm going active; people under one name.
    let name = |by: &str| {
        if by.ends_with('A') || by == "tech-a" {
            "Technician A (tech-a)"
        } else {
            "Technician B (tech-b)"
        }
    };
    let acks: Vec<(&str, i64, f64)> = in_period
        .iter()
        .filter_map(|a| {
            a.ack
                .map(|(by, at, _)| (name(by), a.raised / 3_600_000 % 24, (at - a.raised) as f64 / 1000.0))
        })
        .collect();
    let mut stats = |contact: &str, hour: &str, v: Vec<f64>| {
        for (figure, value) in [
            ("ack_count", v.len() as f64),
            ("ack_p50_s", nearest_rank(v.clone(), 50.0)),
            ("ack_p90_s", nearest_rank(v.clone(), 90.0)),
            ("ack_max_s", v.iter().copied().fold(0.0, f64::max)),
        ] {
            let mut k = nov(figure);
            k.4 = contact.into();
            k.5 = hour.into();
            want.insert(k, value);
        }
    };
    stats("", "", acks.iter().map(|a| a.2).collect());
    for c in ["Technician A (tech-a)", "Technician B (tech-b)"] {
        stats(c, "", acks.iter().filter(|a| a.0 == c).map(|a| a.2).collect());
    }
    let mut hours: Vec<i64> = acks.iter().map(|a| a.1).collect();
    hours.dedup();
    for h in hours {
        stats(
            "",
            &h.to_string(),
            acks.iter().filter(|a| a.1 == h).map(|a| a.2).collect(),
        );
    }
    want.insert(
        nov("not_acknowledged"),
        in_period.iter().filter(|a| a.ack.is_none()).count() as f64,
    );
    // Alarm 2 reached step 2, alarm 5 a second round.
    want.insert(nov("escalations"), 2.0);
    want.insert(nov("undeliverable"), 1.0);
    want.insert(nov("fallbacks"), 1.0);
    let nuisance: Vec<&&Seeded> = in_period
        .iter()
        .filter(|a| a.ack.is_none() && a.cleared.is_some_and(|c| c - a.raised <= 10 * MIN))
        .collect();
    assert_eq!(nuisance.len(), 1, "the seed has one nuisance alarm");
    want.insert(nov("nuisance"), 1.0);
    let mut k = nov("nuisance");
    k.3 = "lid".into();
    want.insert(k, 1.0);
    // Open deviations as they stood at the end of the month (the period's end): cleared
    // before it and not closed by then, whenever they cleared; aged at that moment.
    let open: Vec<f64> = seeded
        .iter()
        .filter(|a| !a.test && a.cleared.is_some_and(|c| c < to) && a.closed.is_none_or(|c| c >= to))
        .map(|a| (to - a.cleared.unwrap_or(0)) as f64 / 86_400_000.0)
        .collect();
    assert!(open.iter().any(|d| *d > 30.0), "the seed has one open since October");
    want.insert(nov("open_deviations"), open.len() as f64);
    want.insert(nov("oldest_deviation_days"), open.iter().copied().fold(0.0, f64::max));
    want.insert(nov("alarm_tests"), 1.0);
    want.insert(nov("readings"), READINGS as f64);
    want.insert(nov("readings_expected"), 2.0 * 30.0 * 1440.0);
    want.insert(
        nov("completeness_percent"),
        100.0 * READINGS as f64 / (2.0 * 30.0 * 1440.0),
    );
    // Alarm checks ended in the month, and the schedule's November (monthly): done when
    // a check that passed or failed was started in it. The lid has no high or low rule.
    let ended: Vec<(i64, i64, &str)> = checks().into_iter().filter(|c| c.2 != "running").collect();
    want.insert(nov("alarm_checks"), ended.len() as f64);
    want.insert(
        nov("alarm_checks_passed"),
        ended.iter().filter(|c| c.2 == "passed").count() as f64,
    );
    want.insert(nov("alarm_checks_due"), 1.0);
    let done = ended
        .iter()
        .any(|c| matches!(c.2, "passed" | "failed") && c.1 >= from && c.1 < to);
    want.insert(nov("alarm_checks_due_done"), if done { 1.0 } else { 0.0 });
    // Test pages belong to the site: Mondays at 10:00 up to now, one delivered.
    let now = jiff::Timestamp::now().as_millisecond();
    let mondays = ["2026-11-02", "2026-11-09", "2026-11-16", "2026-11-23", "2026-11-30"]
        .iter()
        .filter(|d| ms(&format!("{d}T10:00:00Z")) < now.min(to))
        .count();
    let site_key = |figure: &str| {
        let mut k = nov(figure);
        k.2 = String::new();
        k
    };
    want.insert(site_key("test_pages_done"), 1.0);
    want.insert(site_key("test_pages_due"), mondays as f64);
    want.insert(site_key("test_pages_due_done"), 1.0);
    // The monitor's own sensors (its record, calibration days left) are no asset's.
    assert!(!csv.lines().any(|l| l.split(',').nth(2) == Some("cryowatch")), "{csv}");
    // Compare figure by figure: each expected one present and equal; zero figures the
    // report adds (per month and asset) must be zero here.
    for (k, v) in &want {
        let g = got.get(k).unwrap_or_else(|| panic!("figure {k:?} missing:\n{csv}"));
        assert!((g - v).abs() < 1e-9, "{k:?}: report {g}, recomputed {v}\n{csv}");
    }
    for (k, g) in &got {
        if !want.contains_key(k) {
            assert_eq!(*g, 0.0, "figure {k:?} = {g} not expected:\n{csv}");
        }
    }
    // The records beneath: each figure's records name what was seeded.
    let named = |figure: &str| -> Vec<String> {
        records
            .iter()
            .filter(|r| r[0] == figure)
            .map(|r| r[8].clone())
            .collect()
    };
    assert_eq!(named("nuisance"), ["alarm 3"]);
    assert_eq!(named("escalation"), ["alarm 2", "alarm 5"]);
    assert_eq!(named("undeliverable"), ["notification 5"]);
    assert_eq!(named("fallback"), ["notification 4"]);
    assert_eq!(named("ack"), ["alarm 1", "alarm 2", "alarm 4"]);
    assert_eq!(named("alarm_test"), ["alarm test 1"]);
    assert_eq!(
        named("alarm_check"),
        ["alarm check 1", "alarm check 2", "alarm check 3"]
    );
    assert_eq!(named("alarm_check_due"), ["dewar-1.temp monthly 2026-11"]);
    assert_eq!(named("open_deviation"), ["alarm 3", "alarm 5", "alarm 7"]);
    assert!(
        !named("alarm").contains(&"alarm 6".to_string()),
        "an alarm test is not an alarm"
    );
    assert!(!named("alarm").contains(&"alarm 8".to_string()), "December is outside");
    let step2 = records
        .iter()
        .find(|r| r[0] == "escalation" && r[8] == "alarm 2")
        .expect("alarm 2");
    assert_eq!(step2[6], "2", "alarm 2 reached step 2: {step2:?}");
}

#[test]
fn the_pdf_shows_the_headline_figures() {
    let site = site();
    seed(&site);
    let text = pdf_text(&run(&site, "q.pdf"));
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    for part in [
        "2026-11 · dewar-1",
        // Acknowledged after 3, 25 and 1 minutes: p50 3m, p90 25m.
        "p50 3m 00s, p90 25m 00s, max 25m 00s (3 acknowledged)",
        "Escalated beyond the first step 2",
        "Nuisance alarms 1",
        "Alarm checks done / due 3 (1 passed) / 1 (1 of those due done)",
        // The watched probe has no calibration on record.
        "0 of 1 probes in calibration at the period's end",
        "dewar-1.temp: never; no calibration on record",
        // A month without excursions: 0 minutes, not -0.0.
        "Excursions 0 (0.0 min out of range)",
    ] {
        assert!(text.contains(part), "{part:?} not in:\n{text}");
    }
    assert!(!text.contains("-0.0"), "{text}");
}

#[test]
fn a_period_that_ends_before_it_starts_and_an_unknown_extension_are_bad_input() {
    let site = site();
    let out = site.path().join("q.csv");
    let res = cryowatch()
        .args(["quality", "-c", &site.config_str(), "--from", TO, "--to", FROM, "--out"])
        .arg(&out)
        .output()
        .expect("cryowatch runs");
    assert_eq!(res.status.code(), Some(2), "{}", String::from_utf8_lossy(&res.stderr));
    let res = cryowatch()
        .args(["quality", "-c", &site.config_str(), "--from", FROM, "--to", TO, "--out"])
        .arg(site.path().join("q.txt"))
        .output()
        .expect("cryowatch runs");
    assert_eq!(res.status.code(), Some(2), "{}", String::from_utf8_lossy(&res.stderr));
    assert!(!out.exists());
}
