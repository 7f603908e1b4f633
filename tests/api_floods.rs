//! Floods against the real daemon's HTTP API (SPEC: "floods of sign-ins or
//! connections": bounded memory and descriptors, pushed back, throttled, audited,
//! paged past a threshold). The scenarios live in `common::floods`, shared with the
//! fault suite's rows "sign-in flood" and "idle connections".

mod common;

use common::floods;

#[test]
fn a_sign_in_flood_is_bounded_throttled_locked_out_audited_and_paged() {
    let (m, result) = floods::sign_in_flood();
    if let Err(e) = result {
        panic!("{e}\n{}", m.summary());
    }
}

#[test]
fn half_sent_requests_are_closed_within_the_header_timeout_and_paging_goes_on() {
    let (m, result) = floods::idle_connections();
    eprintln!("idle connections: {}", m.summary());
    if let Err(e) = result {
        panic!("{e}\n{}", m.summary());
    }
}
