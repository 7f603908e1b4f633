//! The alarm vocabulary every stage speaks: which alarm, how bad, where it stands. The
//! engine produces these, the store persists them (its row mapping is the one place
//! they meet text), and paging, reports and the API read them.

use std::fmt;

/// An alarm's id in the store.
pub type AlarmId = i64;

/// How bad an alarm is. Ordered: `Warning < Alarm < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Warning,
    Alarm,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 3] = [Severity::Warning, Severity::Alarm, Severity::Critical];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Alarm => "alarm",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl serde::Serialize for Severity {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Where an open or closed alarm stands. (`pending` is a rule's delay running, not an
/// alarm yet.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlarmState {
    Active,
    Acknowledged,
    Cleared,
}

impl AlarmState {
    pub const ALL: [AlarmState; 3] = [AlarmState::Active, AlarmState::Acknowledged, AlarmState::Cleared];

    pub fn as_str(self) -> &'static str {
        match self {
            AlarmState::Active => "active",
            AlarmState::Acknowledged => "acknowledged",
            AlarmState::Cleared => "cleared",
        }
    }

    pub fn parse(s: &str) -> Option<AlarmState> {
        AlarmState::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

impl fmt::Display for AlarmState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl serde::Serialize for AlarmState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_back_and_serialize_as_text() {
        for s in Severity::ALL {
            assert_eq!(Severity::parse(s.as_str()), Some(s));
        }
        for s in AlarmState::ALL {
            assert_eq!(AlarmState::parse(s.as_str()), Some(s));
        }
        assert_eq!(AlarmState::parse("pending"), None);
        assert_eq!(
            serde_json::to_string(&(Severity::Critical, AlarmState::Acknowledged)).expect("json"),
            r#"["critical","acknowledged"]"#
        );
        assert_eq!(format!("{:<10}|", AlarmState::Active), "active    |");
        assert!(Severity::Warning < Severity::Critical);
    }
}
