//! One row of the fault-injection report: what was produced and what arrived, while
//! one fault was injected, and how long the system took to recover from it.

use std::fmt::Write as _;
use std::time::Duration;

/// What one fault scenario measured. `None` means "not applicable to this fault"
/// (e.g. no pages are expected while the broker restarts) and prints as `-`.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    /// Short name of the injected fault, e.g. "broker restart".
    pub fault: String,
    /// Readings the simulators/publishers produced while the scenario ran.
    pub readings_produced: Option<u64>,
    /// Of those, readings found in the store afterwards (distinct, by sensor and time).
    pub readings_stored: Option<u64>,
    /// Readings found in the store more than once.
    pub readings_duplicated: Option<u64>,
    /// Pages the scenario expects to reach a person (per contact, per step).
    pub pages_expected: Option<u64>,
    /// Distinct pages that arrived at the peers (SMTP server, gateway, modem).
    pub pages_sent: Option<u64>,
    /// Expected pages that never arrived.
    pub pages_missed: Option<u64>,
    /// Pages that arrived more than once.
    pub pages_duplicated: Option<u64>,
    /// Times cryowatch died without being killed by the scenario.
    pub crashes: u64,
    /// From the end of the fault to the system being whole again (readings flowing,
    /// backlog drained, page delivered — whatever the scenario defines).
    pub recovery: Option<Duration>,
    /// One line of context: what "recovered" meant, counts of a sub-step, etc.
    pub detail: String,
    /// Set when the scenario itself could not complete (a peer did not start, a wait
    /// timed out): the row fails.
    pub error: Option<String>,
}

impl Outcome {
    pub fn new(fault: &str) -> Outcome {
        Outcome {
            fault: fault.to_string(),
            ..Outcome::default()
        }
    }

    /// Nothing lost, nothing duplicated, nothing crashed.
    pub fn ok(&self) -> bool {
        let lost = match (self.readings_produced, self.readings_stored) {
            (Some(p), Some(s)) => p != s,
            _ => false,
        };
        self.error.is_none()
            && !lost
            && self.readings_duplicated.unwrap_or(0) == 0
            && self.pages_missed.unwrap_or(0) == 0
            && self.pages_duplicated.unwrap_or(0) == 0
            && self.crashes == 0
    }
}

fn cell(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// The report as a Markdown table, one row per fault.
pub fn table(rows: &[Outcome]) -> String {
    let mut out = String::from(
        "| fault | readings produced | stored | dup | pages expected | sent | missed | dup | crashes | recovery | verdict | detail |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |\n",
    );
    for r in rows {
        let recovery = r
            .recovery
            .map_or_else(|| "-".to_string(), |d| format!("{:.1} s", d.as_secs_f64()));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.fault,
            cell(r.readings_produced),
            cell(r.readings_stored),
            cell(r.readings_duplicated),
            cell(r.pages_expected),
            cell(r.pages_sent),
            cell(r.pages_missed),
            cell(r.pages_duplicated),
            r.crashes,
            recovery,
            if r.ok() { "ok" } else { "FAIL" },
            r.error.as_deref().unwrap_or(&r.detail).replace('|', "/"),
        );
    }
    out
}
