//! Acknowledgement by the signed link of an email page, end to end in one process: the
//! real daemon (store writer, alarm engine, clock) on a temporary store, the HTTP API
//! served next to it on a loopback port, and a real HTTP client. Readings go straight to
//! the store writer; the alarm, its acknowledgement and the used links are read back
//! from the store.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cryowatch::api::{self, ApiState};
use cryowatch::config::{self, Config};
use cryowatch::daemon::Daemon;
use cryowatch::model::{Reading, now_ms};
use cryowatch::notify::acklink;
use cryowatch::pipeline::Batch;
use cryowatch::store::Store;
use cryowatch::store::alarms::AlarmRow;
use reqwest::StatusCode;
use tokio_util::sync::CancellationToken;

const PATIENCE: Duration = Duration::from_secs(15);

/// Two dewars whose temperature alarms (no delay) are raised above -150 °C, and two
/// contacts. MQTT points at a closed port: readings are sent to the writer directly.
const CONFIG: &str = r#"
[site]
name = "ack link <lab>"
timezone = "Europe/Berlin"
[store]
path = "{dir}/cryowatch.db"
[mqtt]
url = "mqtt://127.0.0.1:1"
client_id = "ack-link-test"
[[asset]]
id = "dewar-1"
name = "Dewar <1>"
kind = "ln2_dewar"
location = "Room 214"
[[asset]]
id = "dewar-2"
name = "Dewar 2"
kind = "ln2_dewar"
[[sensor]]
id = "dewar-1.temp"
asset = "dewar-1"
quantity = "temperature"
unit = "degC"
stale_after = "1h"
[sensor.mqtt]
topic = "t/d1"
[[sensor]]
id = "dewar-2.temp"
asset = "dewar-2"
quantity = "temperature"
unit = "degC"
stale_after = "1h"
[sensor.mqtt]
topic = "t/d2"
[[rule]]
id = "d1-warm"
sensor = "dewar-1.temp"
kind = "high"
threshold = -150.0
severity = "critical"
[[rule]]
id = "d2-warm"
sensor = "dewar-2.temp"
kind = "high"
threshold = -150.0
severity = "critical"
[[contact]]
id = "alice"
name = "Alice Nguyen"
email = "alice@example.org"
[[contact]]
id = "bob"
name = "Bob O'Hara"
email = "bob@example.org"
"#;

fn load(dir: &Path, text: &str) -> Config {
    let file = dir.join("cryowatch.toml");
    std::fs::write(&file, text.replace("{dir}", &dir.display().to_string())).expect("write config");
    config::load(&file).unwrap_or_else(|e| panic!("config: {e}"))
}

struct Rig {
    _dir: tempfile::TempDir,
    config: Config,
    daemon: Option<Daemon>,
    shutdown: CancellationToken,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    base: String,
    key: acklink::Key,
    store: Store,
    http: reqwest::Client,
}

impl Rig {
    async fn start() -> Rig {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().expect("temp dir");
        let config = load(dir.path(), CONFIG);
        let daemon = Daemon::start(&config).expect("daemon starts");
        let state = ApiState::open(Arc::new(config.clone())).expect("api state");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(api::serve(listener, state, shutdown.clone()));
        let store = Store::open(&config.store.path).expect("store");
        let key = acklink::key(&store).expect("key");
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        Rig {
            _dir: dir,
            config,
            daemon: Some(daemon),
            shutdown,
            server: Some(server),
            base,
            key,
            store,
            http,
        }
    }

    async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(s) = self.server.take() {
            s.await.expect("server task").expect("server");
        }
        if let Some(d) = self.daemon.take() {
            d.stop().await;
        }
    }

    async fn reading(&self, sensor: &str, value: f64) {
        let i = self.config.sensor_index(sensor).expect("sensor");
        let daemon = self.daemon.as_ref().expect("running");
        daemon
            .store
            .send(Batch::new(vec![Reading::good(i, now_ms(), value)]))
            .await
            .expect("writer");
    }

    fn alarm_of(&self, rule: &str) -> Option<AlarmRow> {
        self.store
            .alarms(false)
            .expect("alarms")
            .into_iter()
            .find(|a| a.rule == rule)
    }

    async fn raised(&self, rule: &str) -> AlarmRow {
        let until = Instant::now() + PATIENCE;
        loop {
            if let Some(a) = self.alarm_of(rule).filter(|a| a.state.as_str() == "active") {
                return a;
            }
            assert!(Instant::now() < until, "alarm of {rule} not raised");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A connection of the test's own to the store's file, to look into tables the
    /// program only writes (the store runs in WAL mode: every commit is visible here).
    fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(&self.config.store.path).expect("open the store file")
    }

    fn count(&self, table: &str) -> i64 {
        self.db()
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .expect("count")
    }

    async fn get(&self, url: &str) -> (StatusCode, String) {
        let r = self.http.get(url).send().await.expect("GET");
        let status = r.status();
        (status, r.text().await.expect("body"))
    }

    async fn post(&self, url: &str, comment: &str) -> (StatusCode, String) {
        let r = self
            .http
            .post(url)
            .form(&[("comment", comment)])
            .send()
            .await
            .expect("POST");
        let status = r.status();
        (status, r.text().await.expect("body"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_shows_the_alarm_acknowledges_once_and_records_who_how_and_why() {
    let rig = Rig::start().await;
    rig.reading("dewar-1.temp", -120.0).await;
    let alarm = rig.raised("d1-warm").await;
    let link = acklink::link(&rig.base, &rig.key, alarm.id, "alice", now_ms()).expect("random");

    // Opening the link (as a mail scanner would) shows the alarm and the form only.
    let r = rig.http.get(&link).send().await.expect("GET");
    assert_eq!(r.status(), StatusCode::OK);
    let headers = r.headers().clone();
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert!(headers["content-type"].to_str().unwrap_or("").starts_with("text/html"));
    let page = r.text().await.expect("body");
    assert!(page.contains("<form method=\"post\">"), "{page}");
    assert!(page.contains("name=\"comment\""), "{page}");
    assert!(page.contains("Dewar &lt;1&gt; (Room 214)"), "{page}");
    assert!(page.contains("dewar-1.temp"), "{page}");
    assert!(page.contains("critical"), "{page}");
    assert!(page.contains("active"), "{page}");
    assert!(page.contains("-120.0 degC"), "{page}");
    assert!(page.contains("as Alice Nguyen"), "{page}");
    assert!(page.contains("ack link &lt;lab&gt;"), "{page}");
    assert!(
        !page.contains("<lab>") && !page.contains("Dewar <1>"),
        "unescaped: {page}"
    );
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "external reference: {page}"
    );
    let (again, _) = rig.get(&link).await;
    assert_eq!(again, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(rig.alarm_of("d1-warm").expect("alarm").state.as_str(), "active");
    assert_eq!(rig.count("ack_link_used"), 0);
    assert_eq!(rig.count("request"), 0);

    // Submitting the form acknowledges, as Alice, by the link, with the comment.
    let comment = "LN2 topped up <b>, lid closed";
    let (status, page) = rig.post(&link, comment).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(
        page.contains(&format!("alarm {} acknowledged by Alice Nguyen", alarm.id)),
        "{page}"
    );
    assert!(page.contains("LN2 topped up &lt;b&gt;, lid closed"), "{page}");
    let acked = rig.alarm_of("d1-warm").expect("alarm");
    assert_eq!(acked.state.as_str(), "acknowledged");
    assert_eq!(acked.acked_by.as_deref(), Some("Alice Nguyen"));
    assert_eq!(acked.ack_path.as_deref(), Some("link"));
    assert_eq!(acked.ack_comment.as_deref(), Some(comment));
    let acked_at = acked.acked_at.expect("acked_at");
    assert!((now_ms() - acked_at).abs() < 60_000);
    let events = rig.store.events(Some(alarm.id)).expect("events");
    let last = events.last().expect("events");
    assert_eq!(
        (last.state.as_str(), last.actor.as_str()),
        ("acknowledged", "Alice Nguyen")
    );
    assert!(last.comment.contains(comment), "{last:?}");
    let (contact, used_alarm): (String, i64) = rig
        .db()
        .query_row("SELECT contact, alarm FROM ack_link_used", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .expect("used");
    assert_eq!((contact.as_str(), used_alarm), ("alice", alarm.id));

    // A second submission of the same link is refused and changes nothing.
    let (status, page) = rig.post(&link, "again").await;
    assert_eq!(status, StatusCode::CONFLICT, "{page}");
    assert!(page.contains("already used"), "{page}");
    assert!(page.contains("Alice Nguyen"), "the page shows who acknowledged: {page}");
    let (status, page) = rig.get(&link).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("already used") && !page.contains("<form"), "{page}");
    assert_eq!(rig.count("request"), 1);
    let after = rig.alarm_of("d1-warm").expect("alarm");
    assert_eq!(
        (after.acked_at, after.ack_comment.as_deref()),
        (Some(acked_at), Some(comment))
    );

    // A fresh link to an alarm already acknowledged: the engine's answer is shown.
    let other = acklink::link(&rig.base, &rig.key, alarm.id, "bob", now_ms()).expect("random");
    let (status, page) = rig.get(&other).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Nothing to do") && !page.contains("<form"), "{page}");
    let (status, page) = rig.post(&other, "me too").await;
    assert_eq!(status, StatusCode::CONFLICT, "{page}");
    assert!(page.contains("Not acknowledged"), "{page}");
    assert!(
        page.contains("Bob O&#39;Hara") || page.contains("Alice Nguyen"),
        "{page}"
    );
    let after = rig.alarm_of("d1-warm").expect("alarm");
    assert_eq!(after.acked_by.as_deref(), Some("Alice Nguyen"));

    // An alarm that does not exist: 404 on opening, the engine's refusal on submitting.
    let ghost = acklink::link(&rig.base, &rig.key, 9999, "alice", now_ms()).expect("random");
    let (status, _) = rig.get(&ghost).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, page) = rig.post(&ghost, "").await;
    assert_eq!(status, StatusCode::CONFLICT, "{page}");
    assert!(page.contains("no open alarm 9999"), "{page}");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_altered_and_foreign_links_are_refused_and_change_nothing() {
    let rig = Rig::start().await;
    rig.reading("dewar-2.temp", -100.0).await;
    let alarm = rig.raised("d2-warm").await;
    let now = now_ms();
    let expired = format!(
        "{}/ack/{}",
        rig.base,
        acklink::sign(
            &rig.key,
            alarm.id,
            "alice",
            now - 1000,
            &acklink::new_nonce().expect("random")
        )
    );
    let valid = acklink::sign(&rig.key, alarm.id, "alice", now + 3_600_000, "n1");
    // The signature of a valid token on another alarm's payload.
    let (_, tag) = valid.split_once('.').expect("two parts");
    let forged_payload = {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
            "{}.alice.{}.n1",
            alarm.id + 1,
            now + 3_600_000
        ))
    };
    let mut flipped: Vec<char> = valid.chars().collect();
    let i = flipped.len() - 3;
    flipped[i] = if flipped[i] == 'x' { 'y' } else { 'x' };
    let flipped: String = flipped.into_iter().collect();
    let foreign = acklink::sign(&[9; 32], alarm.id, "alice", now + 3_600_000, "n2");
    let unknown_contact = acklink::sign(&rig.key, alarm.id, "mallory", now + 3_600_000, "n3");
    let cases = [
        (expired, "expired"),
        (format!("{}/ack/{forged_payload}.{tag}", rig.base), "signature"),
        (format!("{}/ack/{flipped}", rig.base), "signature"),
        (format!("{}/ack/{foreign}", rig.base), "signature"),
        (format!("{}/ack/not-a-token", rig.base), "damaged"),
        (
            format!("{}/ack/{unknown_contact}", rig.base),
            "no longer in the configuration",
        ),
    ];
    for (url, why) in &cases {
        let (status, page) = rig.get(url).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "GET {url}: {page}");
        assert!(page.contains(why), "GET {url}: {page}");
        assert!(!page.contains("<form"), "{page}");
        let (status, page) = rig.post(url, "should not count").await;
        assert_eq!(status, StatusCode::FORBIDDEN, "POST {url}: {page}");
        assert!(page.contains(why), "POST {url}: {page}");
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    let after = rig.alarm_of("d2-warm").expect("alarm");
    assert_eq!(after.state.as_str(), "active");
    assert_eq!(after.acked_by, None);
    assert_eq!(rig.count("ack_link_used"), 0);
    assert_eq!(rig.count("request"), 0);

    // Other paths are not served.
    let (status, _) = rig.get(&format!("{}/ack", rig.base)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The valid token still works.
    let (status, page) = rig.post(&format!("{}/ack/{valid}", rig.base), "").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let after = rig.alarm_of("d2-warm").expect("alarm");
    assert_eq!(
        (
            after.state.as_str(),
            after.acked_by.as_deref(),
            after.ack_path.as_deref()
        ),
        ("acknowledged", Some("Alice Nguyen"), Some("link"))
    );
    rig.stop().await;
}

/// Email pages get a personal link when `[api]` is configured; other channels do not.
#[test]
fn email_page_bodies_carry_a_personal_link() {
    let dir = tempfile::tempdir().expect("temp dir");
    let with_api = format!(
        "{CONFIG}\n[api]\nlisten = \"127.0.0.1:8470\"\npublic_url = \"https://cw.example.org/\"\n\
         [[channel]]\nid = \"email\"\nkind = \"smtp\"\nhost = \"127.0.0.1\"\nport = 2525\ntls = \"none\"\nfrom = \"cw@example.org\"\n\
         [[channel]]\nid = \"hook\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:1/\"\n"
    );
    let cfg = load(dir.path(), &with_api);
    let store = Store::open(&cfg.store.path).expect("store");
    let body = "Alarm id:   3\n\nTo acknowledge: reply to the SMS with \"ACK 3\"\n";
    let now = now_ms();
    let out = acklink::page_body(&cfg, &store, body, 3, "bob", "email", now);
    let (_, rest) = out.split_once("https://cw.example.org/ack/").expect("link");
    let token = rest.split_whitespace().next().expect("token");
    let claims = acklink::verify(&acklink::key(&store).expect("key"), token, now).expect("valid");
    assert_eq!((claims.alarm, claims.contact.as_str()), (3, "bob"));
    assert_eq!(claims.expires_ms, now + acklink::VALIDITY_MS);
    assert!(out.contains("for Bob O'Hara only"), "{out}");
    assert!(out.find("/ack/") < out.find("To acknowledge:"), "{out}");
    assert_eq!(acklink::page_body(&cfg, &store, body, 3, "bob", "hook", now), body);
    let plain = load(dir.path(), CONFIG);
    assert_eq!(acklink::page_body(&plain, &store, body, 3, "bob", "email", now), body);
}

/// What the daemon calls: serves on `[api].listen` until shutdown; nothing without `[api]`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_serves_on_its_configured_address_until_shutdown() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("temp dir");
    let shutdown = CancellationToken::new();
    let plain = load(dir.path(), CONFIG);
    assert!(api::spawn(&plain, &shutdown).expect("spawn").is_none());

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let cfg = load(dir.path(), &format!("{CONFIG}\n[api]\nlisten = \"127.0.0.1:{port}\"\n"));
    let server = api::spawn(&cfg, &shutdown).expect("spawn").expect("configured");
    let taken = api::spawn(&cfg, &shutdown)
        .err()
        .map(|e| format!("{e:#}"))
        .unwrap_or_default();
    assert!(taken.contains("[api].listen"), "{taken}");
    let base = cfg.sections.api_public_url.clone().expect("public url");
    assert_eq!(base, format!("http://127.0.0.1:{port}"));
    let key = acklink::key(&Store::open(&cfg.store.path).expect("store")).expect("key");
    let http = reqwest::Client::new();
    let r = http
        .get(acklink::link(&base, &key, 1, "alice", now_ms()).expect("random"))
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = http.get(format!("{base}/ack/x.y")).send().await.expect("GET");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("stops on shutdown")
        .expect("task");
    assert!(http.get(format!("{base}/ack/x.y")).send().await.is_err());
}
