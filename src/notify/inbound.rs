//! Acknowledgements that arrive as SMS replies: `ACK <alarm id> [comment]`.
//!
//! Only a configured contact's number may acknowledge; the acknowledgement is queued as
//! a request to the alarm engine, which records who, when, by which path and the comment.
//! The contact is answered by SMS through the channel the reply came in on, once the
//! engine's answer is on disk: accepted, or refused and why (an alarm already cleared,
//! already acknowledged, unknown) — nobody is left believing they acknowledged.

use serde_json::json;

use crate::config::notify::NotifyConfig;

/// An `ACK` reply, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckReply {
    pub alarm: i64,
    pub comment: String,
}

/// Parses `ACK 12`, `ack #12 topped up`, `Ack12`: `None` for anything else.
pub fn parse_ack(text: &str) -> Option<AckReply> {
    let t = text.trim();
    let rest = t.get(..3).filter(|p| p.eq_ignore_ascii_case("ack")).map(|_| &t[3..])?;
    let rest = rest.trim_start().trim_start_matches('#');
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    if digits.is_empty() {
        return None;
    }
    let alarm = digits.parse().ok()?;
    let comment = rest[digits.len()..].trim().to_string();
    Some(AckReply { alarm, comment })
}

/// An SMS as it arrived.
#[derive(Debug, Clone, Copy)]
pub struct Inbound<'a> {
    pub from: &'a str,
    pub text: &'a str,
    /// The acknowledgement path recorded (`sms`, `sms_gateway`).
    pub path: &'a str,
    /// The channel it came in on, which answers it.
    pub via: &'a str,
}

/// The SMS answering an acknowledgement by SMS, once the engine answered it.
pub fn answer(alarm: i64, ok: bool, result: &str) -> String {
    if ok {
        super::message::gsm7(&format!("cryowatch: ACK {alarm} accepted: {result}."))
    } else {
        super::message::gsm7(&format!(
            "cryowatch: ACK {alarm} NOT accepted: {result}. Nothing was acknowledged."
        ))
    }
}

/// Digits of a phone number, for comparing `+1 555 123` with `+1555123`.
pub(crate) fn digits(phone: &str) -> String {
    phone.chars().filter(char::is_ascii_digit).collect()
}

/// Handles one inbound SMS that came in through channel `via`: the acknowledgement it
/// carries is queued by `queue` (given the request's arguments, it returns the request's
/// id; [`crate::store::alarms::insert_request`] in the caller's transaction), to be
/// answered through `via`. Returns what was done, for the log.
pub fn handle_sms<E>(
    cfg: &NotifyConfig,
    sms: &Inbound<'_>,
    queue: impl FnOnce(&serde_json::Value) -> Result<i64, E>,
) -> Result<String, E> {
    let Inbound { from, text, path, via } = *sms;
    let Some(reply) = parse_ack(text) else {
        return Ok(format!("ignored an SMS from {from} that is not \"ACK <alarm id>\""));
    };
    let Some(contact) = cfg.contacts.iter().find(|ct| {
        ct.phone
            .as_deref()
            .is_some_and(|p| digits(p) == digits(from) && !digits(p).is_empty())
    }) else {
        return Ok(format!(
            "refused an acknowledgement of alarm {} from {from}: not a configured contact's number",
            reply.alarm
        ));
    };
    let comment = if reply.comment.is_empty() {
        format!("SMS reply from {from}")
    } else {
        reply.comment.clone()
    };
    let args = json!({
        "alarm": reply.alarm, "by": contact.name, "comment": comment, "path": path,
        "reply_to": contact.id, "reply_via": via,
    });
    let id = queue(&args)?;
    Ok(format!(
        "acknowledgement of alarm {} by {} ({from}) queued as request {id}",
        reply.alarm, contact.name
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_replies_are_recognised_in_the_forms_people_type() {
        let ack = |a, c: &str| {
            Some(AckReply {
                alarm: a,
                comment: c.into(),
            })
        };
        assert_eq!(parse_ack("ACK 12"), ack(12, ""));
        assert_eq!(parse_ack(" ack #12 topped up "), ack(12, "topped up"));
        assert_eq!(parse_ack("Ack12"), ack(12, ""));
        assert_eq!(parse_ack("ACK"), None);
        assert_eq!(parse_ack("ok thanks"), None);
        assert_eq!(parse_ack("ACKNOWLEDGED"), None);
        assert_eq!(parse_ack("é"), None);
    }

    #[test]
    fn phone_numbers_compare_by_digits() {
        assert_eq!(digits("+1 (555) 123-0001"), "15551230001");
    }
}
