//! The JSON API against a real daemon (cryosim's dewar over Modbus): every endpoint
//! refuses the unauthenticated and the wrong role; viewers read, operators acknowledge
//! and shelve, and every accepted change is in the audit trail with its caller; bad
//! input gets a clean 4xx and the daemon keeps running.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::api_lab::{self, ADMIN, OPERATOR, VIEWER};
use common::cryosim::CryoSim;
use common::http::{Response, call};
use common::{Proc, Site, cryowatch_output, free_port, wait_for};

const PATIENCE: Duration = Duration::from_secs(20);

struct Api {
    _dir: tempfile::TempDir,
    sim: CryoSim,
    site: Site,
    daemon: Option<Proc>,
    addr: SocketAddr,
}

impl Api {
    fn start() -> Api {
        let dir = tempfile::tempdir().expect("dir");
        let sim = CryoSim::start(dir.path());
        let port = free_port();
        let site = Site::new(&api_lab::config("api lab", port, sim.modbus));
        let daemon = site.start_daemon();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let api = Api {
            _dir: dir,
            sim,
            site,
            daemon: Some(daemon),
            addr,
        };
        wait_for(PATIENCE, "the API and the first readings", || {
            let r = api.get("/api/v1/readyz", Some(VIEWER)).ok()?;
            (r.status == 200).then_some(())
        });
        api
    }

    fn get(&self, path: &str, token: Option<&str>) -> Result<Response, String> {
        self.send("GET", path, token, &[], None)
    }

    fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        extra: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<Response, String> {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers: Vec<(&str, &str)> = extra.to_vec();
        if let Some(a) = &auth {
            headers.push(("Authorization", a));
        }
        call(self.addr, method, path, &headers, body)
    }

    fn post_json(&self, path: &str, token: Option<&str>, body: &str) -> Response {
        self.send(
            "POST",
            path,
            token,
            &[("Content-Type", "application/json")],
            Some(body.as_bytes()),
        )
        .expect("request")
    }

    fn open_alarm(&self) -> i64 {
        wait_for(PATIENCE, "an open alarm", || {
            let r = self.get("/api/v1/alarms?active=true", Some(VIEWER)).ok()?;
            r.json().as_array()?.first()?["id"].as_i64()
        })
    }

    fn alarm(&self, id: i64) -> serde_json::Value {
        let all = self.get("/api/v1/alarms", Some(VIEWER)).expect("alarms").json();
        all.as_array()
            .and_then(|a| a.iter().find(|x| x["id"].as_i64() == Some(id)).cloned())
            .unwrap_or_default()
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        if let Some(d) = self.daemon.take() {
            self.site.stop_daemon(d);
        }
    }
}

/// Every documented route, with a path that exists.
fn routes() -> Vec<(&'static str, String)> {
    cryowatch::api::v1::ROUTES
        .iter()
        .map(|(m, p)| {
            let path = p
                .replace("{id}/ack", "1/ack")
                .replace("sensors/{id}", "sensors/dewar-1.temp")
                .replace("/history", "/history?sensor=dewar-1.temp");
            (if *m == "post" { "POST" } else { "GET" }, path)
        })
        .collect()
}

#[test]
fn every_endpoint_refuses_the_unauthenticated_and_wrong_tokens() {
    let api = Api::start();
    let mut paths = routes();
    paths.push(("GET", "/metrics".to_string()));
    for (method, path) in &paths {
        for token in [None, Some("not-a-token-at-all-000")] {
            let r = api
                .send(
                    method,
                    path,
                    token,
                    &[("Content-Type", "application/json")],
                    Some(b"{}"),
                )
                .expect("request");
            assert_eq!(r.status, 401, "{method} {path} with {token:?}: {}", r.body);
            assert!(
                r.header("WWW-Authenticate").is_some_and(|v| v.starts_with("Bearer")),
                "{path}"
            );
            assert!(r.json()["error"].as_str().is_some(), "{path}: {}", r.body);
        }
    }
    // Nothing was changed by the refused calls.
    let log = cryowatch_output(&["audit", "log", "-c", &api.site.config_str(), "--kind", "api"]);
    assert_eq!(
        String::from_utf8_lossy(&log.stdout).trim(),
        "",
        "no API change recorded"
    );
}

#[test]
fn a_viewer_reads_everything_and_changes_nothing() {
    let api = Api::start();
    let status = api.get("/api/v1/status", Some(VIEWER)).expect("status");
    assert_eq!(status.status, 200, "{}", status.body);
    let s = status.json();
    assert_eq!(s["site"], "api lab");
    let sensor = &s["assets"][0]["sensors"][0];
    assert_eq!(sensor["sensor"], "dewar-1.temp");
    assert!(sensor["value"].as_f64().is_some_and(|v| v < -150.0), "{sensor}");
    assert_eq!(s["assets"][0]["state"], "ok");
    let csv = api
        .send(
            "GET",
            "/api/v1/history?sensor=dewar-1.temp&from=-1h",
            Some(VIEWER),
            &[("Accept", "text/csv")],
            None,
        )
        .expect("csv");
    assert_eq!(csv.status, 200);
    assert!(csv.header("Content-Type").is_some_and(|c| c.starts_with("text/csv")));
    assert!(csv.body.starts_with("time,sensor,value,unit,quality\n"), "{}", csv.body);
    let json = api
        .get("/api/v1/history?sensor=dewar-1.temp&from=-1h", Some(VIEWER))
        .expect("json");
    assert!(json.json().as_array().is_some_and(|a| !a.is_empty()), "{}", json.body);
    assert_eq!(api.get("/api/v1/healthz", Some(VIEWER)).expect("h").status, 200);
    let ready = api.get("/api/v1/readyz", Some(VIEWER)).expect("ready").json();
    assert_eq!(ready["ready"], true);
    let doc = api.get("/api/v1/openapi.json", Some(VIEWER)).expect("doc").json();
    assert_eq!(doc["openapi"], "3.1.0");
    // The dewar warms; the viewer sees the alarm but cannot acknowledge or shelve it.
    assert!(api.sim.command("set dewar-1 warmup:600").starts_with("ok"));
    let id = api.open_alarm();
    let r = api.post_json(
        &format!("/api/v1/alarms/{id}/ack"),
        Some(VIEWER),
        r#"{"by":"vic","comment":"x"}"#,
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("operator"), "{}", r.body);
    let r = api.post_json(
        "/api/v1/sensors/dewar-1.temp/shelve",
        Some(VIEWER),
        r#"{"for":"1h","reason":"x","by":"v"}"#,
    );
    assert_eq!(r.status, 403);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        api.alarm(id)["acknowledged_by"].is_null(),
        "nothing changed: {}",
        api.alarm(id)
    );
}

#[test]
fn an_operator_acknowledges_and_shelves_and_the_trail_names_the_caller() {
    let api = Api::start();
    assert!(api.sim.command("set dewar-1 warmup:600").starts_with("ok"));
    let id = api.open_alarm();
    // A token is not a person: the body must say who.
    let r = api.post_json(
        &format!("/api/v1/alarms/{id}/ack"),
        Some(OPERATOR),
        r#"{"comment":"x"}"#,
    );
    assert_eq!(r.status, 400, "{}", r.body);
    let r = api.post_json(
        &format!("/api/v1/alarms/{id}/ack"),
        Some(OPERATOR),
        r#"{"by":"ana","comment":"lid was open, closed it"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["ok"], true);
    let a = api.alarm(id);
    assert_eq!(
        (a["acknowledged_by"].as_str(), a["comment"].as_str()),
        (Some("ana"), Some("lid was open, closed it")),
        "{a}"
    );
    // Twice: refused with the engine's words.
    let again = api.post_json(&format!("/api/v1/alarms/{id}/ack"), Some(OPERATOR), r#"{"by":"ana"}"#);
    assert_eq!(again.status, 409, "{}", again.body);
    let r = api.post_json(
        "/api/v1/sensors/dewar-1.temp/shelve",
        Some(ADMIN),
        r#"{"for":"2h","reason":"probe swap","by":"ben"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let log = cryowatch_output(&["audit", "log", "-c", &api.site.config_str(), "--kind", "api"]);
    let log = String::from_utf8_lossy(&log.stdout).to_string();
    assert!(
        log.lines()
            .any(|l| l.contains("api.ack") && l.contains("token:ops") && l.contains("ana")),
        "{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("api.shelve") && l.contains("token:root")),
        "{log}"
    );
    assert!(
        cryowatch_output(&["audit", "verify", "-c", &api.site.config_str()])
            .status
            .success()
    );
}

#[test]
fn bad_input_gets_a_clean_4xx_and_the_daemon_keeps_running() {
    let api = Api::start();
    let cases: Vec<(&str, String, Option<Vec<u8>>, u16)> = vec![
        ("POST", "/api/v1/alarms/1/ack".into(), Some(b"{not json".to_vec()), 400),
        (
            "POST",
            "/api/v1/alarms/1/ack".into(),
            Some(br#"{"by":"a","unexpected":1}"#.to_vec()),
            422,
        ),
        (
            "POST",
            "/api/v1/alarms/1/ack".into(),
            Some(br#"{"by":"a","comment":7}"#.to_vec()),
            422,
        ),
        (
            "POST",
            "/api/v1/alarms/abc/ack".into(),
            Some(br#"{"by":"a"}"#.to_vec()),
            404,
        ),
        (
            "POST",
            "/api/v1/alarms/999999/ack".into(),
            Some(br#"{"by":"a"}"#.to_vec()),
            404,
        ),
        ("POST", "/api/v1/alarms/1/ack".into(), Some(vec![b' '; 200_000]), 413),
        (
            "POST",
            "/api/v1/sensors/nope/shelve".into(),
            Some(br#"{"for":"1h","reason":"r","by":"a"}"#.to_vec()),
            404,
        ),
        (
            "POST",
            "/api/v1/sensors/dewar-1.temp/shelve".into(),
            Some(br#"{"for":"soon","reason":"r","by":"a"}"#.to_vec()),
            400,
        ),
        (
            "POST",
            "/api/v1/sensors/dewar-1.temp/shelve".into(),
            Some(br#"{"for":"30d","reason":"r","by":"a"}"#.to_vec()),
            409,
        ),
        ("GET", "/api/v1/history".into(), None, 400),
        ("GET", "/api/v1/history?sensor=../../etc/passwd".into(), None, 404),
        (
            "GET",
            "/api/v1/history?sensor=dewar-1.temp&from=yesterday".into(),
            None,
            400,
        ),
        (
            "GET",
            "/api/v1/history?sensor=dewar-1.temp&from=now&to=-1h".into(),
            None,
            400,
        ),
        ("GET", "/api/v1/alarms?active=maybe".into(), None, 400),
        ("GET", "/api/v1/../../../etc/passwd".into(), None, 404),
        ("GET", "/api/v1/%2e%2e/%2e%2e/Cargo.toml".into(), None, 404),
        ("GET", "/assets/../Cargo.toml".into(), None, 404),
    ];
    for (method, path, body, want) in &cases {
        let r = api
            .send(
                method,
                path,
                Some(OPERATOR),
                &[("Content-Type", "application/json")],
                body.as_deref(),
            )
            .expect("request");
        assert_eq!(r.status, *want, "{method} {path}: {}", r.body);
    }
    // JSON errors say what is wrong.
    let r = api.post_json("/api/v1/alarms/1/ack", Some(OPERATOR), "{not json");
    assert!(
        r.json()["error"].as_str().is_some_and(|e| e.contains("body")),
        "{}",
        r.body
    );
    // Still alive and well.
    assert_eq!(api.get("/api/v1/readyz", Some(VIEWER)).expect("ready").status, 200);
}

#[test]
fn readyz_says_which_source_went_silent() {
    let mut api = Api::start();
    api.sim.kill();
    let r = wait_for(PATIENCE, "readyz to see the silent device", || {
        let r = api.get("/api/v1/readyz", Some(VIEWER)).ok()?;
        (r.status == 503).then_some(r)
    });
    let body = r.json();
    assert_eq!(body["ready"], false);
    assert_eq!(body["silent_sources"][0], "modbus:ctrl", "{body}");
    assert_eq!(body["store_writable"], true);
}

/// `cryowatch user add`: password from standard input, stored as an Argon2id hash,
/// audited with who ran it; bad names and short passwords exit 2.
#[test]
fn user_add_stores_only_a_hash_and_is_audited() {
    use std::io::Write as _;
    let site = Site::new(
        "[site]\nname = \"users\"\n[store]\npath = \"{dir}/cryowatch.db\"\n[[asset]]\nid = \"a\"\nkind = \"ln2_dewar\"\n",
    );
    let add = |name: &str, password: &str| {
        let mut child = common::cryowatch()
            .args(["user", "add", "-c", &site.config_str(), name, "--role", "operator"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        if let Some(mut stdin) = child.stdin.take() {
            writeln!(stdin, "{password}").expect("password");
        }
        child.wait_with_output().expect("wait")
    };
    let out = add("ana", "correct horse battery staple");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("user ana added with role operator"));
    let db = rusqlite::Connection::open(site.path().join("cryowatch.db")).expect("db");
    let hash: String = db
        .query_row("SELECT hash FROM api_user WHERE name = 'ana'", [], |r| r.get(0))
        .expect("hash");
    assert!(hash.starts_with("$argon2id$") && !hash.contains("horse"), "{hash}");
    assert_eq!(add("ana", "short").status.code(), Some(2));
    assert_eq!(add("a b", "correct horse battery staple").status.code(), Some(2));
    let log = cryowatch_output(&["audit", "log", "-c", &site.config_str(), "--kind", "user"]);
    assert!(String::from_utf8_lossy(&log.stdout).contains("user.added"));
}
