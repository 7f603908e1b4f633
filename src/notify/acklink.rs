//! Signed, single-use acknowledgement links for email pages.
//!
//! A link is `{api.public_url}/ack/{token}`. The token is two base64url parts (no
//! padding) joined by a dot: the payload `{alarm}.{contact}.{expires_ms}.{nonce}` and an
//! HMAC-SHA256 of it. The link is bound to one alarm and one contact (the contact's
//! configured id), expires after [`VALIDITY_MS`], and its nonce makes it single use: the
//! HTTP API records every nonce it accepts in `ack_link_used` and refuses it a second
//! time. Opening a link shows the alarm and a form; only submitting the form
//! acknowledges, so mail scanners that fetch links change nothing.
//!
//! The key is 32 random bytes from `/dev/urandom`, created on first use and kept in the
//! store (`meta`, key `ack_link_key`), so links survive restarts and every process
//! working on the store signs and checks with the same key. Deleting that row makes a
//! new key on next use and invalidates every link sent so far.

use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::Config;
use crate::config::notify::ChannelKind;
use crate::model::{TimestampMs, format_rfc3339};
use crate::store::{Store, StoreError};

/// The signing key.
pub type Key = [u8; 32];

/// How long a link stays valid after it is made.
pub const VALIDITY_MS: i64 = 24 * 3600 * 1000;

/// The `meta` row that holds the key.
pub use crate::store::acklinks::KEY_NAME;

/// Signed in front of every payload, so this key's MACs mean nothing anywhere else.
const CONTEXT: &[u8] = b"cryowatch ack link v1\n";

/// Longer tokens are refused before any decoding.
const MAX_TOKEN: usize = 1024;

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkClaims {
    pub alarm: i64,
    /// The configured contact id the link was sent to.
    pub contact: String,
    pub expires_ms: TimestampMs,
    pub nonce: String,
}

/// Why a token is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("the link is incomplete or damaged (it may have been cut when it was copied)")]
    Malformed,
    #[error("the link's signature does not match: it was altered or was not issued by this cryowatch")]
    BadSignature,
    #[error("the link expired at {}", format_rfc3339(*expired_at))]
    Expired { expired_at: TimestampMs },
}

type HmacSha256 = Hmac<Sha256>;

fn mac(key: &Key, payload: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length: this cannot fail.
    let mut m =
        <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    m.update(CONTEXT);
    m.update(payload);
    m
}

/// The token for `alarm` and `contact`, valid until `expires_ms`. `nonce` must be unique
/// per link and contain no `.` ([`new_nonce`] makes one).
pub fn sign(key: &Key, alarm: i64, contact: &str, expires_ms: TimestampMs, nonce: &str) -> String {
    debug_assert!(!nonce.contains('.'), "a nonce must not contain '.'");
    let payload = format!("{alarm}.{contact}.{expires_ms}.{nonce}");
    let tag = mac(key, payload.as_bytes()).finalize().into_bytes();
    format!("{}.{}", B64.encode(payload.as_bytes()), B64.encode(tag))
}

/// Checks `token`'s signature (in constant time) and expiry at `now_ms`.
pub fn verify(key: &Key, token: &str, now_ms: TimestampMs) -> Result<LinkClaims, LinkError> {
    if token.len() > MAX_TOKEN {
        return Err(LinkError::Malformed);
    }
    let (payload, tag) = token.split_once('.').ok_or(LinkError::Malformed)?;
    let payload = B64.decode(payload).map_err(|_| LinkError::Malformed)?;
    let tag = B64.decode(tag).map_err(|_| LinkError::Malformed)?;
    mac(key, &payload)
        .verify_slice(&tag)
        .map_err(|_| LinkError::BadSignature)?;
    let claims = parse_payload(&payload).ok_or(LinkError::Malformed)?;
    if claims.expires_ms <= now_ms {
        return Err(LinkError::Expired {
            expired_at: claims.expires_ms,
        });
    }
    Ok(claims)
}

/// `alarm.contact.expires.nonce`; the contact may itself contain dots.
fn parse_payload(payload: &[u8]) -> Option<LinkClaims> {
    let text = std::str::from_utf8(payload).ok()?;
    let (alarm, rest) = text.split_once('.')?;
    let (rest, nonce) = rest.rsplit_once('.')?;
    let (contact, expires) = rest.rsplit_once('.')?;
    if contact.is_empty() || nonce.is_empty() {
        return None;
    }
    Some(LinkClaims {
        alarm: alarm.parse().ok()?,
        contact: contact.to_string(),
        expires_ms: expires.parse().ok()?,
        nonce: nonce.to_string(),
    })
}

/// A link for `alarm` and `contact` (a configured contact id), valid for [`VALIDITY_MS`]
/// from `now_ms`: `{base_url}/ack/{token}`.
/// Fails only when the operating system's generator cannot be read for the nonce.
pub fn link(
    base_url: &str,
    key: &Key,
    alarm: i64,
    contact: &str,
    now_ms: TimestampMs,
) -> Result<String, crate::random::Error> {
    let token = sign(key, alarm, contact, now_ms + VALIDITY_MS, &new_nonce()?);
    Ok(format!("{}/ack/{token}", base_url.trim_end_matches('/')))
}

/// 128 random bits, base64url.
pub fn new_nonce() -> Result<String, crate::random::Error> {
    crate::random::token::<16>()
}

/// The installation's signing key ([`crate::store::acklinks::key`]).
pub fn key(store: &Store) -> Result<Key, StoreError> {
    crate::store::acklinks::key(store)
}

/// The body of a page to `contact` (a contact id) through `channel`: the SMS reply is
/// offered only when the contact's reply is read ([`super::message::for_recipient`]),
/// and a personal acknowledgement link is added when the channel is email and `[api]` is
/// configured. A key that cannot be read is logged and the page goes out without a link.
pub fn page_body(
    cfg: &Config,
    store: &Store,
    body: &str,
    alarm: i64,
    contact: &str,
    channel: &str,
    now: TimestampMs,
) -> String {
    let body = &match cfg.notify.contact(contact) {
        Some(c) => super::message::for_recipient(cfg, body, alarm, c),
        None => body.to_string(),
    };
    let Some(base) = cfg.sections.api_public_url.as_deref() else {
        return body.to_string();
    };
    let is_email = cfg
        .notify
        .channel(channel)
        .is_some_and(|c| matches!(c.kind, ChannelKind::Smtp { .. }));
    if !is_email {
        return body.to_string();
    }
    let key = match key(store) {
        Ok(k) => k,
        Err(e) => {
            tracing::error!(error = %e, alarm_id = alarm, contact, "page sent without an acknowledgement link");
            return body.to_string();
        }
    };
    let name = cfg.notify.contact(contact).map_or(contact, |c| c.name.as_str());
    let url = match link(base, &key, alarm, contact, now) {
        Ok(u) => u,
        Err(e) => {
            tracing::error!(error = %e, alarm_id = alarm, contact, "page sent without an acknowledgement link");
            return body.to_string();
        }
    };
    with_link(
        body,
        &url,
        name,
        &crate::model::site_time(now + VALIDITY_MS, &cfg.site.timezone),
    )
}

/// Inserts the link paragraph in front of the "To acknowledge:" paragraph of a page, or
/// at the end when there is none.
pub fn with_link(body: &str, url: &str, name: &str, valid_until: &str) -> String {
    let mut para = String::new();
    let _ = writeln!(
        para,
        "\nAcknowledge in a browser (for {name} only, single use, valid until {valid_until}):\n  {url}"
    );
    match body.find("\nTo acknowledge:") {
        Some(i) => format!("{}{para}{}", &body[..i], &body[i..]),
        None => format!("{body}{para}"),
    }
}

/// A short installation-specific tag derived from the signing key (not revealing it):
/// mail Message-IDs carry it, so two stores that both count pages from 1 never produce
/// the same Message-ID (mail systems drop a message whose Message-ID they have seen).
pub fn installation_tag(store: &Store) -> Result<String, StoreError> {
    use sha2::Digest as _;
    let key = key(store)?;
    let mut h = sha2::Sha256::new();
    h.update(b"cryowatch message-id scope");
    h.update(key);
    Ok(h.finalize().iter().take(5).map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: Key = [7; 32];
    const NOW: i64 = 1_795_420_800_000;

    #[test]
    fn a_signed_token_verifies_to_what_was_signed() {
        let t = sign(&KEY, 42, "alice", NOW + 1000, "n0nce");
        assert!(!t.contains(['/', '+', '=', '?', '#']), "{t}");
        let c = verify(&KEY, &t, NOW).expect("valid");
        assert_eq!(
            c,
            LinkClaims {
                alarm: 42,
                contact: "alice".into(),
                expires_ms: NOW + 1000,
                nonce: "n0nce".into()
            }
        );
    }

    #[test]
    fn contact_ids_with_dots_survive() {
        let t = sign(&KEY, 1, "night.shift.lead", NOW + 1, "x");
        assert_eq!(verify(&KEY, &t, NOW).expect("valid").contact, "night.shift.lead");
    }

    #[test]
    fn an_altered_token_has_a_bad_signature() {
        let t = sign(&KEY, 42, "alice", NOW + 1000, "n");
        let (_, tag) = t.split_once('.').expect("two parts");
        // Another alarm, same signature.
        let forged = format!("{}.{tag}", B64.encode(format!("43.alice.{}.n", NOW + 1000)));
        assert_eq!(verify(&KEY, &forged, NOW), Err(LinkError::BadSignature));
        // A later expiry, same signature.
        let forged = format!("{}.{tag}", B64.encode(format!("42.alice.{}.n", NOW + 10_000_000)));
        assert_eq!(verify(&KEY, &forged, NOW), Err(LinkError::BadSignature));
        // One character of the signature changed.
        let mut chars: Vec<char> = t.chars().collect();
        let last = chars.len() - 2;
        chars[last] = if chars[last] == 'A' { 'B' } else { 'A' };
        let flipped: String = chars.into_iter().collect();
        assert_eq!(verify(&KEY, &flipped, NOW), Err(LinkError::BadSignature));
        // A truncated signature.
        assert_eq!(verify(&KEY, &t[..t.len() - 4], NOW), Err(LinkError::BadSignature));
    }

    #[test]
    fn another_key_does_not_verify() {
        let t = sign(&KEY, 42, "alice", NOW + 1000, "n");
        assert_eq!(verify(&[8; 32], &t, NOW), Err(LinkError::BadSignature));
    }

    #[test]
    fn an_expired_token_is_refused() {
        let t = sign(&KEY, 42, "alice", NOW, "n");
        assert_eq!(verify(&KEY, &t, NOW), Err(LinkError::Expired { expired_at: NOW }));
        assert!(verify(&KEY, &t, NOW - 1).is_ok());
    }

    #[test]
    fn garbage_is_malformed() {
        for t in ["", "abc", "a.b", "!!!.???", &"A".repeat(5000)] {
            assert_eq!(verify(&KEY, t, NOW), Err(LinkError::Malformed), "{t}");
        }
        // Signed, but not a payload we make.
        let payload = b"hello";
        let tag = mac(&KEY, payload).finalize().into_bytes();
        let t = format!("{}.{}", B64.encode(payload), B64.encode(tag));
        assert_eq!(verify(&KEY, &t, NOW), Err(LinkError::Malformed));
    }

    #[test]
    fn links_expire_after_a_day_and_carry_fresh_nonces() {
        let a = link("https://cw.example.org/", &KEY, 5, "bob", NOW).expect("random");
        let b = link("https://cw.example.org", &KEY, 5, "bob", NOW).expect("random");
        assert_ne!(a, b);
        let token = a.strip_prefix("https://cw.example.org/ack/").expect("prefix");
        let c = verify(&KEY, token, NOW).expect("valid");
        assert_eq!(
            (c.alarm, c.contact.as_str(), c.expires_ms),
            (5, "bob", NOW + VALIDITY_MS)
        );
        assert_eq!(c.nonce.len(), 22);
        assert!(matches!(
            verify(&KEY, token, NOW + VALIDITY_MS),
            Err(LinkError::Expired { .. })
        ));
    }

    #[test]
    fn the_link_goes_in_front_of_the_other_ways_to_acknowledge() {
        let body = "Alarm id:   7\n\nTo acknowledge: reply ACK 7\n\nsite\n";
        let out = with_link(body, "https://x/ack/t", "Alice", "tomorrow");
        assert_eq!(
            out,
            "Alarm id:   7\n\nAcknowledge in a browser (for Alice only, single use, valid until tomorrow):\n  https://x/ack/t\n\nTo acknowledge: reply ACK 7\n\nsite\n"
        );
        assert!(with_link("plain\n", "u", "n", "t").ends_with("\n  u\n"));
    }
}
