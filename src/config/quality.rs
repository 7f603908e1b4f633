//! `[[reason]]`: the reason codes a corrective action names when it closes an excursion
//! (`cryowatch close --reason CODE`), each with the text reports print; `[quality]`: who
//! is reminded of excursions left open, and after how long, and how soon an alarm that
//! clears with nobody acting counts as a nuisance (`cryowatch quality`); `[[review]]`: periodic
//! reviews of assets' reports, by whom, and how soon they must be signed.

use std::collections::HashMap;
use std::time::Duration;

use super::check::{Checker, Declared};
use super::notify::Target;
use super::raw;
use crate::model::period::Every;

/// Default of `[[review]] due_within`.
pub const DEFAULT_DUE_WITHIN: Duration = Duration::from_secs(10 * 24 * 3600);

/// Default of `[quality] close_within`.
pub const DEFAULT_CLOSE_WITHIN: Duration = Duration::from_secs(72 * 3600);

/// Default of `[quality] nuisance_within`.
pub const DEFAULT_NUISANCE_WITHIN: Duration = Duration::from_secs(10 * 60);

/// `[quality]`.
#[derive(Debug, Clone, PartialEq)]
pub struct QualityConfig {
    /// Reminded of open deviations (none: nobody is paged, `status` still says so).
    pub notify: Vec<Target>,
    /// An alarm cleared this long without a corrective action is a reminder page.
    pub close_within: Duration,
    /// An alarm that clears this soon after it went active, unacknowledged, is counted
    /// as a nuisance alarm.
    pub nuisance_within: Duration,
    /// `[[review]]`: periodic reviews and their sign-off.
    pub reviews: Vec<Review>,
}

/// `[[review]]`: at the end of every period, each asset's report of the period is
/// generated, recorded and sent to `reviewers`, who sign it within `due_within`.
#[derive(Debug, Clone, PartialEq)]
pub struct Review {
    pub assets: Vec<String>,
    pub every: Every,
    pub reviewers: Vec<Target>,
    pub due_within: Duration,
}

impl Default for QualityConfig {
    fn default() -> Self {
        QualityConfig {
            notify: Vec::new(),
            close_within: DEFAULT_CLOSE_WITHIN,
            nuisance_within: DEFAULT_NUISANCE_WITHIN,
            reviews: Vec::new(),
        }
    }
}

/// Checks `[quality]` and `[[review]]`.
pub(super) fn quality(
    c: &mut Checker,
    raw: Option<&raw::Quality>,
    reviews: &[raw::Review],
    declared: &Declared,
) -> QualityConfig {
    let reviews = reviews
        .iter()
        .enumerate()
        .map(|(i, r)| review(c, i, r, declared))
        .collect();
    let Some(q) = raw else {
        return QualityConfig {
            reviews,
            ..QualityConfig::default()
        };
    };
    QualityConfig {
        notify: super::notify::targets(c, "quality.notify", &q.notify, declared),
        close_within: c.positive_duration("quality.close_within", q.close_within.as_deref(), DEFAULT_CLOSE_WITHIN),
        nuisance_within: c.positive_duration(
            "quality.nuisance_within",
            q.nuisance_within.as_deref(),
            DEFAULT_NUISANCE_WITHIN,
        ),
        reviews,
    }
}

/// Checks one `[[review]]`: known assets, each once; a period people name; reviewers
/// who can be reached.
fn review(c: &mut Checker, i: usize, r: &raw::Review, declared: &Declared) -> Review {
    let p = format!("review[{i}]");
    if r.assets.is_empty() {
        c.err(format!("{p}.assets"), "must name at least one asset");
    }
    let mut assets: Vec<String> = Vec::new();
    for (k, a) in r.assets.iter().enumerate() {
        if !declared.assets.contains(a.as_str()) {
            let mut known: Vec<&str> = declared.assets.iter().copied().collect();
            known.sort_unstable();
            c.err(
                format!("{p}.assets[{k}]"),
                format!("unknown asset {a:?}; declared: {}", known.join(", ")),
            );
        } else if assets.contains(a) {
            c.err(format!("{p}.assets[{k}]"), format!("asset {a:?} is named twice"));
        } else {
            assets.push(a.clone());
        }
    }
    let every = Every::parse(&r.every).unwrap_or_else(|| {
        c.err(
            format!("{p}.every"),
            format!("expected one of {}, found {:?}", Every::ALL.join(", "), r.every),
        );
        Every::Monthly
    });
    Review {
        assets,
        every,
        reviewers: super::notify::targets(c, &format!("{p}.reviewers"), &r.reviewers, declared),
        due_within: c.positive_duration(&format!("{p}.due_within"), r.due_within.as_deref(), DEFAULT_DUE_WITHIN),
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
