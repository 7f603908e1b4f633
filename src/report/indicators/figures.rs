//! From records to figures: each month's and asset's [`Summary`], every number a count,
//! sum, maximum or nearest-rank percentile of the [`Counted`] records of that month and
//! asset — nothing else goes in.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Counted, Figure};

/// The `p`-th percentile (0 < p <= 100) of `values` by the nearest-rank method: the
/// smallest value such that at least `p` % of the values are less than or equal to it,
/// i.e. the value at rank ⌈p/100 · n⌉ (counted from 1) of the values in ascending order.
/// `None` for no values. p50 of 1, 2, 3, 4 is 2; p90 of 1..=10 is 9; p90 of 1, 2, 3 is 3.
pub fn percentile(values: &[f64], p: u32) -> Option<f64> {
    if values.is_empty() || p == 0 || p > 100 {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    // ⌈p·n/100⌉ in integers: p ≤ 100 and n is a count of records, so no overflow.
    let rank = (p as usize * n).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

/// Time to acknowledge, in seconds: how many, p50, p90 (nearest rank) and the longest.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AckStats {
    pub count: usize,
    pub p50: f64,
    pub p90: f64,
    pub max: f64,
}

impl AckStats {
    fn of(values: &[f64]) -> Option<AckStats> {
        Some(AckStats {
            count: values.len(),
            p50: percentile(values, 50)?,
            p90: percentile(values, 90)?,
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        })
    }
}

/// The figures of one month and one asset (`asset` empty: the site's own records).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub month: String,
    pub asset: String,
    pub alarms: usize,
    /// Alarms by rule, most first.
    pub alarms_by_rule: Vec<(String, usize)>,
    pub excursions: usize,
    pub excursion_minutes: f64,
    pub ack: Option<AckStats>,
    pub ack_by_contact: Vec<(String, AckStats)>,
    pub ack_by_hour: Vec<(u8, AckStats)>,
    pub not_acknowledged: usize,
    pub escalations: usize,
    pub undeliverable: usize,
    pub fallbacks: usize,
    pub nuisance: usize,
    /// Nuisance alarms by rule, most first: the rules whose delays to tune.
    pub nuisance_by_rule: Vec<(String, usize)>,
    pub open_deviations: usize,
    pub oldest_deviation_days: Option<f64>,
    pub alarm_tests: usize,
    pub test_pages_done: usize,
    pub test_pages_due: usize,
    /// Of the test pages due, those delivered.
    pub test_pages_due_done: usize,
    /// Physical alarm checks ended in the month, and of them those that passed.
    pub alarm_checks: usize,
    pub alarm_checks_passed: usize,
    /// Scheduled checks due (periods ended in the month), and of them those done.
    pub alarm_checks_due: usize,
    pub alarm_checks_due_done: usize,
    /// Readings stored and expected, of the sensors read on a schedule.
    pub readings: f64,
    pub readings_expected: f64,
    /// Readings stored by sensors that push (no expectation).
    pub readings_pushed: f64,
}

impl Summary {
    /// Data completeness in percent, when any sensor of the asset is read on a schedule.
    pub fn completeness(&self) -> Option<f64> {
        (self.readings_expected > 0.0).then(|| 100.0 * self.readings / self.readings_expected)
    }
}

/// Counts by key, most first, then by key.
fn ranked<'a>(keys: impl Iterator<Item = &'a str>) -> Vec<(String, usize)> {
    let mut n: BTreeMap<&str, usize> = BTreeMap::new();
    for k in keys {
        *n.entry(k).or_default() += 1;
    }
    let mut v: Vec<(String, usize)> = n.into_iter().map(|(k, n)| (k.to_string(), n)).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v
}

fn grouped<K: Ord + Clone>(records: &[&Counted], key: impl Fn(&Counted) -> K) -> Vec<(K, AckStats)> {
    let mut groups: BTreeMap<K, Vec<f64>> = BTreeMap::new();
    for r in records {
        groups.entry(key(r)).or_default().push(r.value);
    }
    groups
        .into_iter()
        .filter_map(|(k, v)| AckStats::of(&v).map(|s| (k, s)))
        .collect()
}

fn one(month: &str, asset: &str, records: &[&Counted]) -> Summary {
    let of = |f: Figure| records.iter().filter(move |r| r.figure == f).copied();
    let count = |f: Figure| of(f).count();
    let acks: Vec<&Counted> = of(Figure::Ack).collect();
    let ack_values: Vec<f64> = acks.iter().map(|r| r.value).collect();
    let due: Vec<&Counted> = of(Figure::TestPageDue).collect();
    let checks_due: Vec<&Counted> = of(Figure::AlarmCheckDue).collect();
    let readings = of(Figure::Readings);
    let (mut stored, mut expected, mut pushed) = (0.0, 0.0, 0.0);
    for r in readings {
        match r.of {
            Some(e) => {
                stored += r.value;
                expected += e;
            }
            None => pushed += r.value,
        }
    }
    Summary {
        month: month.to_string(),
        asset: asset.to_string(),
        alarms: count(Figure::Alarm),
        alarms_by_rule: ranked(of(Figure::Alarm).map(|r| r.rule.as_str())),
        excursions: count(Figure::Excursion),
        // An empty sum is -0.0: + 0.0 makes it the 0 people read.
        excursion_minutes: of(Figure::Excursion).map(|r| r.value).sum::<f64>() + 0.0,
        ack: AckStats::of(&ack_values),
        ack_by_contact: grouped(&acks, |r| r.contact.clone()),
        ack_by_hour: grouped(&acks, |r| r.hour.unwrap_or(0)),
        not_acknowledged: count(Figure::NotAcknowledged),
        escalations: count(Figure::Escalation),
        undeliverable: count(Figure::Undeliverable),
        fallbacks: count(Figure::Fallback),
        nuisance: count(Figure::Nuisance),
        nuisance_by_rule: ranked(of(Figure::Nuisance).map(|r| r.rule.as_str())),
        open_deviations: count(Figure::OpenDeviation),
        oldest_deviation_days: of(Figure::OpenDeviation).map(|r| r.value).reduce(f64::max),
        alarm_tests: count(Figure::AlarmTest),
        test_pages_done: count(Figure::TestPage),
        test_pages_due: due.len(),
        test_pages_due_done: due.iter().filter(|r| r.value > 0.0).count(),
        alarm_checks: count(Figure::AlarmCheck),
        alarm_checks_passed: of(Figure::AlarmCheck).filter(|r| r.value > 0.0).count(),
        alarm_checks_due: checks_due.len(),
        alarm_checks_due_done: checks_due.iter().filter(|r| r.value > 0.0).count(),
        readings: stored,
        readings_expected: expected,
        readings_pushed: pushed,
    }
}

/// The summaries of every month and asset that has records, by month, then asset, the
/// site's own records (test pages) after the assets.
pub fn summarize(records: &[Counted]) -> Vec<Summary> {
    let mut groups: BTreeMap<(&str, bool, &str), Vec<&Counted>> = BTreeMap::new();
    for r in records {
        let key = (r.month.as_str(), r.asset.is_empty(), r.asset.as_str());
        groups.entry(key).or_default().push(r);
    }
    groups
        .into_iter()
        .map(|((month, _, asset), rs)| one(month, asset, &rs))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_the_nearest_rank_of_the_sorted_values() {
        assert_eq!(percentile(&[], 50), None);
        assert_eq!(percentile(&[7.0], 50), Some(7.0));
        assert_eq!(percentile(&[7.0], 90), Some(7.0));
        assert_eq!(percentile(&[4.0, 1.0, 3.0, 2.0], 50), Some(2.0));
        assert_eq!(percentile(&[3.0, 1.0, 2.0], 50), Some(2.0));
        assert_eq!(percentile(&[3.0, 1.0, 2.0], 90), Some(3.0));
        let ten: Vec<f64> = (1..=10).rev().map(f64::from).collect();
        assert_eq!(percentile(&ten, 90), Some(9.0));
        assert_eq!(percentile(&ten, 91), Some(10.0));
        assert_eq!(percentile(&ten, 100), Some(10.0));
        assert_eq!(percentile(&ten, 10), Some(1.0));
        assert_eq!(percentile(&ten, 0), None);
        assert_eq!(percentile(&ten, 101), None);
    }

    fn rec(figure: Figure, asset: &str, rule: &str, contact: &str, hour: u8, value: f64) -> Counted {
        Counted {
            figure,
            month: "2026-11".into(),
            asset: asset.into(),
            rule: rule.into(),
            contact: contact.into(),
            hour: Some(hour),
            value,
            of: None,
            record: "alarm 1".into(),
            detail: String::new(),
        }
    }

    #[test]
    fn a_summary_counts_only_its_own_month_and_asset() {
        let mut records = vec![
            rec(Figure::Ack, "dewar-1", "warm", "alice", 2, 60.0),
            rec(Figure::Ack, "dewar-1", "warm", "alice", 2, 180.0),
            rec(Figure::Ack, "dewar-1", "warm", "bob", 14, 600.0),
            rec(Figure::Ack, "freezer-7", "warm", "bob", 14, 5.0),
            rec(Figure::Nuisance, "dewar-1", "lid", "", 3, 30.0),
            rec(Figure::Nuisance, "dewar-1", "lid", "", 3, 40.0),
            rec(Figure::Nuisance, "dewar-1", "warm", "", 3, 50.0),
        ];
        let mut other = rec(Figure::Ack, "dewar-1", "warm", "alice", 2, 9999.0);
        other.month = "2026-12".into();
        records.push(other);
        // The site's own records (a test page) come after the month's assets.
        records.insert(0, rec(Figure::TestPage, "", "", "alice", 10, 1.0));
        let s = summarize(&records);
        assert_eq!(s.len(), 4);
        let order: Vec<(&str, &str)> = s.iter().map(|x| (x.month.as_str(), x.asset.as_str())).collect();
        assert_eq!(
            order,
            [
                ("2026-11", "dewar-1"),
                ("2026-11", "freezer-7"),
                ("2026-11", ""),
                ("2026-12", "dewar-1")
            ]
        );
        let d = &s[0];
        assert_eq!((d.month.as_str(), d.asset.as_str()), ("2026-11", "dewar-1"));
        assert_eq!(
            d.ack,
            Some(AckStats {
                count: 3,
                p50: 180.0,
                p90: 600.0,
                max: 600.0
            })
        );
        assert_eq!(d.ack_by_contact[0].0, "alice");
        assert_eq!(d.ack_by_contact[0].1.max, 180.0);
        assert_eq!(
            d.ack_by_hour.iter().map(|(h, s)| (*h, s.count)).collect::<Vec<_>>(),
            [(2, 2), (14, 1)]
        );
        assert_eq!(d.nuisance_by_rule, [("lid".to_string(), 2), ("warm".to_string(), 1)]);
        assert_eq!(s[1].ack.map(|a| a.max), Some(5.0));
        assert_eq!(s[3].ack.map(|a| a.max), Some(9999.0));
    }
}
