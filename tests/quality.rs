//! The quality record against the real daemon, Mosquitto and the store: an excursion
//! raised and cleared by readings becomes an open deviation, which `cryowatch close`
//! closes with a corrective action signed with the user's password (21 CFR 11.50,
//! 11.200: user name and password); a wrong password signs nothing and is audited;
//! `audit verify` proves the signature, and catches a corrective action edited, a
//! signature edited, and a signature moved to another record (11.70).

mod common;

use std::time::Duration;

use common::mosquitto::Mosquitto;
use common::quality_lab::{
    PASSWORD, add_signer, alarms, api_section, cool, lab, lab_with, post_json, run, session, tamperer, text, verify,
    warm,
};
use common::smtp::SmtpServer;
use common::wait_for;

#[test]
fn an_excursion_ends_as_a_signed_corrective_action_that_audit_verify_proves() {
    let broker = Mosquitto::start();
    let site = lab(&broker.url());
    let daemon = site.start_daemon();
    // Warm: the alarm above -150 °C opens.
    let id = warm(&site, &broker);
    add_signer(&site);
    let id_arg = id.to_string();
    let close = |reason: &str, comment: &str, password: &str| {
        run(
            &site,
            &[
                "close",
                &id_arg,
                "--by",
                "tech-c",
                "--reason",
                reason,
                "--action",
                "lid closed, level checked",
                "--impact",
                "assessed",
                "--comment",
                comment,
            ],
            &format!("{password}\n"),
        )
    };
    // Still active: nothing to close yet.
    let early = close("lid-open", "", PASSWORD);
    assert_eq!(early.status.code(), Some(2), "{}", text(&early));
    assert!(text(&early).contains("has cleared"), "{}", text(&early));

    // Cold again: the alarm clears and is an open deviation.
    cool(&site, &broker);
    let open = alarms(&site, "--open-deviations");
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0]["id"].as_i64(), Some(id));

    // Refused, nothing recorded: an unknown reason, a reason's missing comment (exit 2);
    // a wrong password (exit 1, audited).
    let unknown = close("gremlins", "", PASSWORD);
    assert_eq!(unknown.status.code(), Some(2), "{}", text(&unknown));
    assert!(text(&unknown).contains("lid-open, supply"), "{}", text(&unknown));
    let no_comment = close("supply", "", PASSWORD);
    assert_eq!(no_comment.status.code(), Some(2), "{}", text(&no_comment));
    let wrong = close("lid-open", "", "not the password at all");
    assert_eq!(wrong.status.code(), Some(1), "{}", text(&wrong));
    assert!(text(&wrong).contains("nothing was signed"), "{}", text(&wrong));
    assert_eq!(
        alarms(&site, "--open-deviations").len(),
        1,
        "a refused close recorded something"
    );
    let log = run(&site, &["audit", "log", "--kind", "signature"], "");
    assert!(text(&log).contains("signature.refused"), "{}", text(&log));

    // Signed with the right password: closed, and no longer an open deviation.
    let closed = close("lid-open", "door seal worn", PASSWORD);
    assert!(closed.status.success(), "{}", text(&closed));
    let said = text(&closed);
    assert!(
        said.contains("Cryo Technician C (tech-c)") && said.contains("\"corrective action\""),
        "{said}"
    );
    assert!(alarms(&site, "--open-deviations").is_empty());
    let again = close("lid-open", "", PASSWORD);
    assert_eq!(again.status.code(), Some(2), "closed twice: {}", text(&again));
    site.stop_daemon(daemon);
    let proven = verify(&site);
    assert!(proven.status.success(), "{}", text(&proven));

    // Edited after signing: each is caught, naming what changed.
    let tamper = tamperer(&site);
    tamper(
        "UPDATE corrective_action SET impact = 'none'",
        "UPDATE corrective_action SET impact = 'assessed'",
        "no longer matches what Cryo Technician C signed",
    );
    tamper(
        "UPDATE signature SET printed_name = 'Somebody Else'",
        "UPDATE signature SET printed_name = 'Cryo Technician C'",
        "was edited or copied",
    );
    // The signature moved onto another record (an alarm of its own, closed by hand).
    tamper(
        &format!(
            "INSERT INTO signature (id, t, user, printed_name, meaning, subject, content_sha256, audit)
             SELECT id + 1, t, user, printed_name, meaning, 'alarm {}', content_sha256, audit FROM signature",
            id + 1
        ),
        "DELETE FROM signature WHERE id > 1",
        "was edited or copied",
    );
    tamper(
        "DELETE FROM corrective_action",
        &format!(
            "INSERT INTO corrective_action (alarm, t, reason, reason_text, action, impact, comment, signature)
             SELECT {id}, t, 'lid-open', 'Lid left open after retrieval', 'lid closed, level checked', 'assessed',
                    'door seal worn', 1 FROM signature WHERE id = 1"
        ),
        "corrective action is missing",
    );
    let proven = verify(&site);
    assert!(proven.status.success(), "restored: {}", text(&proven));
}

#[test]
fn an_excursion_left_open_past_close_within_is_paged_once_as_a_reminder() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().expect("dir");
    let smtp = SmtpServer::start(dir.path());
    let site = lab_with(
        &broker.url(),
        &format!(
            r#"[[contact]]
id = "qa"
name = "Quinn Assurance"
email = "qa@example.org"
[[channel]]
id = "email"
kind = "smtp"
host = "127.0.0.1"
port = {}
tls = "none"
from = "cryowatch <cryowatch@example.org>"
[quality]
notify = ["contact:qa"]
close_within = "2s"
"#,
            smtp.port
        ),
    );
    let daemon = site.start_daemon();
    let id = warm(&site, &broker);
    cool(&site, &broker);
    let status = run(&site, &["status"], "");
    assert!(
        text(&status).contains(&format!(
            "1 open deviation(s) await a signed corrective action (the oldest: alarm {id}"
        )),
        "{}",
        text(&status)
    );
    let reminders = || {
        smtp.messages()
            .into_iter()
            .filter(|m| m.header("Subject").is_some_and(|s| s.starts_with("REMINDER")))
            .collect::<Vec<_>>()
    };
    let first = wait_for(Duration::from_secs(20), "a reminder of the open deviation", || {
        reminders().into_iter().next()
    });
    assert_eq!(first.rcpt_tos, ["qa@example.org"]);
    assert!(
        first
            .header("Subject")
            .is_some_and(|s| s.contains(&format!("alarm {id} "))),
        "{:?}",
        first.header("Subject")
    );
    assert!(
        first.body.contains(&format!("cryowatch close -c FILE {id} --by USER")),
        "{}",
        first.body
    );
    // Once: the dispatcher passes many times meanwhile.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(reminders().len(), 1, "the reminder was sent more than once");
    site.stop_daemon(daemon);
}

#[test]
fn a_signed_in_person_closes_through_the_api_with_both_components_first_and_a_token_cannot_sign() {
    let broker = Mosquitto::start();
    let port = common::free_port();
    let token = "qa-operator-token-0123456789";
    let site = lab_with(&broker.url(), &api_section(port, token));
    let daemon = site.start_daemon();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    // Two excursions, each raised and cleared.
    let mut ids = Vec::new();
    for _ in 0..2 {
        ids.push(warm(&site, &broker));
        cool(&site, &broker);
    }
    add_signer(&site);
    let close = |id: i64, headers: &[(&str, &str)], body: serde_json::Value| {
        post_json(addr, &format!("/api/v1/alarms/{id}/close"), headers, &body)
    };
    let action = |extra: serde_json::Value| {
        let mut b = serde_json::json!({ "reason": "lid-open", "action": "lid closed", "impact": "none" });
        if let (Some(b), Some(e)) = (b.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        b
    };
    // A token is not a person: it cannot sign.
    let bearer = format!("Bearer {token}");
    let r = close(
        ids[0],
        &[("Authorization", &bearer)],
        action(serde_json::json!({ "password": PASSWORD })),
    );
    assert_eq!(r.status, 403, "{}", r.body);

    let (session, csrf) = session(addr);
    let as_session = [("Cookie", session.as_str()), ("X-CSRF-Token", csrf.as_str())];
    // The first signature of the session needs the user name as well as the password.
    let r = close(ids[0], &as_session, action(serde_json::json!({ "password": PASSWORD })));
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r.body.contains("user name and your password"), "{}", r.body);
    let r = close(
        ids[0],
        &as_session,
        action(serde_json::json!({ "username": "tech-c", "password": "not the password at all" })),
    );
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(
        alarms(&site, "--open-deviations").len(),
        2,
        "a refused signature recorded something"
    );
    let r = close(
        ids[0],
        &as_session,
        action(serde_json::json!({ "username": "tech-c", "password": PASSWORD })),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("\"printed_name\":\"Cryo Technician C\""), "{}", r.body);
    // Later in the same session, on the dashboard: the password alone. The open
    // deviation is listed with its form, outside the refreshed part.
    let page = common::http::call(addr, "GET", "/", &[("Cookie", &session)], None).expect("dashboard");
    assert!(
        page.body.contains(&format!("action=\"/alarms/{}/close\"", ids[1]))
            && page.body.contains("Lid left open after retrieval"),
        "{}",
        page.body
    );
    let form = common::http::form(&[
        ("csrf", &csrf),
        ("reason", "supply"),
        ("action", "supply dewar exchanged"),
        ("impact", "quarantined"),
        ("comment", "racks moved to dewar 2 meanwhile"),
        ("username", ""),
        ("password", PASSWORD),
    ]);
    let r = common::http::call(
        addr,
        "POST",
        &format!("/alarms/{}/close", ids[1]),
        &[
            ("Cookie", &session),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        Some(&form),
    )
    .expect("POST the closing form");
    assert_eq!(r.status, 303, "{}", r.body);
    let page = common::http::call(
        addr,
        "GET",
        &format!("/?closed={}", ids[1]),
        &[("Cookie", &session)],
        None,
    )
    .expect("dashboard");
    assert!(
        page.body
            .contains(&format!("Alarm {} closed with a signed corrective action", ids[1]))
            && !page.body.contains(&format!("action=\"/alarms/{}/close\"", ids[1])),
        "{}",
        page.body
    );
    let r = close(ids[1], &as_session, action(serde_json::json!({ "password": PASSWORD })));
    assert_eq!(r.status, 409, "closed twice: {}", r.body);
    assert!(alarms(&site, "--open-deviations").is_empty());
    site.stop_daemon(daemon);
    let proven = verify(&site);
    assert!(proven.status.success(), "{}", text(&proven));
}
