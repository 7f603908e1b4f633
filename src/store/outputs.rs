//! What local alarm outputs (`[[output]]`) ask the store: the open alarms, each marked
//! when it is an alarm test, and the record of each change of an output's state in the
//! audit trail.

use rusqlite::Connection;
use serde::Serialize;

use super::alarms::{ALARM_COLUMNS, alarm_from};
use crate::model::TimestampMs;
use crate::model::changes::AlarmRow;

/// An open alarm as an output sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenAlarm {
    pub alarm: AlarmRow,
    /// Raised by `cryowatch test-alarm`, not by a real excursion.
    pub test: bool,
}

fn open_alarms(c: &Connection) -> rusqlite::Result<Vec<OpenAlarm>> {
    let mut st = c.prepare_cached(&format!(
        "SELECT {ALARM_COLUMNS}, EXISTS (SELECT 1 FROM alarm_test t WHERE t.alarm = alarm.id)
         FROM alarm WHERE state != 'cleared' ORDER BY id"
    ))?;
    st.query_map([], |r| {
        Ok(OpenAlarm {
            alarm: alarm_from(r)?,
            test: r.get(19)?,
        })
    })?
    .collect()
}

/// A change of an output's state, as the audit trail records it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutputChange<'a> {
    pub output: &'a str,
    /// The device and where on it the output is written (`coil 16`).
    pub device: &'a str,
    pub target: String,
    /// `on` (the alarm signalled) or `off`.
    pub state: &'static str,
    /// The value written: 1 energised, 0 de-energised (with `fail_safe`, 0 when on).
    pub value: u8,
    pub fail_safe: bool,
    pub when: String,
    /// The alarms that match `when` (empty when off).
    pub alarms: Vec<i64>,
    /// The alarms that matched before the change (those that held it on, when it goes off).
    pub previous: Vec<i64>,
    /// The first state decided after the daemon started, not a change.
    pub initial: bool,
}

impl crate::store::Store {
    /// The open alarms (active or acknowledged), oldest first, each marked when it is an
    /// alarm test.
    pub fn open_alarms(&self) -> Result<Vec<OpenAlarm>, crate::store::StoreError> {
        self.with_conn(open_alarms)
    }

    /// Appends `output.on` or `output.off` to the audit trail; returns its seq.
    pub fn record_output_change(
        &mut self,
        now: TimestampMs,
        change: &OutputChange<'_>,
    ) -> Result<i64, crate::store::StoreError> {
        let detail = serde_json::to_value(change).unwrap_or_default();
        let kind = format!("output.{}", change.state);
        let subject = format!("output {}", change.output);
        self.transaction(|c| crate::store::audit::append(c, now, &kind, "daemon", &subject, &detail))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn a_change_is_appended_to_the_audit_trail_with_its_alarms() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = Store::open(&dir.path().join("cw.db")).expect("open the store");
        assert!(store.open_alarms().expect("read").is_empty());
        let change = OutputChange {
            output: "beacon",
            device: "io",
            target: "coil 16".into(),
            state: "on",
            value: 0,
            fail_safe: true,
            when: "active critical".into(),
            alarms: vec![7, 9],
            previous: vec![],
            initial: false,
        };
        store.record_output_change(1_000, &change).expect("append");
        let mut rows = Vec::new();
        store
            .audit_list(0, 2_000, Some("output"), |r| {
                rows.push(r);
                true
            })
            .expect("read the trail");
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0].kind, "output.on");
        assert_eq!(rows[0].subject, "output beacon");
        let detail: serde_json::Value = serde_json::from_str(&rows[0].detail).expect("json detail");
        assert_eq!(detail["alarms"], serde_json::json!([7, 9]));
        assert_eq!(detail["value"], 0);
    }
}
