//! What `cryowatch quality` reads: the alarms of a period with what happened to them
//! (return to normal, escalation, corrective action, whether they were alarm tests), the
//! notifications queued in the period with their fate, and reading counts for data
//! completeness. Every figure of [`crate::report::indicators`] is computed from these
//! rows, and each row names the record it comes from.

use rusqlite::{Connection, params};

use super::StoreError;
use super::alarms::{ALARM_COLUMNS, AlarmRow, alarm_from};
use crate::model::TimestampMs;

/// An alarm as the quality figures see it.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmRecord {
    pub alarm: AlarmRow,
    /// When its condition first ended (the `returned_to_normal` transition), if it did
    /// before the alarm cleared.
    pub returned_at: Option<TimestampMs>,
    /// Started by `cryowatch test-alarm`.
    pub test: bool,
    /// The first page queued past the escalation's first step (step > 0 or round > 0):
    /// its notification id, round and step (both counted from 0).
    pub beyond_first_step: Option<(i64, i64, i64)>,
    /// The highest step and round any page of the alarm was queued for.
    pub highest: Option<(i64, i64)>,
    /// When the corrective action that closed it was signed.
    pub closed_at: Option<TimestampMs>,
}

/// A notification as the quality figures see it.
#[derive(Debug, Clone, PartialEq)]
pub struct PageRecord {
    pub id: i64,
    pub alarm: Option<i64>,
    /// The asset of its alarm, if it has one.
    pub asset: Option<String>,
    /// `page`, `reminder`, `test`, `normal`, ...
    pub kind: String,
    pub cycle: i64,
    pub round: i64,
    pub step: i64,
    pub contact: String,
    pub channel: String,
    /// `pending`, `sent`, `failed` or `cancelled`.
    pub state: String,
    /// The channel that delivered it.
    pub via: Option<String>,
    pub created_at: TimestampMs,
    /// A carrier reported, after it was sent, that it was not delivered.
    pub fate_failed: bool,
    /// Queued again on a fallback channel after the same page (alarm, kind, cycle,
    /// round, step, contact) failed on another channel.
    pub resent_after_failure: bool,
}

const ALARMS: &str = "
    SELECT {columns},
        (SELECT min(e.t) FROM alarm_event e WHERE e.alarm = alarm.id AND e.kind = 'returned_to_normal'),
        EXISTS (SELECT 1 FROM alarm_test t WHERE t.alarm = alarm.id),
        (SELECT n.id FROM notification n WHERE n.alarm = alarm.id AND n.kind = 'page' AND (n.step > 0 OR n.round > 0)
            ORDER BY n.id LIMIT 1),
        (SELECT n.round FROM notification n WHERE n.alarm = alarm.id AND n.kind = 'page' AND (n.step > 0 OR n.round > 0)
            ORDER BY n.id LIMIT 1),
        (SELECT n.step FROM notification n WHERE n.alarm = alarm.id AND n.kind = 'page' AND (n.step > 0 OR n.round > 0)
            ORDER BY n.id LIMIT 1),
        (SELECT max(n.step) FROM notification n WHERE n.alarm = alarm.id AND n.kind = 'page'),
        (SELECT max(n.round) FROM notification n WHERE n.alarm = alarm.id AND n.kind = 'page'),
        (SELECT ca.t FROM corrective_action ca WHERE ca.alarm = alarm.id)
    FROM alarm
    WHERE raised_at < ?2
      AND (raised_at >= ?1
           OR (cleared_at IS NOT NULL AND cleared_at < ?2
               AND NOT EXISTS (SELECT 1 FROM corrective_action ca WHERE ca.alarm = alarm.id AND ca.t < ?2)))
    ORDER BY id";

const PAGES: &str = "
    SELECT n.id, n.alarm, a.asset, n.kind, n.cycle, n.round, n.step, n.contact, n.channel, n.state, n.via,
           n.created_at,
           EXISTS (SELECT 1 FROM delivery d WHERE d.notification = n.id AND d.result = 'fate_failed'),
           EXISTS (SELECT 1 FROM notification o JOIN delivery d ON d.notification = o.id
                   WHERE o.id < n.id AND o.alarm IS n.alarm AND o.kind = n.kind AND o.cycle = n.cycle
                     AND o.round = n.round AND o.step = n.step AND o.contact = n.contact
                     AND o.channel != n.channel AND d.result = 'fate_failed')
    FROM notification n LEFT JOIN alarm a ON a.id = n.alarm
    WHERE n.created_at >= ?1 AND n.created_at < ?2
    ORDER BY n.id";

const READINGS: &str = "
    SELECT count(*), count(*) FILTER (WHERE r.quality = 0)
    FROM reading r JOIN sensor s ON s.id = r.sensor
    WHERE s.name = ?1 AND r.t >= ?2 AND r.t < ?3";

fn alarm_records(c: &Connection, from: TimestampMs, to: TimestampMs) -> rusqlite::Result<Vec<AlarmRecord>> {
    let mut st = c.prepare(&ALARMS.replace("{columns}", ALARM_COLUMNS))?;
    st.query_map(params![from, to], |r| {
        let first: Option<i64> = r.get(21)?;
        let beyond = match (first, r.get::<_, Option<i64>>(22)?, r.get::<_, Option<i64>>(23)?) {
            (Some(id), Some(round), Some(step)) => Some((id, round, step)),
            _ => None,
        };
        let highest = r.get::<_, Option<i64>>(24)?.zip(r.get::<_, Option<i64>>(25)?);
        Ok(AlarmRecord {
            alarm: alarm_from(r)?,
            returned_at: r.get(19)?,
            test: r.get(20)?,
            beyond_first_step: beyond,
            highest,
            closed_at: r.get(26)?,
        })
    })?
    .collect()
}

fn page_records(c: &Connection, from: TimestampMs, to: TimestampMs) -> rusqlite::Result<Vec<PageRecord>> {
    let mut st = c.prepare(PAGES)?;
    st.query_map(params![from, to], |r| {
        Ok(PageRecord {
            id: r.get(0)?,
            alarm: r.get(1)?,
            asset: r.get(2)?,
            kind: r.get(3)?,
            cycle: r.get(4)?,
            round: r.get(5)?,
            step: r.get(6)?,
            contact: r.get(7)?,
            channel: r.get(8)?,
            state: r.get(9)?,
            via: r.get(10)?,
            created_at: r.get(11)?,
            fate_failed: r.get(12)?,
            resent_after_failure: r.get(13)?,
        })
    })?
    .collect()
}

impl crate::store::Store {
    /// The alarms raised in `from..to`, and those raised earlier that cleared before
    /// `to` and were not closed by a corrective action before `to` (the deviations
    /// still open at the end of the period), oldest first.
    pub fn indicator_alarms(&self, from: TimestampMs, to: TimestampMs) -> Result<Vec<AlarmRecord>, StoreError> {
        self.with_conn(|c| alarm_records(c, from, to))
    }

    /// Every notification queued in `from..to`, oldest first.
    pub fn indicator_pages(&self, from: TimestampMs, to: TimestampMs) -> Result<Vec<PageRecord>, StoreError> {
        self.with_conn(|c| page_records(c, from, to))
    }

    /// How many readings of `sensor` are stamped in `from..to`, and how many of them
    /// are of good quality.
    pub fn reading_count(&self, sensor: &str, from: TimestampMs, to: TimestampMs) -> Result<(i64, i64), StoreError> {
        self.with_conn(|c| {
            c.prepare_cached(READINGS)?
                .query_row(params![sensor, from, to], |r| Ok((r.get(0)?, r.get(1)?)))
        })
    }
}
