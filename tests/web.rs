//! The web dashboard against the real daemon: `cryosim` serves a dewar and a freezer over
//! Modbus, `cryowatch run` serves `[api]`, users are made with `cryowatch user add`.
//!
//! - over HTTP: sign-in (good, wrong, without the form's token, from another site),
//!   the cookie's flags, CSRF on forms, a viewer refused an acknowledgement, the pages
//!   and assets, sign-out;
//! - in headless Chromium (`tests/browser/dashboard.mjs`, playwright-core driving
//!   Debian's `chromium`): sign in, see a simulated excursion appear, acknowledge it
//!   with a comment, see it recorded; screenshots in `target/test-artifacts/web/`.
//!
//! Chromium, Node.js and playwright-core are required: `bash tests/run.sh` installs
//! them (CI runs it). When one is missing the browser test fails saying so.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::cryosim::CryoSim;
use common::{Proc, Site, cryowatch, cryowatch_output, free_port, wait_for};
use reqwest::header::{HeaderMap, HeaderValue};
use rusqlite::{Connection, OpenFlags};

const PATIENCE: Duration = Duration::from_secs(20);
const OPERATOR: (&str, &str) = ("olga", "olga's long passphrase");
const VIEWER: (&str, &str) = ("victor", "victor's long passphrase");

/// One row of the store's alarm table.
#[derive(Debug)]
struct AlarmRecord {
    id: i64,
    state: String,
    acked_by: Option<String>,
    comment: Option<String>,
    path: Option<String>,
}

/// cryosim, the daemon with `[api]` on a free port, and two users.
struct Rig {
    sim: CryoSim,
    site: Site,
    daemon: Option<Proc>,
    base: String,
}

impl Rig {
    fn start(dir: &Path) -> Rig {
        let sim = CryoSim::start(dir);
        let port = free_port();
        let site = Site::new(&config(&sim, port));
        let out = cryowatch_output(&["check", "-c", &site.config_str()]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        for (name, role, password) in [(OPERATOR.0, "operator", OPERATOR.1), (VIEWER.0, "viewer", VIEWER.1)] {
            add_user(&site, name, role, password);
        }
        let daemon = site.start_daemon();
        let base = format!("http://127.0.0.1:{port}");
        let rig = Rig {
            sim,
            site,
            daemon: Some(daemon),
            base,
        };
        // Up when the sign-in page answers and the dewar has a reading.
        wait_for(PATIENCE, "the daemon's web server and a first dewar reading", || {
            let login = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
            (login && rig.alarm_rows().is_some() && rig.has_reading()).then_some(())
        });
        rig
    }

    fn db(&self) -> Option<Connection> {
        Connection::open_with_flags(self.site.path().join("cryowatch.db"), OpenFlags::SQLITE_OPEN_READ_ONLY).ok()
    }

    fn has_reading(&self) -> bool {
        self.db()
            .and_then(|c| {
                c.query_row("SELECT count(*) FROM reading", [], |r| r.get::<_, i64>(0))
                    .ok()
            })
            .is_some_and(|n| n > 0)
    }

    /// Every alarm, oldest first.
    fn alarm_rows(&self) -> Option<Vec<AlarmRecord>> {
        let c = self.db()?;
        let mut st = c
            .prepare("SELECT id, state, acked_by, ack_comment, ack_path FROM alarm ORDER BY id")
            .ok()?;
        st.query_map([], |r| {
            Ok(AlarmRecord {
                id: r.get(0)?,
                state: r.get(1)?,
                acked_by: r.get(2)?,
                comment: r.get(3)?,
                path: r.get(4)?,
            })
        })
        .and_then(|rows| rows.collect())
        .ok()
    }

    /// The alarm `id` as stored now.
    fn alarm(&self, id: i64) -> AlarmRecord {
        self.alarm_rows()
            .and_then(|rows| rows.into_iter().find(|a| a.id == id))
            .unwrap_or_else(|| panic!("alarm {id} is not in the store"))
    }

    fn active_alarm(&self) -> i64 {
        wait_for(PATIENCE, "the dewar's high alarm", || {
            self.alarm_rows()?
                .into_iter()
                .find(|a| a.state.as_str() == "active")
                .map(|a| a.id)
        })
    }

    /// `cryowatch audit log --kind KIND --json`.
    fn audit(&self, kind: &str) -> Vec<serde_json::Value> {
        let out = cryowatch_output(&["audit", "log", "-c", &self.site.config_str(), "--kind", kind, "--json"]);
        assert!(
            out.status.success(),
            "audit log: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("audit log --json is a JSON array")
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        if let Some(d) = self.daemon.take() {
            if std::thread::panicking() {
                eprintln!(
                    "daemon log:\n{}\ncryosim log:\n{}",
                    self.site.daemon_log(),
                    self.sim.log()
                );
            }
            drop(d);
        }
    }
}

/// A dewar (temperature, level) and a freezer (temperature); the dewar's high alarm sits
/// 2.5 °C above its steady -190.5 °C.
fn config(sim: &CryoSim, port: u16) -> String {
    let point = |register: &str, address: u16, kind: &str, extra: &str| {
        format!(
            "[sensor.modbus]\ndevice = \"{{dev}}\"\nregister = \"{register}\"\naddress = {address}\ntype = \"{kind}\"\n{extra}"
        )
    };
    let sensor = |id: &str, asset: &str, quantity: &str, unit: &str, device: &str, p: String| {
        format!(
            "[[sensor]]\nid = \"{id}\"\nasset = \"{asset}\"\nquantity = \"{quantity}\"\nunit = \"{unit}\"\nstale_after = \"5s\"\n{}\n",
            p.replace("{dev}", device)
        )
    };
    format!(
        "[site]\nname = \"Cell Therapy Lab B\"\ntimezone = \"Europe/Berlin\"\n\n[store]\npath = \"{{dir}}/cryowatch.db\"\n\n\
         [api]\nlisten = \"127.0.0.1:{port}\"\n\n\
         [[modbus.device]]\nid = \"ctrl-dewar-1\"\ntransport = \"tcp\"\naddress = \"{m}\"\nunit = 1\npoll_interval = \"250ms\"\ntimeout = \"500ms\"\n\n\
         [[modbus.device]]\nid = \"ctrl-freezer-7\"\ntransport = \"tcp\"\naddress = \"{m}\"\nunit = 2\npoll_interval = \"250ms\"\ntimeout = \"500ms\"\n\n\
         [[asset]]\nid = \"dewar-1\"\nname = \"Dewar 1 (CAR-T products)\"\nkind = \"ln2_dewar\"\nlocation = \"Room 214\"\n\n\
         [[asset]]\nid = \"freezer-7\"\nname = \"Freezer 7\"\nkind = \"freezer_minus80\"\nlocation = \"Room 216\"\n\n\
         {}{}{}\
         [[rule]]\nid = \"dewar-warm\"\nsensor = \"dewar-1.temp\"\nkind = \"high\"\nthreshold = -188.0\nhysteresis = 0.5\nseverity = \"critical\"\n\n\
         [[rule]]\nid = \"freezer-warm\"\nsensor = \"freezer-7.temp\"\nkind = \"high\"\nthreshold = -70.0\nseverity = \"alarm\"\n",
        sensor(
            "dewar-1.temp",
            "dewar-1",
            "temperature",
            "degC",
            "ctrl-dewar-1",
            point("input", 0, "f32", "byte_order = \"ABCD\"\nfault_values = [-9999.0]\n")
        ),
        sensor(
            "dewar-1.level",
            "dewar-1",
            "level",
            "percent",
            "ctrl-dewar-1",
            point("holding", 10, "u16", "scale = 0.1\n")
        ),
        sensor(
            "freezer-7.temp",
            "freezer-7",
            "temperature",
            "degC",
            "ctrl-freezer-7",
            point("input", 0, "f32", "fault_values = [-9999.0]\n")
        ),
        m = sim.modbus,
    )
}

/// `cryowatch user add NAME --role ROLE`, the password on standard input.
fn add_user(site: &Site, name: &str, role: &str, password: &str) {
    use std::io::Write as _;
    let mut child = cryowatch()
        .args(["user", "add", name, "--role", role, "-c", &site.config_str()])
        .env_remove("CRYOWATCH_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run cryowatch user add");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{password}\n").as_bytes())
        .expect("write the password");
    let out = child.wait_with_output().expect("cryowatch user add");
    assert!(
        out.status.success(),
        "user add {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---- a small HTTP client that keeps cookies in the open ---------------------------

struct Reply {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    fn location(&self) -> &str {
        self.headers.get("location").and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    /// The `Set-Cookie` header setting `name`.
    fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with(&format!("{name}=")))
            .map(str::to_string)
    }

    /// The value of the hidden form field `name` (the first one).
    fn field(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self
            .body
            .find(&marker)
            .unwrap_or_else(|| panic!("no field {name} in:\n{}", self.body))
            + marker.len();
        self.body[start..].split('"').next().unwrap_or("").to_string()
    }
}

fn cookie_value(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .and_then(|kv| kv.split_once('='))
        .map(|(_, v)| v.to_string())
        .unwrap_or_default()
}

struct Http {
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
    base: String,
}

impl Http {
    fn new(base: &str) -> Http {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Http {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime"),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(20))
                .build()
                .expect("client"),
            base: base.to_string(),
        }
    }

    fn send(&self, rb: reqwest::RequestBuilder) -> Reply {
        self.rt.block_on(async {
            let r = rb.send().await.expect("HTTP request");
            let status = r.status().as_u16();
            let headers = r.headers().clone();
            Reply {
                status,
                headers,
                body: r.text().await.expect("body"),
            }
        })
    }

    fn get(&self, path: &str, cookies: &str) -> Reply {
        let mut rb = self.client.get(format!("{}{path}", self.base));
        if !cookies.is_empty() {
            rb = rb.header("cookie", cookies);
        }
        self.send(rb)
    }

    fn post(&self, path: &str, cookies: &str, form: &[(&str, &str)], headers: &[(&str, &str)]) -> Reply {
        let mut rb = self.client.post(format!("{}{path}", self.base)).form(form);
        if !cookies.is_empty() {
            rb = rb.header("cookie", cookies);
        }
        for (k, v) in headers {
            rb = rb.header(*k, HeaderValue::from_str(v).expect("header value"));
        }
        self.send(rb)
    }

    /// Fetches the sign-in form: (its cw_login cookie for a Cookie header, its token).
    fn login_form(&self) -> (String, String) {
        let form = self.get("/login", "");
        assert_eq!(form.status, 200, "{}", form.body);
        let set = form.set_cookie("cw_login").expect("the sign-in form sets cw_login");
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/login"),
            "{set}"
        );
        (format!("cw_login={}", cookie_value(&set)), form.field("login_token"))
    }

    /// Signs in; returns the Cookie header of the session and the page's CSRF token.
    fn sign_in(&self, (user, password): (&str, &str)) -> (String, String) {
        let (cookie, token) = self.login_form();
        let r = self.post(
            "/login",
            &cookie,
            &[("user", user), ("password", password), ("login_token", &token)],
            &[],
        );
        assert_eq!((r.status, r.location()), (303, "/"), "{}", r.body);
        let session = format!(
            "cw_session={}",
            cookie_value(&r.set_cookie("cw_session").expect("session cookie"))
        );
        let page = self.get("/", &session);
        assert_eq!(page.status, 200);
        (session, page.field("csrf"))
    }
}

#[test]
fn sign_in_cookies_csrf_roles_pages_and_sign_out_over_http() {
    let dir = tempfile::tempdir().expect("temp dir");
    let rig = Rig::start(dir.path());
    let http = Http::new(&rig.base);

    // Not signed in: pages send to the sign-in page, the live part says 401.
    let r = http.get("/", "");
    assert_eq!((r.status, r.location()), (303, "/login"));
    let r = http.get("/sensors/dewar-1.temp?from=-1h", "");
    assert_eq!(
        (r.status, r.location()),
        (303, "/login?next=/sensors/dewar-1.temp%3Ffrom%3D-1h")
    );
    assert_eq!(http.get("/dashboard/live", "").status, 401);
    assert_eq!(http.get("/alarms/history", "").status, 303);
    assert_eq!(http.get("/quality", "").status, 303);

    // Wrong password: 401, a generic message, no session; audited.
    let (cookie, token) = http.login_form();
    let r = http.post(
        "/login",
        &cookie,
        &[
            ("user", OPERATOR.0),
            ("password", "wrong password!"),
            ("login_token", &token),
        ],
        &[],
    );
    assert_eq!(r.status, 401);
    assert!(r.body.contains("Wrong user name or password."), "{}", r.body);
    assert!(r.set_cookie("cw_session").is_none());
    let r = http.post(
        "/login",
        &cookie,
        &[
            ("user", "nobody"),
            ("password", "wrong password!"),
            ("login_token", &token),
        ],
        &[],
    );
    assert_eq!(r.status, 401, "an unknown user gets the same answer");
    assert!(r.body.contains("Wrong user name or password."));

    // The right password without the form's cookie, or posted from another site: refused.
    let form = [
        ("user", OPERATOR.0),
        ("password", OPERATOR.1),
        ("login_token", token.as_str()),
    ];
    let r = http.post("/login", "", &form, &[]);
    assert_eq!(r.status, 403, "no double-submit cookie");
    assert!(r.set_cookie("cw_session").is_none());
    let r = http.post("/login", "cw_login=forged", &form, &[]);
    assert_eq!(r.status, 403, "a cookie that does not match the form");
    let r = http.post("/login", &cookie, &form, &[("origin", "https://evil.example")]);
    assert_eq!(r.status, 403, "another site's Origin");
    assert!(r.set_cookie("cw_session").is_none());

    // Signed in: 303 to /, the session cookie HttpOnly, SameSite=Strict, Path=/, not
    // Secure over plain HTTP...
    let origin = rig.base.clone();
    let r = http.post("/login", &cookie, &form, &[("origin", &origin)]);
    assert_eq!((r.status, r.location()), (303, "/"), "{}", r.body);
    let set = r.set_cookie("cw_session").expect("session cookie");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.split("; ").any(|f| f == flag), "{flag} missing: {set}");
    }
    assert!(!set.contains("Secure"), "{set}");
    // ...and Secure when a TLS proxy says the request came over HTTPS.
    let (cookie2, token2) = http.login_form();
    let r = http.post(
        "/login",
        &cookie2,
        &[("user", VIEWER.0), ("password", VIEWER.1), ("login_token", &token2)],
        &[("x-forwarded-proto", "https")],
    );
    assert_eq!(r.status, 303);
    assert!(r.set_cookie("cw_session").expect("cookie").ends_with("; Secure"));

    let logins = rig.audit("web");
    let kinds: Vec<(&str, &str, &str)> = logins
        .iter()
        .map(|r| {
            (
                r["kind"].as_str().unwrap_or(""),
                r["actor"].as_str().unwrap_or(""),
                r["subject"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("web.login_failed", "anonymous", "user olga"),
            ("web.login_failed", "anonymous", "user nobody"),
            ("web.login", "user:olga", "user olga"),
            ("web.login", "user:victor", "user victor"),
        ],
        "{logins:#?}"
    );

    // The dashboard: viewport, embedded assets, a tile per asset.
    let (olga, csrf) = http.sign_in(OPERATOR);
    let page = http.get("/", &olga);
    assert!(page.body.contains("name=\"viewport\""));
    assert!(page.body.contains("/assets/app.css?v=") && page.body.contains("/assets/app.js?v="));
    assert!(page.body.contains("id=\"asset-dewar-1\"") && page.body.contains("id=\"asset-freezer-7\""));
    assert!(
        !page.body.contains("http://") && !page.body.contains("https://"),
        "nothing from another server"
    );
    let csp = page
        .headers
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    let css = http.get("/assets/app.css", "");
    assert_eq!(css.status, 200);
    assert_eq!(css.headers["content-type"], "text/css; charset=utf-8");
    assert!(css.headers["cache-control"].to_str().unwrap_or("").contains("max-age="));
    let etag = css.headers["etag"].to_str().expect("etag").to_string();
    let again = http.send(
        http.client
            .get(format!("{}/assets/app.css", rig.base))
            .header("if-none-match", etag),
    );
    assert_eq!(again.status, 304);
    assert_eq!(
        http.get("/assets/app.js", "").headers["content-type"],
        "text/javascript; charset=utf-8"
    );
    for bad in [
        "/assets/nope.js",
        "/assets/..%2FCargo.toml",
        "/assets/%2e%2e%2f%2e%2e%2fCargo.toml",
        "/assets/",
    ] {
        assert_eq!(http.get(bad, "").status, 404, "{bad}");
    }

    // An excursion: the operator sees an acknowledge form, the viewer none.
    rig.sim.set("dewar-1", "warmup:60");
    let id = rig.active_alarm();
    let ack_path = format!("/alarms/{id}/ack");
    let live = http.get("/dashboard/live", &olga);
    assert!(live.body.contains(&format!("id=\"alarm-{id}\"")) && live.body.contains(&format!("action=\"{ack_path}\"")));
    assert!(live.body.contains("data-state=\"alarm\""), "the dewar tile is red");
    let (victor, victor_csrf) = http.sign_in(VIEWER);
    let seen = http.get("/", &victor);
    assert!(seen.body.contains(&format!("id=\"alarm-{id}\"")));
    assert!(
        !seen.body.contains(&format!("action=\"{ack_path}\"")),
        "a viewer gets no acknowledge form"
    );

    // The viewer posting anyway: 403, nothing changed, nothing queued.
    let r = http.post(
        &ack_path,
        &victor,
        &[("csrf", &victor_csrf), ("comment", "viewer says hi")],
        &[],
    );
    assert_eq!(r.status, 403, "{}", r.body);
    // The operator without the CSRF token, or with another session's: 403.
    let r = http.post(&ack_path, &olga, &[("comment", "no token")], &[]);
    assert_eq!(r.status, 403, "{}", r.body);
    let r = http.post(
        &ack_path,
        &olga,
        &[("csrf", &victor_csrf), ("comment", "wrong token")],
        &[],
    );
    assert_eq!(r.status, 403);
    let requests: i64 = rig
        .db()
        .expect("db")
        .query_row("SELECT count(*) FROM request", [], |r| r.get(0))
        .expect("count requests");
    assert_eq!(requests, 0, "a refused acknowledgement queues nothing");
    let row = rig.alarm(id);
    assert_eq!((row.state.as_str(), row.acked_by.as_deref()), ("active", None));

    // With the token: acknowledged by olga through the web, with the comment.
    let r = http.post(
        &ack_path,
        &olga,
        &[("csrf", &csrf), ("comment", "  topped up <LN2> & checked lid ")],
        &[],
    );
    assert_eq!(
        (r.status, r.location()),
        (303, format!("/?acked={id}").as_str()),
        "{}",
        r.body
    );
    let row = rig.alarm(id);
    assert_eq!(row.state.as_str(), "acknowledged");
    assert_eq!(row.acked_by.as_deref(), Some("olga"));
    assert_eq!(row.comment.as_deref(), Some("topped up <LN2> & checked lid"));
    assert_eq!(row.path.as_deref(), Some("web"));
    let page = http.get(&format!("/?acked={id}"), &olga);
    assert!(
        page.body.contains(&format!("Alarm {id} acknowledged by olga")),
        "{}",
        page.body
    );
    assert!(page.body.contains("topped up &lt;LN2&gt; &amp; checked lid"), "escaped");
    let r = http.post(&ack_path, &olga, &[("csrf", &csrf), ("comment", "again")], &[]);
    assert_eq!(
        r.status, 409,
        "a second acknowledgement is refused with the engine's words"
    );

    // History and the sensor page show it; unknown sensors are 404.
    let history = http.get("/alarms/history", &victor);
    assert_eq!(history.status, 200);
    assert!(history.body.contains(&format!("id=\"history-{id}\"")) && history.body.contains("checked lid"));
    // The quality page counts it among this month's alarms, acknowledged.
    let quality = http.get("/quality", &victor);
    assert_eq!(quality.status, 200);
    assert!(
        quality.body.contains("<td>dewar-warm</td><td>1</td>") && quality.body.contains("(1 acknowledged)"),
        "{}",
        quality.body
    );
    assert_eq!(http.get("/quality?from=now&to=-1d", &victor).status, 400);
    let sensor = http.get("/sensors/dewar-1.temp?from=-10m", &victor);
    assert_eq!(sensor.status, 200);
    assert!(sensor.body.contains("<svg") && sensor.body.contains("critical high (dewar-warm)"));
    assert!(
        sensor.body.contains("checked lid"),
        "the excursion is listed with its comment"
    );
    assert_eq!(http.get("/sensors/nope", &victor).status, 404);
    assert_eq!(
        http.get("/sensors/dewar-1.temp?from=yesterday-ish", &victor).status,
        400
    );
    assert_eq!(http.get("/sensors/dewar-1.temp?from=-90d", &victor).status, 400);

    // Both acknowledgements were requests by olga (the engine refused the second).
    let acks = rig.audit("web.ack");
    assert_eq!(acks.len(), 2, "{acks:#?}");
    assert_eq!(
        (acks[0]["actor"].as_str(), acks[0]["subject"].as_str()),
        (Some("user:olga"), Some(format!("alarm {id}").as_str()))
    );
    assert!(
        acks[0]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("checked lid") && d.contains("\"path\":\"web\""))
    );

    // Sign-out needs the token, ends the session and clears the cookie.
    let r = http.post("/logout", &olga, &[], &[]);
    assert_eq!(r.status, 403);
    assert_eq!(http.get("/", &olga).status, 200, "still signed in");
    let r = http.post("/logout", &olga, &[("csrf", &csrf)], &[]);
    assert_eq!((r.status, r.location()), (303, "/login"));
    assert!(r.set_cookie("cw_session").expect("cleared").contains("Max-Age=0"));
    assert_eq!(http.get("/", &olga).status, 303, "the old cookie no longer works");
    assert_eq!(http.get("/api/v1/status", &olga).status, 401);
    assert_eq!(http.get("/", &victor).status, 200, "other sessions go on");
    assert_eq!(rig.audit("web.logout").len(), 1);
}

// ---- the browser ---------------------------------------------------------------------

#[test]
fn in_chromium_an_operator_signs_in_sees_an_excursion_appear_and_acknowledges_it() {
    let shots = common::browser::artifacts("web");
    let dir = tempfile::tempdir().expect("temp dir");
    let rig = Rig::start(dir.path());
    let comment = "LN2 top-up started, lid seal checked";
    let result = common::browser::run(
        "dashboard.mjs",
        &[
            ("BASE_URL", rig.base.clone()),
            ("CW_USER", OPERATOR.0.to_string()),
            ("CW_PASSWORD", OPERATOR.1.to_string()),
            ("CW_COMMENT", comment.to_string()),
            ("CRYOSIM_CONTROL", rig.sim.control.to_string()),
        ],
        &shots,
        dir.path(),
        Duration::from_secs(75),
    );
    let id = result["alarm"].as_i64().expect("alarm id");

    // What the browser did is in the record.
    let row = rig.alarm(id);
    assert_eq!(row.state.as_str(), "acknowledged");
    assert_eq!(row.acked_by.as_deref(), Some(OPERATOR.0));
    assert_eq!(row.comment.as_deref(), Some(comment));
    assert_eq!(row.path.as_deref(), Some("web"));
    let acks = rig.audit("web.ack");
    assert_eq!(acks.len(), 1, "{acks:#?}");
    assert_eq!(acks[0]["actor"], "user:olga");
    assert_eq!(acks[0]["subject"], format!("alarm {id}"));
    let transitions = rig.audit("alarm");
    assert!(
        transitions.iter().any(|r| r["kind"] == "alarm.acknowledged"
            && r["actor"] == OPERATOR.0
            && r["detail"].as_str().is_some_and(|d| d.contains(comment))),
        "{transitions:#?}"
    );
    let sessions = rig.audit("web");
    assert!(sessions.iter().any(|r| r["kind"] == "web.login_failed"));
    assert!(
        sessions
            .iter()
            .any(|r| r["kind"] == "web.logout" && r["actor"] == "user:olga")
    );

    common::browser::assert_screenshots(
        &shots,
        &[
            "01-login.png",
            "02-login-refused.png",
            "03-dashboard-ok.png",
            "04-excursion.png",
            "05-ack-comment.png",
            "06-acknowledged.png",
            "07-alarm-history.png",
            "08-sensor-chart.png",
            "09-phone.png",
        ],
    );
}
