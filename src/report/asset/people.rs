//! One name per person in a report. An acknowledgement records whoever the path knew:
//! the `--by` of the command line (`tech-c`, sometimes `user:tech-c`), a dashboard
//! user's name, or, for a signed email link and an SMS reply, the contact's printed
//! name ("Cryo Technician C"). Each is resolved here to the configured contact — by
//! id, printed name, email or phone — and printed as "Cryo Technician C (tech-c)".

use crate::config::Config;
use crate::config::notify::Contact;
use crate::notify::inbound::digits;

fn find<'a>(contacts: &'a [Contact], who: &str) -> Option<&'a Contact> {
    let who = who.trim();
    let bare = ["user:", "contact:", "cli:", "sms:", "link:", "web:", "api:"]
        .iter()
        .find_map(|p| who.strip_prefix(p))
        .unwrap_or(who)
        .trim();
    if bare.is_empty() {
        return None;
    }
    let phone = digits(bare);
    let is_phone = phone.len() >= 6 && bare.chars().all(|c| c.is_ascii_digit() || " +-().".contains(c));
    contacts.iter().find(|c| c.id == bare).or_else(|| {
        contacts.iter().find(|c| {
            c.name.eq_ignore_ascii_case(bare)
                || c.email.as_deref().is_some_and(|e| e.eq_ignore_ascii_case(bare))
                || (is_phone && c.phone.as_deref().is_some_and(|p| digits(p) == phone))
        })
    })
}

/// `who` as the report prints it: "Printed Name (contact id)" for a configured contact,
/// else as recorded.
pub(crate) fn person(cfg: &Config, who: &str) -> String {
    match find(&cfg.notify.contacts, who) {
        Some(c) if c.name != c.id => format!("{} ({})", c.name, c.id),
        Some(c) => c.id.clone(),
        None => who.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_way_a_person_is_recorded_resolves_to_one_name() {
        let contacts = vec![
            Contact {
                id: "tech-c".into(),
                name: "Cryo Technician C".into(),
                email: Some("c@example.org".into()),
                phone: Some("+1 555 123 0003".into()),
            },
            Contact {
                id: "ana".into(),
                name: "ana".into(),
                email: None,
                phone: None,
            },
        ];
        for who in [
            "tech-c",
            "user:tech-c",
            "contact:tech-c",
            "Cryo Technician C",
            "sms:+15551230003",
            "C@example.org",
        ] {
            assert_eq!(find(&contacts, who).map(|c| c.id.as_str()), Some("tech-c"), "{who}");
        }
        assert!(find(&contacts, "sms:+15559999999").is_none());
        assert!(find(&contacts, "somebody").is_none());
        assert!(find(&contacts, "user:").is_none());
    }
}
