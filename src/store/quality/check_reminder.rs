//! Reminders of overdue physical alarm checks ([`crate::alarm_check`]): one page to
//! `[quality] notify` per probe and period, marked in the same transaction as the pages
//! it queues, so neither a restart nor the next pass pages it twice.

use rusqlite::params;

use super::super::outbox::{NewNotification, enqueue};
use super::super::{Store, StoreError};
use crate::model::TimestampMs;

/// Schema 19.
pub const MIGRATION: &str = "
    CREATE TABLE alarm_check_reminder (
        sensor TEXT NOT NULL,
        period TEXT NOT NULL,
        t      INTEGER NOT NULL,
        PRIMARY KEY (sensor, period)
    ) WITHOUT ROWID;";

impl Store {
    /// Whether the overdue check of `sensor` for `period` has been reminded of.
    pub fn alarm_check_reminded(&self, sensor: &str, period: &str) -> Result<bool, StoreError> {
        self.with_conn(|c| {
            c.query_row(
                "SELECT EXISTS (SELECT 1 FROM alarm_check_reminder WHERE sensor = ?1 AND period = ?2)",
                params![sensor, period],
                |r| r.get(0),
            )
        })
    }

    /// Marks the overdue check of `sensor` for `period` reminded and queues `pages`, in
    /// one transaction; false (nothing queued) when it already was.
    pub fn remind_alarm_check(
        &mut self,
        sensor: &str,
        period: &str,
        pages: &[NewNotification],
        now: TimestampMs,
    ) -> Result<bool, StoreError> {
        self.transaction(|c| {
            let marked = c.execute(
                "INSERT OR IGNORE INTO alarm_check_reminder (sensor, period, t) VALUES (?1, ?2, ?3)",
                params![sensor, period, now],
            )?;
            if marked == 0 {
                return Ok(false);
            }
            for n in pages {
                enqueue(c, n, now)?;
            }
            Ok(true)
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::store::Store;

    #[test]
    fn an_overdue_check_is_reminded_once_per_probe_and_period() {
        let dir = tempfile::tempdir().expect("dir");
        let mut store = Store::open(&dir.path().join("s.db")).expect("store");
        assert!(!store.alarm_check_reminded("dewar-1.temp", "2026-Q3").expect("read"));
        assert!(
            store
                .remind_alarm_check("dewar-1.temp", "2026-Q3", &[], 1)
                .expect("first")
        );
        assert!(
            !store
                .remind_alarm_check("dewar-1.temp", "2026-Q3", &[], 2)
                .expect("second")
        );
        assert!(store.alarm_check_reminded("dewar-1.temp", "2026-Q3").expect("read"));
        assert!(
            store
                .remind_alarm_check("dewar-1.temp", "2026-Q4", &[], 3)
                .expect("next period")
        );
    }
}
