//! Several Modbus units behind one TCP address: a gateway that serves one client at a
//! time (socat with `max-children=1` in front of an independent Modbus server: pymodbus
//! or modbus-tk serving several units on one port). The devices at that address must
//! share one connection, so every unit reads good values; a dead unit reads
//! `comm_error` while its neighbours stay good every poll; `max_connections` bounds the
//! connections the daemon opens. Every test runs the real `cryowatch run` and reads
//! what it stored with `cryowatch history`.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::gateway::{Gateway, ModbusTk};
use common::pymodbus::PyModbus;
use common::{Row, Site, assert_no_silence, cryowatch_output};

const ASSET: &str = "rig";

/// What a sensor must read in every stored reading: a good value (within a relative
/// tolerance), or `comm_error` (`None`).
struct Want {
    value: Option<f64>,
    tolerance: f64,
}

impl Want {
    fn matches(&self, r: &Row) -> bool {
        match self.value {
            None => r.quality == "comm_error" && r.value.is_none(),
            Some(v) => {
                r.quality == "good"
                    && r.value
                        .is_some_and(|got| (got - v).abs() <= self.tolerance * v.abs().max(1.0))
            }
        }
    }
}

/// `[[modbus.device]]` `u<unit>` for each unit at `address`, with `max_connections` when
/// given, then `sensors`.
fn config(address: &str, units: &[u8], max_connections: Option<u32>, timeout: &str, sensors: &str) -> String {
    let mut c = format!(
        "[site]\nname = \"modbus gateway test\"\n\n[store]\npath = \"{{dir}}/cryowatch.db\"\n\n\
         [[asset]]\nid = \"{ASSET}\"\nkind = \"other\"\n\n"
    );
    for u in units {
        c += &format!(
            "[[modbus.device]]\nid = \"u{u}\"\ntransport = \"tcp\"\naddress = \"{address}\"\nunit = {u}\n\
             poll_interval = \"500ms\"\ntimeout = \"{timeout}\"\n"
        );
        if let Some(n) = max_connections {
            c += &format!("max_connections = {n}\n");
        }
        c += "\n";
    }
    c + sensors
}

fn sensor_toml(id: &str, device: &str, register: &str, address: u16, data_type: &str) -> String {
    format!(
        "[[sensor]]\nid = \"{id}\"\nasset = \"{ASSET}\"\nquantity = \"other\"\nunit = \"raw\"\n\
         [sensor.modbus]\ndevice = \"{device}\"\nregister = \"{register}\"\naddress = {address}\n\
         type = \"{data_type}\"\n\n"
    )
}

/// The modbus-tk points of `units` as sensors, with what each must read; `dead` units
/// are configured but not served, so their sensors must read `comm_error`.
fn tk_sensors(peer: &ModbusTk, dead: &[u8]) -> (String, BTreeMap<String, Want>) {
    let mut toml = String::new();
    let mut want = BTreeMap::new();
    for p in &peer.points {
        toml += &sensor_toml(&p.id, &format!("u{}", p.unit), &p.register, p.address, &p.data_type);
        let tolerance = if p.data_type == "f32" { 1e-7 } else { 0.0 };
        want.insert(
            p.id.clone(),
            Want {
                value: Some(p.value),
                tolerance,
            },
        );
    }
    for u in dead {
        let id = format!("u{u}.hr0");
        toml += &sensor_toml(&id, &format!("u{u}"), "holding", 0, "u16");
        want.insert(
            id,
            Want {
                value: None,
                tolerance: 0.0,
            },
        );
    }
    (toml, want)
}

/// Writes the config and asserts `cryowatch check` accepts it.
fn site(config: &str) -> Site {
    let site = Site::new(config);
    let out = cryowatch_output(&["check", "-c", &site.config_str()]);
    assert!(
        out.status.success(),
        "cryowatch check refused the test config:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    site
}

/// What a run saw: the most client connections the gateway had at once, and the stored
/// readings of every sensor.
struct Run {
    most_clients: usize,
    rows: BTreeMap<String, Vec<Row>>,
}

/// Runs the daemon until every sensor of `want` has at least `min_rows` readings (or
/// `within` passed), sampling the gateway's client connections meanwhile; stops it and
/// returns what it stored.
fn run(site: &Site, gateway: &Gateway, want: &BTreeMap<String, Want>, min_rows: usize, within: Duration) -> Run {
    let daemon = site.start_daemon();
    let deadline = Instant::now() + within;
    let mut most_clients = 0;
    let mut checked = Instant::now();
    loop {
        most_clients = most_clients.max(gateway.clients());
        if checked.elapsed() > Duration::from_millis(500) {
            checked = Instant::now();
            if want.keys().all(|id| site.history(id).len() >= min_rows) {
                break;
            }
        }
        if Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    site.stop_daemon(daemon);
    let rows = want.keys().map(|id| (id.clone(), site.history(id))).collect();
    Run { most_clients, rows }
}

/// Every stored reading of every sensor is what it must be, and each sensor has at
/// least `min_rows` of them.
fn assert_every_reading(run: &Run, want: &BTreeMap<String, Want>, min_rows: usize, context: &str) {
    let mut problems = Vec::new();
    for (id, w) in want {
        let rows = &run.rows[id];
        if rows.len() < min_rows {
            problems.push(format!("{id}: {} readings, expected at least {min_rows}", rows.len()));
        }
        let wrong: Vec<&Row> = rows.iter().filter(|r| !w.matches(r)).collect();
        if !wrong.is_empty() {
            problems.push(format!(
                "{id}: {} of {} readings are not {:?}, first: {:?}",
                wrong.len(),
                rows.len(),
                w.value.map_or("comm_error".to_string(), |v| format!("good {v}")),
                wrong[0]
            ));
        }
    }
    assert!(problems.is_empty(), "{}\n{context}", problems.join("\n"));
}

#[test]
fn five_pymodbus_units_behind_a_single_client_gateway_all_read_what_they_serve() {
    let dir = tempfile::tempdir().expect("temp dir");
    let units = [1, 2, 3, 4, 5];
    let peer = PyModbus::tcp_units(dir.path(), &units);
    let gateway = Gateway::start(dir.path(), peer.tcp.as_deref().expect("pymodbus serves tcp"), 1);
    let mut sensors = String::new();
    let mut want = BTreeMap::new();
    for u in units {
        for id in ["hr.f32.cdab", "ir.u32.dcba", "hr.scale.i16", "co.2", "di.1"] {
            let mut p = peer.point(id).clone();
            p.id = format!("u{u}.{id}");
            sensors += &p.sensor_toml(&format!("u{u}"), ASSET);
            want.insert(
                p.id.clone(),
                Want {
                    value: p.expect.value,
                    tolerance: p.expect.tolerance,
                },
            );
        }
    }
    let site = site(&config(&gateway.address, &units, None, "1s", &sensors));
    let run = run(&site, &gateway, &want, 4, Duration::from_secs(20));
    let context = format!(
        "daemon log:\n{}\ngateway log:\n{}\npymodbus log:\n{}",
        site.daemon_log(),
        gateway.log(),
        peer.log()
    );
    assert_every_reading(&run, &want, 4, &context);
    assert_eq!(run.most_clients, 1, "connections to the gateway at once\n{context}");
}

/// What one run against modbus-tk behind the gateway stored, with what each sensor must
/// read and the logs for assertion messages.
struct TkRun {
    run: Run,
    want: BTreeMap<String, Want>,
    context: String,
}

/// modbus-tk serving `served` behind a gateway relaying `max_clients` clients at once;
/// the daemon polls units `served` and `dead` (not served) at it every 500 ms with
/// `timeout`, and `max_connections` when given, until every sensor has `min_rows`
/// readings.
fn behind_gateway(
    served: &[u8],
    dead: &[u8],
    max_clients: u32,
    max_connections: Option<u32>,
    timeout: &str,
    min_rows: usize,
) -> TkRun {
    let dir = tempfile::tempdir().expect("temp dir");
    let peer = ModbusTk::start(dir.path(), served);
    let gateway = Gateway::start(dir.path(), &peer.tcp, max_clients);
    let (sensors, want) = tk_sensors(&peer, dead);
    let mut units: Vec<u8> = served.iter().chain(dead).copied().collect();
    units.sort_unstable();
    let site = site(&config(&gateway.address, &units, max_connections, timeout, &sensors));
    let run = run(&site, &gateway, &want, min_rows, Duration::from_secs(30));
    let context = format!(
        "daemon log:\n{}\ngateway log:\n{}\nmodbus-tk log:\n{}",
        site.daemon_log(),
        gateway.log(),
        peer.log()
    );
    TkRun { run, want, context }
}

#[test]
fn five_modbus_tk_units_behind_a_single_client_gateway_all_read_their_own_values() {
    let t = behind_gateway(&[1, 2, 3, 4, 5], &[], 1, None, "1s", 4);
    assert_every_reading(&t.run, &t.want, 4, &t.context);
    assert_eq!(
        t.run.most_clients, 1,
        "connections to the gateway at once\n{}",
        t.context
    );
}

#[test]
fn a_dead_unit_behind_the_gateway_reads_comm_error_while_its_neighbours_stay_good_every_poll() {
    // Unit 4 is configured but not served: the gateway forwards its requests and no
    // answer ever comes, so each of its polls costs the link one timeout.
    let t = behind_gateway(&[1, 2, 3, 5], &[4], 1, None, "300ms", 8);
    assert_every_reading(&t.run, &t.want, 8, &t.context);
    // Each 500 ms round costs the live units at most the dead unit's 300 ms timeout
    // and the reconnect after it: they keep (nearly) their schedule, with no gap.
    for u in [1, 2, 3, 5] {
        assert_no_silence(&t.run.rows[&format!("u{u}.hr0")], Duration::from_millis(1500));
    }
    assert_eq!(
        t.run.most_clients, 1,
        "connections to the gateway at once\n{}",
        t.context
    );
}

#[test]
fn max_connections_two_spreads_the_units_of_one_address_over_two_connections() {
    // The gateway relays two clients at once; a third would wait unanswered.
    let t = behind_gateway(&[1, 2, 3, 4, 5], &[], 2, Some(2), "1s", 4);
    assert_every_reading(&t.run, &t.want, 4, &t.context);
    assert_eq!(
        t.run.most_clients, 2,
        "connections to the gateway at once\n{}",
        t.context
    );
}

/// `cryowatch selftest` beside a running daemon behind a gateway that takes one client:
/// the daemon's own connection is the evidence (a probe of its own would wait in the
/// gateway's queue and fail the OQ record of a working installation).
#[test]
fn the_oq_selftest_passes_the_units_of_a_single_client_gateway_the_daemon_is_polling() {
    let dir = tempfile::tempdir().expect("temp dir");
    let served = [1, 2];
    let peer = ModbusTk::start(dir.path(), &served);
    let gateway = Gateway::start(dir.path(), &peer.tcp, 1);
    let (sensors, want) = tk_sensors(&peer, &[]);
    let site = site(&config(&gateway.address, &served, None, "1s", &sensors));
    let daemon = site.start_daemon();
    // Long enough for several reconnects (1, 2, 4, 8, 16 s apart) should the one-client
    // gateway drop the first connection on a loaded machine.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !want
        .keys()
        .all(|id| site.history(id).iter().any(|r| r.quality == "good"))
    {
        assert!(Instant::now() < deadline, "no good readings yet\n{}", site.daemon_log());
        std::thread::sleep(Duration::from_millis(200));
    }
    let pdf = site.path().join("oq.pdf");
    let out = cryowatch_output(&[
        "selftest",
        "-c",
        &site.config_str(),
        "--out",
        &pdf.display().to_string(),
    ]);
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    site.stop_daemon(daemon);
    for unit in served {
        assert!(
            said.lines()
                .any(|l| l.contains("PASS") && l.contains(&format!("Modbus device u{unit} answers"))),
            "unit {unit}:\n{said}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
