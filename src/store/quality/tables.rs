//! Schema version 15 of the quality record: which signature signs which
//! acknowledgement ([`super::ack`]), and the open deviations kept as a table of their
//! own, so that counting them (at every `/metrics` scrape) reads only the open ones,
//! never every alarm of ten years.
//!
//! `open_deviation` holds the alarms that [`crate::store::Store::open_deviations`]
//! lists: cleared, not closed by a corrective action, not alarm tests. Triggers keep it
//! in the transaction that writes the change: an alarm row written cleared adds it, a
//! corrective action or an alarm test of that alarm removes it. The migration fills it
//! from the alarms already stored.

/// Schema version 15.
pub(crate) const MIGRATION: &str = "
    CREATE TABLE ack_signature (
        signature INTEGER PRIMARY KEY,
        alarm     INTEGER NOT NULL,
        event     INTEGER NOT NULL UNIQUE
    );
    CREATE INDEX ack_signature_alarm ON ack_signature (alarm);
    CREATE TABLE open_deviation (
        alarm      INTEGER PRIMARY KEY,
        cleared_at INTEGER
    );
    INSERT INTO open_deviation (alarm, cleared_at)
        SELECT id, cleared_at FROM alarm
        WHERE state = 'cleared'
          AND NOT EXISTS (SELECT 1 FROM corrective_action ca WHERE ca.alarm = alarm.id)
          AND NOT EXISTS (SELECT 1 FROM alarm_test t WHERE t.alarm = alarm.id);
    CREATE TRIGGER open_deviation_on_clear AFTER INSERT ON alarm
        WHEN NEW.state = 'cleared'
          AND NOT EXISTS (SELECT 1 FROM corrective_action ca WHERE ca.alarm = NEW.id)
          AND NOT EXISTS (SELECT 1 FROM alarm_test t WHERE t.alarm = NEW.id)
    BEGIN
        INSERT OR REPLACE INTO open_deviation (alarm, cleared_at) VALUES (NEW.id, NEW.cleared_at);
    END;
    CREATE TRIGGER open_deviation_on_close AFTER INSERT ON corrective_action
    BEGIN
        DELETE FROM open_deviation WHERE alarm = NEW.alarm;
    END;
    CREATE TRIGGER open_deviation_on_test AFTER INSERT ON alarm_test
    BEGIN
        DELETE FROM open_deviation WHERE alarm = NEW.alarm;
    END;";
