//! Schema version 15 of the quality record: which signature signs which
//! acknowledgement ([`super::ack`]).

/// Schema version 15.
pub(crate) const MIGRATION: &str = "
    CREATE TABLE ack_signature (
        signature INTEGER PRIMARY KEY,
        alarm     INTEGER NOT NULL,
        event     INTEGER NOT NULL UNIQUE
    );
    CREATE INDEX ack_signature_alarm ON ack_signature (alarm);";
