//! Floods against the HTTP API (`common::floods`): a sign-in flood (peak RSS, pushed
//! back, lockout, audited, paged) and idle connections (closed within the header
//! timeout, descriptors bounded, paging goes on).

use crate::common::floods;
use crate::outcome::Outcome;

pub fn sign_in_flood() -> Outcome {
    let (m, result) = floods::sign_in_flood();
    Outcome {
        pages_expected: Some(1),
        pages_sent: Some(u64::from(m.paged_after.is_some())),
        pages_missed: Some(u64::from(m.paged_after.is_none())),
        pages_duplicated: Some(0),
        recovery: m.paged_after,
        detail: m.summary(),
        error: result.err(),
        ..Outcome::new("sign-in flood")
    }
}

pub fn idle_connections() -> Outcome {
    let (m, result) = floods::idle_connections();
    Outcome {
        pages_expected: Some(1),
        pages_sent: Some(u64::from(m.paged_during)),
        pages_missed: Some(u64::from(!m.paged_during)),
        pages_duplicated: Some(0),
        recovery: m.ready_after,
        detail: m.summary(),
        error: result.err(),
        ..Outcome::new("idle connections")
    }
}
