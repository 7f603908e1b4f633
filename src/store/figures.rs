//! What `/metrics` reads from the store at each scrape: open alarms by state, open
//! deviations, the notification outbox, the audit trail's head and the mirror's lag,
//! with a few indexed queries.

use rusqlite::Connection;

use super::mirror::{self, Lag};
use crate::model::TimestampMs;

// The scrape's queries. Each is served by an index (`alarm_open`,
// `notification_pending`, the audit's rowid and `audit_time`) or reads a table of one
// row per rule or per open deviation; a test checks the plans.
const OPEN_ALARMS: &str =
    "SELECT state, count(*), count(suppressed) FROM alarm WHERE state != 'cleared' GROUP BY state";
const PENDING_RULES: &str = "SELECT rule FROM rule_state WHERE cond = 1 AND fired = 0";
const OUTBOX: &str = "SELECT count(*), min(created_at) FROM notification WHERE state = 'pending'";
/// Two subqueries: each `max` alone is one index lookup; both in one SELECT scan.
const AUDIT_HEAD: &str = "SELECT (SELECT max(seq) FROM audit), (SELECT max(t) FROM audit)";
/// Reads the table of open deviations (kept by triggers, see
/// [`crate::store::quality::tables`]), never the alarms: one row per open deviation.
const OPEN_DEVIATIONS: &str = "SELECT count(*), min(cleared_at) FROM open_deviation";

/// What the store knows, read at scrape time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoreFigures {
    /// Open alarms by state; `pending` counts rules whose delay is running.
    pub alarms: Vec<(String, i64)>,
    /// Open alarms under a maintenance window or shelved.
    pub suppressed: i64,
    /// Notifications waiting in the outbox, and when the oldest was queued.
    pub outbox_pending: i64,
    pub outbox_oldest: Option<TimestampMs>,
    /// The InfluxDB mirror's lag, when one is configured.
    pub mirror: Option<Lag>,
    /// The audit trail's newest sequence number and newest record time.
    pub audit_head: Option<(i64, TimestampMs)>,
    /// Excursions cleared and not yet closed by a signed corrective action, and when the
    /// oldest of them cleared.
    pub open_deviations: i64,
    pub open_deviation_oldest: Option<TimestampMs>,
    /// Where each scheduled probe's alarm check stands (`done`, `due`, `overdue`): not
    /// read here but set by the caller from [`crate::alarm_check::due_checks`], which
    /// needs the configuration.
    pub alarm_checks: Vec<&'static str>,
}

impl StoreFigures {
    /// Reads the figures with a few cheap queries (see the plans test).
    /// `configured`: whether a rule id is in the configuration (rows of rules no longer
    /// configured are left over, not pending); `with_mirror`: whether to read the
    /// InfluxDB mirror's lag.
    pub fn read(
        c: &Connection,
        configured: impl Fn(&str) -> bool,
        with_mirror: bool,
    ) -> rusqlite::Result<StoreFigures> {
        let mut figures = StoreFigures::default();
        let mut st = c.prepare_cached(OPEN_ALARMS)?;
        let rows = st.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
        })?;
        for row in rows {
            let (state, n, suppressed) = row?;
            figures.alarms.push((state, n));
            figures.suppressed += suppressed;
        }
        // Rows of rules no longer configured are left over, not pending.
        let mut st = c.prepare_cached(PENDING_RULES)?;
        let pending = st
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?
            .iter()
            .filter(|id| configured(id))
            .count();
        figures.alarms.push(("pending".into(), pending as i64));
        (figures.outbox_pending, figures.outbox_oldest) = c
            .prepare_cached(OUTBOX)?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        let head: (Option<i64>, Option<i64>) = c
            .prepare_cached(AUDIT_HEAD)?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        figures.audit_head = head.0.zip(head.1);
        (figures.open_deviations, figures.open_deviation_oldest) = c
            .prepare_cached(OPEN_DEVIATIONS)?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        if with_mirror {
            figures.mirror = Some(mirror::lag(c)?);
        }
        Ok(figures)
    }

    /// Open alarms in `state` (`pending`, `active`, `acknowledged`).
    pub fn alarms(&self, state: &str) -> i64 {
        self.alarms.iter().filter(|(s, _)| s == state).map(|(_, n)| n).sum()
    }
}

impl crate::store::Store {
    /// What `/metrics` reads from the store (see [`StoreFigures::read`]).
    pub fn figures(
        &self,
        configured: impl Fn(&str) -> bool,
        with_mirror: bool,
    ) -> Result<StoreFigures, crate::store::StoreError> {
        self.with_conn(|c| StoreFigures::read(c, configured, with_mirror))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrape_queries_use_indexes_and_never_scan_growing_tables() {
        let dir = tempfile::tempdir().expect("dir");
        let store = crate::store::Store::open(&dir.path().join("s.db")).expect("store");
        for sql in [OPEN_ALARMS, PENDING_RULES, OUTBOX, AUDIT_HEAD, OPEN_DEVIATIONS] {
            let plan: Vec<String> = store
                .with_conn(|c| {
                    c.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?
                        .query_map([], |r| r.get::<_, String>(3))?
                        .collect()
                })
                .expect("plan");
            for step in &plan {
                let scan = step.starts_with("SCAN ") && step != "SCAN CONSTANT ROW";
                assert!(
                    !scan
                        || step.contains("USING INDEX alarm_open")
                        || step.contains("USING INDEX notification_pending")
                        || step == "SCAN rule_state"
                        || step.starts_with("SCAN open_deviation"),
                    "{sql}: {plan:?}"
                );
            }
        }
        let figures = store
            .with_conn(|c| StoreFigures::read(c, |_| true, false))
            .expect("figures");
        assert_eq!(figures.outbox_pending, 0);
        assert_eq!(figures.alarms("active"), 0);
        assert_eq!(figures.audit_head, None, "a new store has no audit records");
    }

    #[test]
    fn open_deviations_are_counted_from_their_own_table_never_from_the_alarms() {
        let dir = tempfile::tempdir().expect("dir");
        let mut store = crate::store::Store::open(&dir.path().join("s.db")).expect("store");
        // Ten years of alarms, all cleared: 1000 of them, 996 closed by a corrective
        // action, one an alarm test, one still active, two open deviations.
        store
            .transaction(|c| {
                let mut alarm = c.prepare(
                    "INSERT OR REPLACE INTO alarm (id, rule, sensor, asset, severity, state, raised_at, since,
                        latching, firing, returned, cleared_at)
                     VALUES (?1, 'warm', 'd.t', 'd', 'alarm', ?2, ?3, ?3, 0, '', 0, ?4)",
                )?;
                for id in 1..=1001_i64 {
                    let t = id * 60_000;
                    if id == 1001 {
                        alarm.execute(rusqlite::params![id, "active", t, None::<i64>])?;
                        continue;
                    }
                    // Written open, then cleared, as the commit stage writes them.
                    alarm.execute(rusqlite::params![id, "active", t, None::<i64>])?;
                    alarm.execute(rusqlite::params![id, "cleared", t, t + 30_000])?;
                    if id == 500 {
                        c.execute(
                            "INSERT INTO alarm_test (sensor, rule, alarm, started_at, by, value)
                             VALUES ('d.t', 'warm', ?1, ?2, 'qa', -100.0)",
                            [id, t],
                        )?;
                    } else if id != 300 && id != 700 {
                        c.execute(
                            "INSERT INTO corrective_action (alarm, t, reason, reason_text, action, impact, comment, signature)
                             VALUES (?1, ?2, 'lid-open', 'Lid left open', 'closed', 'none', '', 0)",
                            [id, t + 60_000],
                        )?;
                    }
                }
                Ok(())
            })
            .expect("alarms");
        let open = store.open_deviations().expect("open deviations");
        assert_eq!(open.iter().map(|a| a.id).collect::<Vec<_>>(), [300, 700]);

        let (plan, figures, steps) = store
            .with_conn(|c| {
                let plan: Vec<String> = c
                    .prepare(&format!("EXPLAIN QUERY PLAN {OPEN_DEVIATIONS}"))?
                    .query_map([], |r| r.get::<_, String>(3))?
                    .collect::<rusqlite::Result<_>>()?;
                let mut st = c.prepare(OPEN_DEVIATIONS)?;
                let figures: (i64, Option<i64>) = st.query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
                let visited = st.get_status(rusqlite::StatementStatus::FullscanStep);
                Ok((plan, figures, visited))
            })
            .expect("plan");
        // The plan reads only `open_deviation`, one row per open deviation, never the
        // 1001 rows of `alarm`.
        assert!(
            !plan.is_empty() && plan.iter().all(|step| step.starts_with("SCAN open_deviation")),
            "{plan:?}"
        );
        assert_eq!(figures, (2, Some(300 * 60_000 + 30_000)));
        // Two rows visited, the two open deviations: SQLite counts the steps of a scan
        // from one row to the next, one step for two rows.
        assert_eq!(steps, 1, "{plan:?}");
    }
}
