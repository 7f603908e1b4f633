//! The alarm engine end to end: the `cryosim` simulator (and, for power, a real NUT
//! upsd) as child processes, the real `cryowatch run`, and its results read back the way
//! operators and auditors do — `cryowatch alarms --json`, `cryowatch ack`, `cryowatch
//! shelve` — and, for the transitions, the store itself, opened read-only.
//!
//! Every test has its own simulator, ports, store and directory, so they run in
//! parallel. Polls are fast (250 ms), delays short (1–4 s) and every sensor names its
//! `stale_after`, so each scenario takes seconds; waits have deadlines, and what must
//! *not* happen is checked after the daemon has stored several more readings.

mod common;

use std::time::{Duration, Instant};

use common::cryosim::CryoSim;
use common::nut::Nut;
use common::{Proc, Site, cryowatch_output, free_port};
use cryowatch::store::alarms::{self, AlarmRow, EventRow};
use rusqlite::{Connection, OpenFlags};
use serde_json::Value;

/// Every device is polled this often.
const POLL: &str = "250ms";
const POLL_MS: i64 = 250;
/// The daemon evaluates the clock (delays, stale sensors, requests) this often
/// (`cryowatch::daemon::TICK`).
const TICK_MS: i64 = 250;
/// How late a time-decided transition may be: a couple of polls, one tick, and some
/// room for a busy machine.
const LATE_MS: i64 = 2 * POLL_MS + TICK_MS + 250;
/// The longest any wait in these tests may take.
const PATIENCE: Duration = Duration::from_secs(15);

// ---- configuration --------------------------------------------------------------

/// The register map of cryosim (simulators/README.md): `[sensor.modbus]` keys after
/// `device`.
const DEWAR_TEMP: &str =
    "register = \"input\"\naddress = 0\ntype = \"f32\"\nbyte_order = \"ABCD\"\nfault_values = [-9999.0]";
const DEWAR_LEVEL: &str = "register = \"holding\"\naddress = 10\ntype = \"u16\"\nscale = 0.1";
const DEWAR_LID: &str = "register = \"discrete\"\naddress = 0\ntype = \"bool\"";
const FREEZER_TEMP: &str = "register = \"input\"\naddress = 0\ntype = \"f32\"\nfault_values = [-9999.0]";
const FREEZER_DOOR: &str = "register = \"discrete\"\naddress = 0\ntype = \"bool\"";

/// `[site]`, `[store]` and the assets: dewar-1 (`ln2_dewar`), freezer-7
/// (`freezer_minus80`), power (`ups`), rig (`other`).
fn base() -> String {
    "[site]\nname = \"alarm scenarios\"\ntimezone = \"UTC\"\n\n[store]\npath = \"{dir}/cryowatch.db\"\n\n\
     [[asset]]\nid = \"dewar-1\"\nkind = \"ln2_dewar\"\n\n[[asset]]\nid = \"freezer-7\"\nkind = \"freezer_minus80\"\n\n\
     [[asset]]\nid = \"power\"\nkind = \"ups\"\n\n[[asset]]\nid = \"rig\"\nkind = \"other\"\n\n"
        .to_string()
}

/// A Modbus TCP device polled every [`POLL`].
fn device(id: &str, address: &str, unit: u8) -> String {
    format!(
        "[[modbus.device]]\nid = \"{id}\"\ntransport = \"tcp\"\naddress = \"{address}\"\nunit = {unit}\n\
         poll_interval = \"{POLL}\"\ntimeout = \"500ms\"\n\n"
    )
}

/// The cryosim controllers: ctrl-dewar-1 (unit 1) and ctrl-freezer-7 (unit 2), on one
/// Modbus TCP port like behind a gateway. A test that reads only one of them leaves the
/// other without sensors (the daemon skips it).
fn sim_devices(sim: &CryoSim) -> String {
    let addr = sim.modbus.to_string();
    device("ctrl-dewar-1", &addr, 1) + &device("ctrl-freezer-7", &addr, 2)
}

/// A Modbus sensor; `stale_after` is always explicit here.
fn sensor(id: &str, asset: &str, quantity: &str, stale_after: &str, device: &str, point: &str) -> String {
    let unit = match quantity {
        "temperature" => "degC",
        "level" => "percent",
        _ => "open",
    };
    format!(
        "[[sensor]]\nid = \"{id}\"\nasset = \"{asset}\"\nquantity = \"{quantity}\"\nunit = \"{unit}\"\n\
         stale_after = \"{stale_after}\"\n[sensor.modbus]\ndevice = \"{device}\"\n{point}\n\n"
    )
}

/// Writes the config and asserts `cryowatch check` accepts it.
fn site(config: &str) -> Site {
    let site = Site::new(config);
    let out = cryowatch_output(&["check", "-c", &site.config_str()]);
    assert!(
        out.status.success(),
        "cryowatch check refused the test config:\n{}\n{config}",
        String::from_utf8_lossy(&out.stderr)
    );
    site
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

// ---- reading the results back ----------------------------------------------------

/// One row of `alarm_event`.
type Event = EventRow;

trait Is {
    /// A transition of this kind of this rule.
    fn is(&self, kind: &str, rule: &str) -> bool;
}

impl Is for Event {
    fn is(&self, kind: &str, rule: &str) -> bool {
        self.kind == kind && self.rule.as_deref() == Some(rule)
    }
}

/// Runs `f` on a fresh read-only connection to the store; `None` while the daemon has
/// not created it (or its schema) yet.
fn query<T>(site: &Site, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Option<T> {
    let path = site.path().join("cryowatch.db");
    if !path.exists() {
        return None;
    }
    let c = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?;
    c.busy_timeout(Duration::from_secs(5)).ok()?;
    f(&c).ok()
}

/// Every alarm transition so far, in order.
fn events(site: &Site) -> Vec<Event> {
    query(site, |c| alarms::query_events(c, None)).unwrap_or_default()
}

/// The transitions of one rule, as `kind` strings.
fn kinds_of(events: &[Event], rule: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.rule.as_deref() == Some(rule))
        .map(|e| e.kind.clone())
        .collect()
}

/// The `alarm` table by id.
fn alarm_rows(site: &Site) -> Vec<AlarmRow> {
    let mut rows = query(site, |c| alarms::query_alarms(c, false, None)).unwrap_or_default();
    rows.sort_by_key(|a| a.id);
    rows
}

fn alarm_row(site: &Site, id: i64) -> AlarmRow {
    alarm_rows(site)
        .into_iter()
        .find(|a| a.id == id)
        .unwrap_or_else(|| panic!("no alarm {id} in the store"))
}

/// Stored readings of `sensor`: (time, value, quality code: 0 good, 1 comm_error,
/// 2 sensor_fault).
fn readings(site: &Site, sensor: &str) -> Vec<(i64, Option<f64>, i64)> {
    query(site, |c| {
        let mut st = c.prepare(
            "SELECT r.t, r.value, r.quality FROM reading r JOIN sensor s ON s.id = r.sensor
             WHERE s.name = ?1 ORDER BY r.t, r.seq",
        )?;
        st.query_map([sensor], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect()
    })
    .unwrap_or_default()
}

/// Requests the command line queued for the daemon: (kind, ok, result).
fn requests(site: &Site) -> Vec<(String, Option<bool>, Option<String>)> {
    query(site, |c| {
        let mut st = c.prepare("SELECT kind, ok, result FROM request ORDER BY id")?;
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect()
    })
    .unwrap_or_default()
}

/// `cryowatch alarms -c CONFIG --json`.
fn alarms_json(site: &Site) -> Vec<Value> {
    let out = cryowatch_output(&["alarms", "-c", &site.config_str(), "--json"]);
    assert!(
        out.status.success(),
        "cryowatch alarms failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("alarms --json is a JSON array")
}

/// The alarm list as `rule severity state [incident N]` lines, by rule: what the
/// tests compare exactly.
fn alarm_summary(site: &Site) -> Vec<String> {
    let mut lines: Vec<String> = alarms_json(site)
        .iter()
        .map(|a| {
            let mut l = format!(
                "{} {} {}",
                a["rule"].as_str().unwrap_or("?"),
                a["severity"].as_str().unwrap_or("?"),
                a["state"].as_str().unwrap_or("?")
            );
            if let Some(i) = a["incident"].as_i64() {
                l += &format!(" incident {i}");
            }
            l
        })
        .collect();
    lines.sort();
    lines
}

/// The `alarms --json` entry of alarm `id`.
fn alarm_json(site: &Site, id: i64) -> Value {
    alarms_json(site)
        .into_iter()
        .find(|a| a["id"].as_i64() == Some(id))
        .unwrap_or_else(|| panic!("alarms --json lists no alarm {id}"))
}

/// What a failing wait shows: the transitions, the alarms and the end of the log.
fn context(site: &Site) -> String {
    let log = site.daemon_log();
    let tail: Vec<&str> = log.lines().rev().take(40).collect();
    format!(
        "events:\n{:#?}\nalarms:\n{:#?}\ndaemon log (end):\n{}",
        events(site),
        alarm_rows(site),
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    )
}

/// Waits until `f` returns `Some`; on timeout the panic shows [`context`].
fn wait_until<T>(site: &Site, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {PATIENCE:?} waiting for {what}\n{}",
            context(site)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits for the first transition that matches.
fn wait_event(site: &Site, what: &str, f: impl Fn(&Event) -> bool) -> Event {
    wait_until(site, what, || events(site).into_iter().find(|e| f(e)))
}

/// Waits until the daemon has stored `n` more readings of `sensor` than it has now:
/// anything those readings or the clock ticks between them would cause has happened.
fn settle(site: &Site, sensor: &str, n: usize) {
    let before = readings(site, sensor).len();
    wait_until(site, &format!("{n} more readings of {sensor}"), || {
        (readings(site, sensor).len() >= before + n).then_some(())
    });
}

/// Waits until a reading of `sensor` taken after `after` (ms) is stored and returns it.
fn wait_reading_after(site: &Site, sensor: &str, after: i64) -> (i64, Option<f64>, i64) {
    wait_until(site, &format!("a reading of {sensor} after {after}"), || {
        readings(site, sensor).into_iter().find(|r| r.0 > after)
    })
}

/// Waits until `sensor` has a good reading with value `v`.
fn wait_value(site: &Site, sensor: &str, v: f64) {
    wait_until(site, &format!("{sensor} = {v}"), || {
        readings(site, sensor)
            .iter()
            .any(|r| r.2 == 0 && r.1 == Some(v))
            .then_some(())
    });
}

/// Kills the daemon with SIGKILL and reaps it.
fn kill_9(mut daemon: Proc) {
    daemon.signal("KILL");
    assert_eq!(daemon.wait_exit(Duration::from_secs(5)), None, "killed by a signal");
}

/// `cryowatch ARGS... -c CONFIG`: (exit code, stdout, stderr).
fn cli(site: &Site, args: &[&str]) -> (Option<i32>, String, String) {
    let config = site.config_str();
    let mut all = vec![args[0], "-c", &config];
    all.extend_from_slice(&args[1..]);
    let out = cryowatch_output(&all);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    )
}

/// `cryowatch ack -c CONFIG ID --by BY --comment COMMENT`, asserted to succeed.
fn ack(site: &Site, id: i64, by: &str, comment: &str) -> String {
    let (code, stdout, stderr) = cli(site, &["ack", &id.to_string(), "--by", by, "--comment", comment]);
    assert_eq!(code, Some(0), "ack {id} failed: {stderr}\n{}", context(site));
    stdout
}

// ---- 1. warm-up ------------------------------------------------------------------

#[test]
fn a_fast_warmup_raises_one_critical_high_alarm_after_its_delay_and_a_rate_alarm_and_nothing_else() {
    let t_start = Instant::now();
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = CryoSim::start(dir.path());
    let site = site(&format!(
        "{}{}{}\
         [[rule]]\nid = \"dewar-warm\"\nsensor = \"dewar-1.temp\"\nkind = \"high\"\nthreshold = -185.0\n\
         hysteresis = 2.0\ndelay = \"2s\"\nseverity = \"critical\"\n\n\
         [[rule]]\nid = \"dewar-warming-fast\"\nsensor = \"dewar-1.temp\"\nkind = \"rate\"\nthreshold = 20.0\n\
         window = \"4s\"\n",
        base(),
        sim_devices(&sim),
        sensor(
            "dewar-1.temp",
            "dewar-1",
            "temperature",
            "5s",
            "ctrl-dewar-1",
            DEWAR_TEMP
        ),
    ));
    let daemon = site.start_daemon();
    wait_value(&site, "dewar-1.temp", -190.5);
    settle(&site, "dewar-1.temp", 3);
    assert!(
        events(&site).is_empty(),
        "a steady dewar raises nothing\n{}",
        context(&site)
    );

    // 2 °C per second: above -185 °C after 2.75 s, 120 °C/min against a 20 °C/min limit.
    sim.set("dewar-1", "warmup:120");
    let pending = wait_event(&site, "the high rule's delay to start", |e| {
        e.is("pending", "dewar-warm")
    });
    let raised = wait_event(&site, "the high alarm", |e| e.is("raised", "dewar-warm"));
    wait_event(&site, "the rate alarm", |e| e.is("raised", "dewar-warming-fast"));
    settle(&site, "dewar-1.temp", 4);

    // The delay started with the first reading above the threshold...
    let rows = readings(&site, "dewar-1.temp");
    let first_above = rows
        .iter()
        .find(|r| r.1.is_some_and(|v| v > -185.0))
        .expect("a reading above -185 °C");
    assert_eq!(
        pending.t, first_above.0,
        "the delay starts at the first reading above the threshold"
    );
    assert_eq!(pending.value, first_above.1);
    // ...and the alarm came only once it had run out, promptly.
    let held = raised.t - pending.t;
    assert!(
        (2000..=2000 + LATE_MS).contains(&held),
        "raised {held} ms after the condition began; the delay is 2000 ms\n{}",
        context(&site)
    );
    assert_eq!(raised.severity.as_deref(), Some("critical"));
    assert!(raised.value.is_some_and(|v| v > -185.0), "{raised:?}");
    let id = raised.alarm.expect("the raised event names its alarm");
    let row = alarm_row(&site, id);
    assert_eq!((row.since, row.raised_at), (pending.t, raised.t));

    // Exactly these transitions and alarms: no stale, no fault, no second raise.
    let evs = events(&site);
    assert_eq!(
        kinds_of(&evs, "dewar-warm"),
        ["pending", "raised"],
        "{}",
        context(&site)
    );
    assert_eq!(kinds_of(&evs, "dewar-warming-fast"), ["raised"], "{}", context(&site));
    assert_eq!(evs.len(), 3, "{}", context(&site));
    assert_eq!(
        alarm_summary(&site),
        ["dewar-warm critical active", "dewar-warming-fast alarm active"],
        "{}",
        context(&site)
    );
    site.stop_daemon(daemon);
    eprintln!("warmup: {:?}", t_start.elapsed());
}

// ---- 2. lid open -----------------------------------------------------------------

/// A dewar with its lid switch only, and `rule` on it.
fn lid_site(sim: &CryoSim, rule: &str) -> Site {
    site(&format!(
        "{}{}{}{rule}",
        base(),
        sim_devices(sim),
        sensor("dewar-1.lid", "dewar-1", "state", "5s", "ctrl-dewar-1", DEWAR_LID),
    ))
}

#[test]
fn a_lid_opening_shorter_than_the_delay_raises_nothing_and_a_longer_one_raises_one_alarm_that_clears_on_closing() {
    let t_start = Instant::now();
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = CryoSim::start(dir.path());
    let site = lid_site(
        &sim,
        "[[rule]]\nid = \"lid-open\"\nsensor = \"dewar-1.lid\"\nkind = \"state\"\nequals = 1\ndelay = \"3s\"\n\
         severity = \"warning\"\n",
    );
    let daemon = site.start_daemon();
    wait_value(&site, "dewar-1.lid", 0.0);

    // A short opening: the delay starts and is cancelled; nothing is raised.
    sim.set("dewar-1", "lid-open");
    let pending = wait_event(&site, "the delay to start", |e| e.is("pending", "lid-open"));
    std::thread::sleep(Duration::from_millis(300));
    sim.set("dewar-1", "steady");
    let cancelled = wait_event(&site, "the delay to be cancelled", |e| e.is("cancelled", "lid-open"));
    assert!(cancelled.t - pending.t < 3000, "{pending:?} {cancelled:?}");
    assert_eq!(
        (pending.state.as_str(), cancelled.state.as_str()),
        ("pending", "normal")
    );
    assert_eq!((pending.alarm, cancelled.alarm), (None, None));
    settle(&site, "dewar-1.lid", 3);
    assert!(
        alarm_rows(&site).is_empty(),
        "a short opening raised an alarm\n{}",
        context(&site)
    );
    assert!(alarms_json(&site).is_empty());

    // A long opening: one alarm, raised once the delay has run out.
    sim.set("dewar-1", "lid-open");
    let raised = wait_event(&site, "the alarm", |e| e.is("raised", "lid-open"));
    let evs = events(&site);
    let second = evs
        .iter()
        .filter(|e| e.is("pending", "lid-open"))
        .nth(1)
        .expect("a second pending event");
    assert!(
        (3000..=3000 + LATE_MS).contains(&(raised.t - second.t)),
        "raised {} ms after the lid opened; the delay is 3000 ms",
        raised.t - second.t
    );
    let id = raised.alarm.expect("alarm id");
    assert_eq!(alarm_summary(&site), ["lid-open warning active"]);

    // Closing clears it (not latching).
    sim.set("dewar-1", "steady");
    let cleared = wait_event(&site, "the alarm to clear", |e| e.is("cleared", "lid-open"));
    assert_eq!(cleared.alarm, Some(id));
    assert_eq!(cleared.actor, "cryowatch");
    settle(&site, "dewar-1.lid", 3);
    assert_eq!(
        kinds_of(&events(&site), "lid-open"),
        ["pending", "cancelled", "pending", "raised", "cleared"],
        "{}",
        context(&site)
    );
    assert_eq!(alarm_summary(&site), ["lid-open warning cleared"]);
    assert!(alarm_json(&site, id)["cleared_at"].is_string());
    site.stop_daemon(daemon);
    eprintln!("lid-open: {:?}", t_start.elapsed());
}

#[test]
fn a_latching_lid_alarm_stays_active_after_the_lid_closes_until_acknowledged() {
    let t_start = Instant::now();
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = CryoSim::start(dir.path());
    let site = lid_site(
        &sim,
        "[[rule]]\nid = \"lid-open\"\nsensor = \"dewar-1.lid\"\nkind = \"state\"\nequals = 1\ndelay = \"1s\"\n\
         severity = \"alarm\"\nlatching = true\n",
    );
    let daemon = site.start_daemon();
    wait_value(&site, "dewar-1.lid", 0.0);

    sim.set("dewar-1", "lid-open");
    let raised = wait_event(&site, "the alarm", |e| e.is("raised", "lid-open"));
    let id = raised.alarm.expect("alarm id");
    sim.set("dewar-1", "steady");
    wait_event(&site, "the return to normal", |e| {
        e.is("returned_to_normal", "lid-open")
    });
    settle(&site, "dewar-1.lid", 4);
    // Closed, but latched: still active, flagged as back to normal, nothing cleared.
    let a = alarm_json(&site, id);
    assert_eq!(
        (a["state"].as_str(), a["latched"].as_bool()),
        (Some("active"), Some(true)),
        "{a}"
    );
    assert_eq!(
        kinds_of(&events(&site), "lid-open"),
        ["pending", "raised", "returned_to_normal"]
    );

    let said = ack(&site, id, "alice", "lid closed, racks checked");
    assert!(said.contains(&format!("alarm {id} acknowledged by alice")), "{said}");
    let evs = events(&site);
    assert_eq!(
        kinds_of(&evs, "lid-open"),
        ["pending", "raised", "returned_to_normal", "acknowledged", "cleared"]
    );
    let acked = evs.iter().find(|e| e.kind == "acknowledged").expect("acknowledged");
    assert_eq!(
        (acked.alarm, acked.actor.as_str(), acked.comment.as_str()),
        (Some(id), "alice", "lid closed, racks checked")
    );
    let a = alarm_json(&site, id);
    assert_eq!(a["state"], "cleared", "{a}");
    assert_eq!(a["acknowledged_by"], "alice");
    assert_eq!(a["comment"], "lid closed, racks checked");
    let row = alarm_row(&site, id);
    assert_eq!(row.ack_path.as_deref(), Some("cli"));
    site.stop_daemon(daemon);
    eprintln!("latching lid: {:?}", t_start.elapsed());
}

// ---- 3. power loss through NUT -----------------------------------------------------

#[test]
fn a_power_cut_seen_through_nut_groups_the_alarms_it_causes_into_one_incident_until_power_is_restored() {
    let t_start = Instant::now();
    let dir = tempfile::tempdir().expect("temp dir");
    // NUT's driver socket lives in its directory: keep the path short.
    let nut_dir = tempfile::Builder::new()
        .prefix("nut")
        .tempdir_in("/tmp")
        .expect("NUT temp dir");
    let nut = Nut::start(nut_dir.path(), "labups");
    let sim = CryoSim::start(dir.path());
    let site = site(&format!(
        "{}{}[[ups]]\nid = \"ups\"\nnut = \"{}\"\nname = \"labups\"\npoll_interval = \"{POLL}\"\n\n\
         [[sensor]]\nid = \"ups.on_battery\"\nasset = \"power\"\nquantity = \"state\"\nunit = \"on_battery\"\n\
         stale_after = \"5s\"\n[sensor.ups]\nups = \"ups\"\nvariable = \"on_battery\"\n\n{}{}{}\
         [[rule]]\nid = \"mains-lost\"\nsensor = \"ups.on_battery\"\nkind = \"state\"\nequals = 1\nseverity = \"critical\"\n\n\
         [[rule]]\nid = \"freezer-warm\"\nsensor = \"freezer-7.temp\"\nkind = \"high\"\nthreshold = -78.0\n\n\
         [[rule]]\nid = \"freezer-door\"\nsensor = \"freezer-7.door\"\nkind = \"state\"\nequals = 1\nseverity = \"warning\"\n",
        base(),
        sim_devices(&sim),
        nut.addr(),
        sensor(
            "freezer-7.temp",
            "freezer-7",
            "temperature",
            "5s",
            "ctrl-freezer-7",
            FREEZER_TEMP
        ),
        sensor(
            "freezer-7.door",
            "freezer-7",
            "state",
            "5s",
            "ctrl-freezer-7",
            FREEZER_DOOR
        ),
        sensor("dewar-1.level", "dewar-1", "level", "2s", "ctrl-dewar-1", DEWAR_LEVEL),
    ));
    let daemon = site.start_daemon();
    wait_value(&site, "ups.on_battery", 0.0);
    wait_value(&site, "freezer-7.temp", -80.0);
    wait_value(&site, "dewar-1.level", 85.3);
    settle(&site, "ups.on_battery", 2);
    assert!(
        events(&site).is_empty(),
        "on line and steady: nothing\n{}",
        context(&site)
    );

    // Mains lost: the UPS goes on battery.
    nut.set("ups.status", "OB");
    let mains = wait_event(&site, "the mains-lost alarm", |e| e.is("raised", "mains-lost"));
    let mains_id = mains.alarm.expect("alarm id");
    assert_eq!(alarm_json(&site, mains_id)["incident"], Value::Null);

    // What the power cut causes: a freezer warming, a controller going silent.
    sim.set("freezer-7", "warmup:120");
    sim.set("dewar-1", "silent");
    let warm = wait_event(&site, "the freezer's high alarm", |e| e.is("raised", "freezer-warm"));
    let stale = wait_event(&site, "the silent controller's stale alarm", |e| {
        e.is("raised", "dewar-1.level:stale")
    });
    for e in [&warm, &stale] {
        let id = e.alarm.expect("alarm id");
        assert_eq!(
            alarm_json(&site, id)["incident"].as_i64(),
            Some(mains_id),
            "{e:?} belongs to the power incident"
        );
        assert_eq!(e.comment, format!("part of power incident {mains_id}"));
    }

    // Power restored: the mains alarm clears, saying so; the incident closes.
    nut.set("ups.status", "OL");
    let restored = wait_event(&site, "the mains-lost alarm to clear", |e| {
        e.is("cleared", "mains-lost")
    });
    assert_eq!(restored.alarm, Some(mains_id));
    assert_eq!(restored.comment, "power restored");
    // An alarm after the power came back is on its own.
    sim.set("freezer-7", "lid-open");
    let door = wait_event(&site, "the door alarm", |e| e.is("raised", "freezer-door"));
    assert_eq!(
        alarm_json(&site, door.alarm.expect("alarm id"))["incident"],
        Value::Null
    );
    settle(&site, "freezer-7.door", 3);

    assert_eq!(
        alarm_summary(&site),
        [
            format!("dewar-1.level:stale alarm active incident {mains_id}"),
            "freezer-door warning active".to_string(),
            format!("freezer-warm alarm active incident {mains_id}"),
            "mains-lost critical cleared".to_string(),
        ],
        "{}",
        context(&site)
    );
    let evs = events(&site);
    assert_eq!(kinds_of(&evs, "mains-lost"), ["raised", "cleared"]);
    assert_eq!(evs.iter().filter(|e| e.kind == "raised").count(), 4, "{evs:#?}");
    site.stop_daemon(daemon);
    eprintln!("power cut: {:?}", t_start.elapsed());
}

// ---- 4. probe fault ----------------------------------------------------------------

#[test]
fn a_probe_fault_raises_the_fault_alarm_and_neither_clears_nor_raises_the_high_alarm() {
    let t_start = Instant::now();
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = CryoSim::start(dir.path());
    let site = site(&format!(
        "{}{}{}{}\
         [[rule]]\nid = \"dewar-warm\"\nsensor = \"dewar-1.temp\"\nkind = \"high\"\nthreshold = -185.0\n\
         hysteresis = 2.0\nseverity = \"critical\"\n\n\
         [[rule]]\nid = \"dewar-probe\"\nsensor = \"dewar-1.temp\"\nkind = \"fault\"\ndelay = \"1s\"\n\n\
         [[rule]]\nid = \"freezer-warm\"\nsensor = \"freezer-7.temp\"\nkind = \"high\"\nthreshold = -70.0\n\n\
         [[rule]]\nid = \"freezer-probe\"\nsensor = \"freezer-7.temp\"\nkind = \"fault\"\ndelay = \"1s\"\n",
        base(),
        sim_devices(&sim),
        sensor(
            "dewar-1.temp",
            "dewar-1",
            "temperature",
            "5s",
            "ctrl-dewar-1",
            DEWAR_TEMP
        ),
        sensor(
            "freezer-7.temp",
            "freezer-7",
            "temperature",
            "5s",
            "ctrl-freezer-7",
            FREEZER_TEMP
        ),
    ));
    let daemon = site.start_daemon();
    wait_value(&site, "dewar-1.temp", -190.5);
    wait_value(&site, "freezer-7.temp", -80.0);

    // The dewar warms past its threshold: its high alarm is active.
    sim.set("dewar-1", "warmup:300");
    let warm = wait_event(&site, "the dewar's high alarm", |e| e.is("raised", "dewar-warm"));
    let warm_id = warm.alarm.expect("alarm id");

    // Both probes fail: the dewar's above its threshold, the freezer's far below.
    sim.set("dewar-1", "probe-fault");
    sim.set("freezer-7", "probe-fault");
    let mut raised = Vec::new();
    for rule in ["dewar-probe", "freezer-probe"] {
        let pending = wait_event(&site, &format!("{rule} to start"), |e| e.is("pending", rule));
        let r = wait_event(&site, &format!("{rule} to raise"), |e| e.is("raised", rule));
        assert!(
            (1000..=1000 + LATE_MS).contains(&(r.t - pending.t)),
            "{rule}: raised {} ms after the fault began; the delay is 1000 ms",
            r.t - pending.t
        );
        raised.push(r);
    }
    settle(&site, "dewar-1.temp", 4);
    let faulted = readings(&site, "dewar-1.temp");
    assert!(
        faulted.iter().rev().take(4).all(|r| r.2 == 2 && r.1.is_none()),
        "the dewar's probe reads sensor_fault: {:?}",
        &faulted[faulted.len().saturating_sub(4)..]
    );
    // Missing data decides nothing: the dewar's alarm holds, the freezer's never comes.
    let evs = events(&site);
    assert_eq!(kinds_of(&evs, "dewar-warm"), ["raised"], "{evs:#?}");
    assert_eq!(kinds_of(&evs, "freezer-warm"), Vec::<String>::new(), "{evs:#?}");
    assert!(
        !evs.iter()
            .any(|e| e.rule.as_deref().is_some_and(|r| r.ends_with(":fault"))),
        "the written fault rules replace the defaults: {evs:#?}"
    );
    assert_eq!(
        alarm_summary(&site),
        [
            "dewar-probe alarm active",
            "dewar-warm critical active",
            "freezer-probe alarm active",
        ]
    );
    assert_eq!(alarm_row(&site, warm_id).state.as_str(), "active");

    // Good readings decide again: the probes are back and the dewar is cold.
    sim.set("dewar-1", "steady");
    sim.set("freezer-7", "steady");
    for rule in ["dewar-probe", "freezer-probe", "dewar-warm"] {
        wait_event(&site, &format!("{rule} to clear"), |e| e.is("cleared", rule));
    }
    settle(&site, "dewar-1.temp", 2);
    assert_eq!(
        alarm_summary(&site),
        [
            "dewar-probe alarm cleared",
            "dewar-warm critical cleared",
            "freezer-probe alarm cleared",
        ],
        "{}",
        context(&site)
    );
    assert_eq!(kinds_of(&events(&site), "freezer-warm"), Vec::<String>::new());
    site.stop_daemon(daemon);
    eprintln!("probe fault: {:?}", t_start.elapsed());
}

// ---- 5. silence --------------------------------------------------------------------

#[test]
fn a_silent_device_goes_stale_after_stale_after_without_clearing_its_active_high_alarm() {
    let t_start = Instant::now();
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = CryoSim::start(dir.path());
    let site = site(&format!(
        "{}{}{}\
         [[rule]]\nid = \"dewar-warm\"\nsensor = \"dewar-1.temp\"\nkind = \"high\"\nthreshold = -185.0\n\
         hysteresis = 2.0\nseverity = \"critical\"\n",
        base(),
        sim_devices(&sim),
        sensor(
            "dewar-1.temp",
            "dewar-1",
            "temperature",
            "2s",
            "ctrl-dewar-1",
            DEWAR_TEMP
        ),
    ));
    let daemon = site.start_daemon();
    wait_value(&site, "dewar-1.temp", -190.5);
    sim.set("dewar-1", "warmup:300");
    let warm = wait_event(&site, "the high alarm", |e| e.is("raised", "dewar-warm"));

    // The controller stops answering: comm_error readings, then stale.
    sim.set("dewar-1", "silent");
    let stale = wait_event(&site, "the stale alarm", |e| e.is("raised", "dewar-1.temp:stale"));
    let rows = readings(&site, "dewar-1.temp");
    let last_good = rows.iter().rev().find(|r| r.2 == 0).expect("good readings").0;
    let after: Vec<_> = rows.iter().filter(|r| r.0 > last_good).collect();
    assert!(
        !after.is_empty() && after.iter().all(|r| r.2 == 1 && r.1.is_none()),
        "after the last good reading only comm_error: {after:?}"
    );
    let stale_row = alarm_row(&site, stale.alarm.expect("alarm id"));
    assert_eq!(
        stale_row.since,
        last_good + 2000,
        "stale 2 s after the last good reading"
    );
    assert!(
        (0..=LATE_MS).contains(&(stale.t - stale_row.since)),
        "raised {} ms after the sensor went stale",
        stale.t - stale_row.since
    );
    settle(&site, "dewar-1.temp", 3);
    // The missing data did not clear the high alarm.
    let evs = events(&site);
    assert_eq!(kinds_of(&evs, "dewar-warm"), ["raised"], "{evs:#?}");
    assert_eq!(alarm_row(&site, warm.alarm.expect("alarm id")).state.as_str(), "active");
    assert_eq!(
        alarm_summary(&site),
        ["dewar-1.temp:stale alarm active", "dewar-warm critical active"],
        "{}",
        context(&site)
    );

    // Back, and cold: a good reading ends both.
    sim.set("dewar-1", "steady");
    wait_event(&site, "the stale alarm to clear", |e| {
        e.is("cleared", "dewar-1.temp:stale")
    });
    wait_event(&site, "the high alarm to clear", |e| e.is("cleared", "dewar-warm"));
    assert_eq!(
        alarm_summary(&site),
        ["dewar-1.temp:stale alarm cleared", "dewar-warm critical cleared"]
    );
    site.stop_daemon(daemon);
    eprintln!("silent: {:?}", t_start.elapsed());
}

#[test]
fn a_sensor_that_never_reports_goes_stale_its_stale_after_after_the_start() {
    let t_start = Instant::now();
    // Nothing listens on this port: every poll is a refused connection.
    let port = free_port();
    let site = site(&format!(
        "{}{}{}",
        base(),
        device("ghost", &format!("127.0.0.1:{port}"), 1),
        sensor("ghost.temp", "rig", "temperature", "3s", "ghost", DEWAR_TEMP),
    ));
    let spawned = now_ms();
    let daemon = site.start_daemon();
    let stale = wait_event(&site, "the stale alarm", |e| e.is("raised", "ghost.temp:stale"));
    let row = alarm_row(&site, stale.alarm.expect("alarm id"));
    // Stale counts from the daemon's start (a moment after the spawn).
    assert!(
        (3000..=3000 + 1500).contains(&(row.since - spawned)),
        "stale {} ms after the daemon was started; stale_after is 3000 ms",
        row.since - spawned
    );
    assert!((0..=LATE_MS).contains(&(stale.t - row.since)), "{stale:?} {row:?}");
    settle(&site, "ghost.temp", 2);
    let rows = readings(&site, "ghost.temp");
    assert!(
        !rows.is_empty() && rows.iter().all(|r| r.2 == 1),
        "only comm_error readings: {rows:?}"
    );
    assert_eq!(
        alarm_summary(&site),
        ["ghost.temp:stale alarm active"],
        "{}",
        context(&site)
    );
    assert_eq!(events(&site).len(), 1, "{}", context(&site));
    site.stop_daemon(daemon);
    eprintln!("never reports: {:?}", t_start.elapsed());
}

// ---- 6, 7. kill -9 ---------------------------------------------------------------

#[test]
fn kill_9_during_a_pending_delay_raises_at_the_original_start_plus_the_delay() {
    let t_start = Instant::now();
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = CryoSim::start(dir.path());
    let site = lid_site(
        &sim,
        "[[rule]]\nid = \"lid-open\"\nsensor = \"dewar-1.lid\"\nkind = \"state\"\nequals = 1\ndelay = \"4s\"\n",
    );
    let daemon = site.start_daemon();
    wait_value(&site, "dewar-1.lid", 0.0);

    sim.set("dewar-1", "lid-open");
    let pending = wait_event(&site, "the delay to start", |e| e.is("pending", "lid-open"));
    kill_9(daemon);
    // Down for two of the four seconds: a delay restarted at the restart would end at
    // pending + 6 s, one resumed at pending + 4 s.
    let restart_at = pending.t + 2000;
    std::thread::sleep(Duration::from_millis(u64::try_from(restart_at - now_ms()).unwrap_or(0)));
    let restarted = now_ms();
    // Late enough after the start to tell the two apart, and before the delay runs out
    // with time to spare for the daemon to start.
    assert!(
        (pending.t + LATE_MS..pending.t + 3500).contains(&restarted),
        "restarted at pending + {} ms: this run cannot tell the two apart",
        restarted - pending.t
    );
    let daemon = site.start_daemon();
    let raised = wait_event(&site, "the alarm", |e| e.is("raised", "lid-open"));
    let late = raised.t - (pending.t + 4000);
    assert!(
        (0..=LATE_MS).contains(&late),
        "raised {late} ms after pending + delay (restarted at pending + {} ms)\n{}",
        restarted - pending.t,
        context(&site)
    );
    let row = alarm_row(&site, raised.alarm.expect("alarm id"));
    assert_eq!(row.since, pending.t, "the alarm keeps the original start");
    settle(&site, "dewar-1.lid", 3);
    assert_eq!(
        kinds_of(&events(&site), "lid-open"),
        ["pending", "raised"],
        "{}",
        context(&site)
    );
    assert_eq!(alarm_summary(&site), ["lid-open alarm active"]);
    site.stop_daemon(daemon);
    eprintln!("kill -9 while pending: {:?}", t_start.elapsed());
}

#[test]
fn kill_9_keeps_an_active_alarm_and_its_id_and_an_ack_made_just_before_it() {
    let t_start = Instant::now();
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = CryoSim::start(dir.path());
    let site = lid_site(
        &sim,
        "[[rule]]\nid = \"lid-open\"\nsensor = \"dewar-1.lid\"\nkind = \"state\"\nequals = 1\n",
    );
    let daemon = site.start_daemon();
    wait_value(&site, "dewar-1.lid", 0.0);
    sim.set("dewar-1", "lid-open");
    let raised = wait_event(&site, "the alarm", |e| e.is("raised", "lid-open"));
    let id = raised.alarm.expect("alarm id");

    // kill -9 with the alarm active; the lid stays open across the restart.
    kill_9(daemon);
    let restarted = now_ms();
    let daemon = site.start_daemon();
    wait_reading_after(&site, "dewar-1.lid", restarted);
    settle(&site, "dewar-1.lid", 4);
    assert_eq!(alarm_summary(&site), ["lid-open alarm active"], "{}", context(&site));
    assert_eq!(alarm_row(&site, id).state.as_str(), "active");
    assert_eq!(kinds_of(&events(&site), "lid-open"), ["raised"], "no second raise");

    // An ack after the restart is carried out by the new daemon; kill -9 right after
    // the command returns loses nothing.
    let said = ack(&site, id, "bob", "topping up, lid open on purpose");
    assert!(said.contains(&format!("alarm {id} acknowledged by bob")), "{said}");
    kill_9(daemon);
    let row = alarm_row(&site, id);
    assert_eq!(
        (row.state.as_str(), row.acked_by.as_deref(), row.ack_comment.as_deref()),
        ("acknowledged", Some("bob"), Some("topping up, lid open on purpose"))
    );
    let restarted = now_ms();
    let daemon = site.start_daemon();
    wait_reading_after(&site, "dewar-1.lid", restarted);
    settle(&site, "dewar-1.lid", 3);
    let a = alarm_json(&site, id);
    assert_eq!(
        (a["state"].as_str(), a["acknowledged_by"].as_str()),
        (Some("acknowledged"), Some("bob")),
        "{a}"
    );
    let evs = events(&site);
    assert_eq!(kinds_of(&evs, "lid-open"), ["raised", "acknowledged"], "{evs:#?}");
    let acked = &evs[1];
    assert_eq!((acked.actor.as_str(), acked.alarm), ("bob", Some(id)));

    // The restarted daemon still owns the alarm: closing the lid clears it.
    sim.set("dewar-1", "steady");
    let cleared = wait_event(&site, "the alarm to clear", |e| e.is("cleared", "lid-open"));
    assert_eq!(cleared.alarm, Some(id));
    assert_eq!(alarm_summary(&site), ["lid-open alarm cleared"]);
    site.stop_daemon(daemon);
    eprintln!("kill -9 with an alarm: {:?}", t_start.elapsed());
}

// ---- 8. ack and shelve from the command line ---------------------------------------

#[test]
fn ack_and_shelve_work_against_a_running_daemon_and_a_stopped_one_and_an_unknown_id_exits_2() {
    let t_start = Instant::now();
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = CryoSim::start(dir.path());
    let site = site(&format!(
        "{}{}{}{}\
         [[rule]]\nid = \"lid-open\"\nsensor = \"dewar-1.lid\"\nkind = \"state\"\nequals = 1\n\n\
         [[rule]]\nid = \"door-open\"\nsensor = \"freezer-7.door\"\nkind = \"state\"\nequals = 1\n",
        base(),
        sim_devices(&sim),
        sensor("dewar-1.lid", "dewar-1", "state", "5s", "ctrl-dewar-1", DEWAR_LID),
        sensor(
            "freezer-7.door",
            "freezer-7",
            "state",
            "5s",
            "ctrl-freezer-7",
            FREEZER_DOOR
        ),
    ));
    let daemon = site.start_daemon();
    wait_value(&site, "dewar-1.lid", 0.0);
    wait_value(&site, "freezer-7.door", 0.0);
    sim.set("dewar-1", "lid-open");
    sim.set("freezer-7", "lid-open");
    let lid = wait_event(&site, "the lid alarm", |e| e.is("raised", "lid-open"))
        .alarm
        .expect("alarm id");
    let door = wait_event(&site, "the door alarm", |e| e.is("raised", "door-open"))
        .alarm
        .expect("alarm id");

    // Running daemon: the commands are queued and answered by it.
    let said = ack(&site, lid, "alice", "filling");
    assert_eq!(said, format!("alarm {lid} acknowledged by alice"));
    let (code, said, err) = cli(
        &site,
        &[
            "shelve",
            "--sensor",
            "freezer-7.door",
            "--for",
            "1h",
            "--by",
            "bob",
            "--reason",
            "door seal repair",
        ],
    );
    assert_eq!(code, Some(0), "shelve: {err}");
    assert!(said.starts_with("sensor freezer-7.door shelved until "), "{said}");
    let (code, _, err) = cli(&site, &["ack", "999", "--by", "alice"]);
    assert_eq!(code, Some(2), "ack of an unknown alarm: {err}");
    assert!(err.contains("no open alarm 999"), "{err}");
    let (code, _, err) = cli(&site, &["ack", &lid.to_string(), "--by", "carol"]);
    assert_eq!(code, Some(2), "a second ack: {err}");
    assert!(err.contains(&format!("alarm {lid} is already acknowledged")), "{err}");
    let answered = requests(&site);
    assert_eq!(
        answered.iter().map(|r| (r.0.as_str(), r.1)).collect::<Vec<_>>(),
        [
            ("ack", Some(true)),
            ("shelve", Some(true)),
            ("ack", Some(false)),
            ("ack", Some(false))
        ],
        "every command went through the daemon: {answered:?}"
    );
    let door_row = alarm_row(&site, door);
    assert_eq!(door_row.suppressed.as_deref(), Some("shelved by bob: door seal repair"));
    assert_eq!(door_row.state.as_str(), "active");
    let shelved = wait_event(&site, "the shelving", |e| e.kind == "shelved");
    assert_eq!(
        (shelved.sensor.as_deref(), shelved.actor.as_str()),
        (Some("freezer-7.door"), "bob")
    );
    assert!(shelved.comment.ends_with("door seal repair"), "{shelved:?}");

    // Stopped daemon: the commands apply directly to the store.
    site.stop_daemon(daemon);
    let said = ack(&site, door, "carol", "seal replaced");
    assert_eq!(said, format!("alarm {door} acknowledged by carol"));
    let (code, said, err) = cli(
        &site,
        &[
            "shelve",
            "--sensor",
            "dewar-1.lid",
            "--for",
            "30m",
            "--by",
            "dave",
            "--reason",
            "weekly fill",
        ],
    );
    assert_eq!(code, Some(0), "shelve: {err}");
    assert!(said.starts_with("sensor dewar-1.lid shelved until "), "{said}");
    let (code, _, err) = cli(&site, &["ack", "999", "--by", "alice"]);
    assert_eq!(code, Some(2), "ack of an unknown alarm: {err}");
    assert!(err.contains("no open alarm 999"), "{err}");
    let (code, _, err) = cli(
        &site,
        &[
            "shelve",
            "--sensor",
            "no-such.sensor",
            "--for",
            "1h",
            "--by",
            "x",
            "--reason",
            "y",
        ],
    );
    assert_eq!(code, Some(2), "shelving an unknown sensor: {err}");
    assert!(err.contains("unknown sensor \"no-such.sensor\""), "{err}");
    assert_eq!(requests(&site).len(), answered.len(), "nothing queued with no daemon");
    let door_row = alarm_row(&site, door);
    assert_eq!(
        (
            door_row.state.as_str(),
            door_row.acked_by.as_deref(),
            door_row.ack_comment.as_deref()
        ),
        ("acknowledged", Some("carol"), Some("seal replaced"))
    );
    assert_eq!(
        alarm_row(&site, lid).suppressed.as_deref(),
        Some("shelved by dave: weekly fill")
    );

    // The daemon starts on what the commands left: nothing raised again, nothing lost.
    let restarted = now_ms();
    let daemon = site.start_daemon();
    wait_reading_after(&site, "dewar-1.lid", restarted);
    settle(&site, "dewar-1.lid", 3);
    assert_eq!(
        alarm_summary(&site),
        ["door-open alarm acknowledged", "lid-open alarm acknowledged"],
        "{}",
        context(&site)
    );
    let evs = events(&site);
    assert_eq!(evs.iter().filter(|e| e.kind == "raised").count(), 2, "{evs:#?}");
    let acks: Vec<(Option<i64>, &str, &str)> = evs
        .iter()
        .filter(|e| e.kind == "acknowledged")
        .map(|e| (e.alarm, e.actor.as_str(), e.comment.as_str()))
        .collect();
    assert_eq!(
        acks,
        [(Some(lid), "alice", "filling"), (Some(door), "carol", "seal replaced")]
    );
    assert_eq!(alarm_json(&site, lid)["suppressed"], "shelved by dave: weekly fill");
    assert_eq!(
        alarm_json(&site, door)["suppressed"],
        "shelved by bob: door seal repair"
    );
    site.stop_daemon(daemon);
    eprintln!("ack and shelve: {:?}", t_start.elapsed());
}
