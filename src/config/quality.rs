//! `[[reason]]`: the reason codes a corrective action names when it closes an excursion
//! (`cryowatch close --reason CODE`), each with the text reports print.

use std::collections::HashMap;

use super::check::Checker;
use super::raw;

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
