//! Signed acknowledgements against the real daemon, Mosquitto and the store: an alarm
//! raised by readings is acknowledged with an electronic signature (meaning
//! `acknowledged`) from the command line (`ack --sign`, password on standard input,
//! with the daemon running and without it) and through the JSON API and the dashboard
//! with a web session (user name and password at the session's first signature, the
//! password after); a wrong password acknowledges nothing and is audited; a token still
//! acknowledges, unsigned. `audit verify` proves the signatures and catches an edited
//! signature, an edited acknowledgement, a signature moved onto another alarm's
//! acknowledgement, and a deleted one.

mod common;

use common::mosquitto::Mosquitto;
use common::quality_lab::{
    PASSWORD, add_signer, api_section, cool, lab, lab_with, post_json, run, session, tamperer, text, verify, warm,
};

/// The listed alarm `id`, open or not.
fn listed(site: &common::Site, id: i64) -> serde_json::Value {
    let out = run(site, &["alarms", "--json"], "");
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout)
        .unwrap_or_else(|e| panic!("alarms --json ({e}): {}", text(&out)))
        .into_iter()
        .find(|a| a["id"].as_i64() == Some(id))
        .unwrap_or_else(|| panic!("alarm {id} is not listed"))
}

/// Whether alarm `id`'s acknowledgement is listed as signed by Cryo Technician C.
fn signed_by_tech_c(site: &common::Site, id: i64) -> bool {
    let a = listed(site, id);
    a["ack_signed"] == serde_json::json!(true)
        && a["ack_signed_by"]["printed_name"] == "Cryo Technician C"
        && a["ack_signed_by"]["user"] == "tech-c"
        && a["acknowledged_by"] == "tech-c"
}

#[test]
fn ack_sign_on_the_command_line_signs_with_the_right_password_only_and_audit_verify_proves_it() {
    let broker = Mosquitto::start();
    let site = lab(&broker.url());
    let daemon = site.start_daemon();
    let first = warm(&site, &broker);
    add_signer(&site);
    let ack = |id: i64, password: &str| {
        let id = id.to_string();
        let args = [
            "ack",
            &id,
            "--by",
            "tech-c",
            "--comment",
            "lid closed, level checked",
            "--sign",
        ];
        run(&site, &args, &format!("{password}\n"))
    };

    // A wrong password: nothing acknowledged, the attempt audited, exit 1.
    let wrong = ack(first, "not the password at all");
    assert_eq!(wrong.status.code(), Some(1), "{}", text(&wrong));
    assert!(text(&wrong).contains("nothing was signed"), "{}", text(&wrong));
    let a = listed(&site, first);
    assert_eq!(
        (a["state"].as_str(), a["acknowledged_by"].as_str()),
        (Some("active"), None)
    );
    let log = run(&site, &["audit", "log", "--kind", "signature"], "");
    assert!(text(&log).contains("signature.refused"), "{}", text(&log));

    // The right one, through the running daemon: acknowledged and signed.
    let signed = ack(first, PASSWORD);
    assert!(signed.status.success(), "{}", text(&signed));
    assert!(
        text(&signed).contains("signed by Cryo Technician C (tech-c)"),
        "{}",
        text(&signed)
    );
    assert_eq!(listed(&site, first)["state"], "acknowledged");
    assert!(signed_by_tech_c(&site, first), "{:?}", listed(&site, first));

    // Without a daemon, the command applies it itself, signed the same way.
    cool(&site, &broker);
    let second = warm(&site, &broker);
    site.stop_daemon(daemon);
    let signed = ack(second, PASSWORD);
    assert!(signed.status.success(), "{}", text(&signed));
    assert!(signed_by_tech_c(&site, second), "{:?}", listed(&site, second));
    let proven = verify(&site);
    assert!(proven.status.success(), "{}", text(&proven));

    // Edited after signing: each is caught.
    let tamper = tamperer(&site);
    tamper(
        "UPDATE signature SET printed_name = 'Somebody Else' WHERE meaning = 'acknowledged'",
        "UPDATE signature SET printed_name = 'Cryo Technician C'",
        "was edited or copied",
    );
    tamper(
        &format!("UPDATE alarm_event SET comment = 'nothing to see' WHERE alarm = {first} AND kind = 'acknowledged'"),
        &format!(
            "UPDATE alarm_event SET comment = 'lid closed, level checked' WHERE alarm = {first} AND kind = 'acknowledged'"
        ),
        &format!("the acknowledgement of alarm {first} no longer matches what Cryo Technician C signed"),
    );
    // The first alarm's signature moved onto the second alarm's acknowledgement.
    tamper(
        &format!(
            "DELETE FROM ack_signature WHERE alarm = {second};
             UPDATE ack_signature SET alarm = {second},
                 event = (SELECT id FROM alarm_event WHERE alarm = {second} AND kind = 'acknowledged')"
        ),
        &format!(
            "UPDATE ack_signature SET alarm = {first},
                 event = (SELECT id FROM alarm_event WHERE alarm = {first} AND kind = 'acknowledged');
             INSERT INTO ack_signature (signature, alarm, event)
                 SELECT s.id, {second}, e.id FROM signature s, alarm_event e
                 WHERE s.subject = 'alarm {second}' AND e.alarm = {second} AND e.kind = 'acknowledged'"
        ),
        "or the signature was copied onto it",
    );
    tamper(
        &format!("DELETE FROM ack_signature WHERE alarm = {second}"),
        &format!(
            "INSERT INTO ack_signature (signature, alarm, event)
                 SELECT s.id, {second}, e.id FROM signature s, alarm_event e
                 WHERE s.subject = 'alarm {second}' AND e.alarm = {second} AND e.kind = 'acknowledged'"
        ),
        "its signature is missing from the store (deleted)",
    );
    let proven = verify(&site);
    assert!(proven.status.success(), "restored: {}", text(&proven));
}

#[test]
fn a_session_signs_acknowledgements_with_both_components_first_and_a_token_acknowledges_unsigned() {
    let broker = Mosquitto::start();
    let port = common::free_port();
    let token = "qa-operator-token-0123456789";
    let site = lab_with(&broker.url(), &api_section(port, token));
    let daemon = site.start_daemon();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    add_signer(&site);
    let ack = |id: i64, headers: &[(&str, &str)], body: serde_json::Value| {
        post_json(addr, &format!("/api/v1/alarms/{id}/ack"), headers, &body)
    };
    let bearer = format!("Bearer {token}");
    let as_token = [("Authorization", bearer.as_str())];
    let (cookie, csrf) = session(addr);
    let as_session = [("Cookie", cookie.as_str()), ("X-CSRF-Token", csrf.as_str())];

    let first = warm(&site, &broker);
    // A token is not a person: it cannot sign.
    let r = ack(
        first,
        &as_token,
        serde_json::json!({ "by": "ops", "password": PASSWORD }),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    // The session's first signature needs the user name; a wrong password signs nothing.
    let r = ack(first, &as_session, serde_json::json!({ "password": PASSWORD }));
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r.body.contains("user name and your password"), "{}", r.body);
    let r = ack(
        first,
        &as_session,
        serde_json::json!({ "username": "tech-c", "password": "not the password at all" }),
    );
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(
        listed(&site, first)["state"],
        "active",
        "a refused signature acknowledged"
    );
    let log = run(&site, &["audit", "log", "--kind", "signature"], "");
    assert!(text(&log).contains("signature.refused"), "{}", text(&log));
    let body = serde_json::json!({ "username": "tech-c", "password": PASSWORD, "comment": "lid closed" });
    let r = ack(first, &as_session, body);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("signed by Cryo Technician C (tech-c)"), "{}", r.body);
    assert!(signed_by_tech_c(&site, first), "{:?}", listed(&site, first));
    cool(&site, &broker);

    // Later in the session, on the dashboard's form: the password alone signs.
    let second = warm(&site, &broker);
    let page = common::http::call(addr, "GET", "/", &[("Cookie", &cookie)], None).expect("dashboard");
    assert!(
        page.body.contains(&format!("action=\"/alarms/{second}/ack\""))
            && page.body.contains("Sign the acknowledgement"),
        "{}",
        page.body
    );
    let form = common::http::form(&[
        ("csrf", &csrf),
        ("comment", "door seal replaced"),
        ("username", ""),
        ("password", PASSWORD),
    ]);
    let headers = [
        ("Cookie", cookie.as_str()),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ];
    let r = common::http::call(addr, "POST", &format!("/alarms/{second}/ack"), &headers, Some(&form))
        .expect("POST the acknowledgement form");
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(signed_by_tech_c(&site, second), "{:?}", listed(&site, second));
    cool(&site, &broker);

    // A token acknowledges as before: it stops paging, and is no signature.
    let third = warm(&site, &broker);
    let r = ack(third, &as_token, serde_json::json!({ "by": "night shift" }));
    assert_eq!(r.status, 200, "{}", r.body);
    let a = listed(&site, third);
    assert_eq!(
        (&a["acknowledged_by"], &a["ack_signed"], &a["ack_signed_by"]),
        (
            &serde_json::json!("night shift"),
            &serde_json::json!(false),
            &serde_json::Value::Null
        ),
        "{a:?}"
    );
    let history = common::http::call(addr, "GET", "/alarms/history", &[("Cookie", &cookie)], None).expect("history");
    assert_eq!(
        history.body.matches("signed: Cryo Technician C").count(),
        2,
        "{}",
        history.body
    );
    site.stop_daemon(daemon);
    let proven = verify(&site);
    assert!(proven.status.success(), "{}", text(&proven));
}
