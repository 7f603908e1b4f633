//! The alarm system's own performance over a period, per month (in the site's time
//! zone) and per asset: what `cryowatch quality` writes as PDF, HTML or CSV and the
//! dashboard's `/quality` page shows.
//!
//! Every figure is computed from the record (alarms and their transitions, the
//! notification outbox, alarm tests, corrective actions, readings), and in two steps:
//! [`gather`] turns the store into [`Counted`] records — one per alarm, page, test or
//! sensor a figure counts, each naming its source — and [`summarize`] reduces them to
//! each month's and asset's [`Summary`]. The CSV lists both, so every figure can be
//! recounted from the rows beneath it.
//!
//! Its parts: `gathering` (store → records), `figures` (records → summaries, the
//! nearest-rank percentiles), `calendar` (the site's months and hours, the test pages
//! due by `[[test_page]]`), `layout` (the document for the renderers and the headline
//! figures the dashboard shows) and `csv_export`.
//!

use serde::Serialize;

use crate::model::TimestampMs;

mod calendar;
mod csv_export;
mod figures;
mod gathering;
mod layout;

pub use calendar::months_back;
pub use csv_export::{HEADER as CSV_HEADER, write_csv};
pub use figures::{AckStats, Summary, percentile, summarize};
pub use gathering::{Request, gather};
pub use layout::{asset_label, definitions, document, headline, seconds};

/// What a [`Counted`] record is counted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Figure {
    /// A non-test alarm raised in the period; `value` 1.
    Alarm,
    /// A non-test alarm of a limit rule (high, low, rate, state, or a combination of
    /// them); `value` the minutes its condition held: from the condition's onset (the
    /// rule's delay included) to its return to normal, else its clearing, else the end
    /// of the period.
    Excursion,
    /// An acknowledgement of a non-test alarm raised in the period, made before the
    /// period's end; `value` the seconds from the alarm becoming active to the
    /// acknowledgement.
    Ack,
    /// A non-test alarm raised in the period and not acknowledged by the period's end.
    NotAcknowledged,
    /// A non-test alarm raised in the period for which a page past the escalation's
    /// first step (step > 0 or round > 0, both counted from 0) was queued before the
    /// period's end; `value` the highest step reached, counted from 1.
    Escalation,
    /// A notification queued in the period that no channel delivered: given up
    /// (`failed`), or sent and then reported undelivered by the carrier.
    Undeliverable,
    /// A notification queued in the period that reached its contact through a fallback
    /// channel: delivered by another channel than its own, or queued again on the
    /// fallback after the carrier reported the same page undelivered.
    Fallback,
    /// A non-test alarm raised in the period that cleared within `[quality]
    /// nuisance_within` of becoming active, never acknowledged; `value` the seconds it
    /// was active.
    Nuisance,
    /// An alarm (not a test) that, at the end of a month of the period (the period's end
    /// for its last month), had cleared and was not closed by a signed corrective action:
    /// counted in that month, `value` its age then in days. A deviation left open for
    /// months is counted in each of them: the backlog, month by month.
    OpenDeviation,
    /// An alarm test (`cryowatch test-alarm`) started in the period.
    AlarmTest,
    /// A test page delivered in the period (scheduled or `cryowatch test-page`).
    TestPage,
    /// A physical alarm check (`cryowatch alarm-check`) started in the period and ended:
    /// `value` 1 when it passed, 0 when it failed or was abandoned.
    AlarmCheck,
    /// A period of an `[[alarm_check_schedule]]` that ended in the report's period (up
    /// to its end or now), for each scheduled probe monitored in it, counted in its last
    /// month; `value` 1 when a check of the probe was finished (passed or failed) in it,
    /// else 0.
    AlarmCheckDue,
    /// A `[[test_page]]` occurrence in the period (up to its end or now); `value` 1 when
    /// a test page of that occurrence was delivered, else 0.
    TestPageDue,
    /// A sensor's readings in the month; `value` the readings stored, `of` those its
    /// poll interval expects (none for sensors that push).
    Readings,
    /// A probe watched by `[calibration]` or with a calibration on record, as it stood at
    /// the period's end (counted in the period's last month); `value` 1 when its
    /// calibration was in force (status `ok` or `due soon`), 0 when `overdue` or `never`.
    Calibration,
}

impl Figure {
    pub fn as_str(self) -> &'static str {
        match self {
            Figure::Alarm => "alarm",
            Figure::Excursion => "excursion",
            Figure::Ack => "ack",
            Figure::NotAcknowledged => "not_acknowledged",
            Figure::Escalation => "escalation",
            Figure::Undeliverable => "undeliverable",
            Figure::Fallback => "fallback",
            Figure::Nuisance => "nuisance",
            Figure::OpenDeviation => "open_deviation",
            Figure::AlarmTest => "alarm_test",
            Figure::TestPage => "test_page",
            Figure::TestPageDue => "test_page_due",
            Figure::AlarmCheck => "alarm_check",
            Figure::AlarmCheckDue => "alarm_check_due",
            Figure::Readings => "readings",
            Figure::Calibration => "calibration",
        }
    }
}

/// One record a figure counts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Counted {
    pub figure: Figure,
    /// `YYYY-MM` in the site's time zone.
    pub month: String,
    /// The asset's id; empty for what belongs to the site (a test page, a page without
    /// an alarm).
    pub asset: String,
    pub rule: String,
    /// Who acknowledged, or whom a page was for, as the report prints people.
    pub contact: String,
    /// The hour of day (site time zone) the alarm became active.
    pub hour: Option<u8>,
    pub value: f64,
    /// Out of how many (readings expected).
    pub of: Option<f64>,
    /// The record counted: `alarm 12`, `notification 40`, `alarm test 3`, `sensor ID`.
    pub record: String,
    pub detail: String,
}

/// Everything the quality report shows.
#[derive(Debug, Clone, Serialize)]
pub struct Indicators {
    pub site: String,
    pub from: TimestampMs,
    pub to: TimestampMs,
    pub timezone: String,
    pub generated_at: TimestampMs,
    /// `[quality] nuisance_within`, in seconds.
    pub nuisance_within_s: u64,
    /// The months of the period, `YYYY-MM`, in order.
    pub months: Vec<String>,
    pub records: Vec<Counted>,
    pub summaries: Vec<Summary>,
}
