//! `[[reason]]`: the reason codes a corrective action names when it closes an excursion
//! (`cryowatch close --reason CODE`), each with the text reports print; `[quality]`: who
//! is reminded of excursions left open, and after how long.

use std::collections::HashMap;
use std::time::Duration;

use super::check::{Checker, Declared};
use super::notify::Target;
use super::raw;

/// Default of `[quality] close_within`.
pub const DEFAULT_CLOSE_WITHIN: Duration = Duration::from_secs(72 * 3600);

/// `[quality]`.
#[derive(Debug, Clone, PartialEq)]
pub struct QualityConfig {
    /// Reminded of open deviations (none: nobody is paged, `status` still says so).
    pub notify: Vec<Target>,
    /// An alarm cleared this long without a corrective action is a reminder page.
    pub close_within: Duration,
}

impl Default for QualityConfig {
    fn default() -> Self {
        QualityConfig {
            notify: Vec::new(),
            close_within: DEFAULT_CLOSE_WITHIN,
        }
    }
}

/// Checks `[quality]`.
pub(super) fn quality(c: &mut Checker, raw: Option<&raw::Quality>, declared: &Declared) -> QualityConfig {
    let Some(q) = raw else {
        return QualityConfig::default();
    };
    QualityConfig {
        notify: super::notify::targets(c, "quality.notify", &q.notify, declared),
        close_within: c.positive_duration("quality.close_within", q.close_within.as_deref(), DEFAULT_CLOSE_WITHIN),
    }
}

/// A reason code for corrective actions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    pub code: String,
    pub text: String,
    /// A corrective action with this reason must say more in its comment.
    pub requires_comment: bool,
}

/// Checks `[[reason]]`: codes unique and printable, a text for each.
pub(super) fn reasons(c: &mut Checker, raw: &[raw::Reason]) -> Vec<Reason> {
    let mut first: HashMap<&str, usize> = HashMap::new();
    let mut out = Vec::new();
    for (i, r) in raw.iter().enumerate() {
        let p = format!("reason[{i}]");
        let code = r.code.trim();
        if code.is_empty() {
            c.err(format!("{p}.code"), "must not be empty");
            continue;
        }
        if let Some(j) = first.insert(code, i) {
            c.err(
                format!("{p}.code"),
                format!("duplicate code {code:?} (already used by reason[{j}])"),
            );
            continue;
        }
        let text = r.text.trim();
        if text.is_empty() {
            c.err(
                format!("{p}.text"),
                "must not be empty: reports print it beside the code",
            );
        }
        if !c.printable(&format!("{p}.code"), code) || !c.printable(&format!("{p}.text"), text) {
            continue;
        }
        out.push(Reason {
            code: code.to_string(),
            text: text.to_string(),
            requires_comment: r.requires_comment.unwrap_or(false),
        });
    }
    out
}
