//! Modbus scenarios: a TCP device unplugged and plugged back (pymodbus killed and
//! started again on its port), one of two RTU units on a shared serial line going
//! silent (cryosim's `silent` scenario) while the other keeps answering, and a server
//! that lies 36 ways (`tests/peers/modbus_liar.py`) beside one unit that answers right.

use std::path::Path;
use std::time::{Duration, Instant};

use cryosim::{Scenario, Sim, SimConfig};

use super::{
    COMM_ERROR, GOOD, Stored, checked_site, finish, longest_gap, now_ms, polls_scheduled, readings,
    same_time_duplicates,
};
use crate::common::pty::PtyPair;
use crate::common::pymodbus::PyModbus;
use crate::common::wait_for;
use crate::outcome::Outcome;

const ASSET: &str = "rig";

fn base_config() -> String {
    format!(
        "[site]\nname = \"fault suite\"\ntimezone = \"UTC\"\n\n[store]\npath = \"{{dir}}/cryowatch.db\"\n\
         flush_interval = \"50ms\"\n\n[[asset]]\nid = \"{ASSET}\"\nkind = \"other\"\n\n"
    )
}

fn rtu_device(id: &str, serial: &Path, unit: u8, poll: Duration, timeout: Duration) -> String {
    format!(
        "[[modbus.device]]\nid = \"{id}\"\ntransport = \"rtu\"\nserial = \"{}\"\nbaud = 9600\n\
         parity = \"none\"\ndata_bits = 8\nstop_bits = 1\nunit = {unit}\npoll_interval = \"{}ms\"\n\
         timeout = \"{}ms\"\n\n",
        serial.display(),
        poll.as_millis(),
        timeout.as_millis()
    )
}

/// A temperature sensor on input registers 0–1 (f32) of `device`.
fn temp_sensor(id: &str, device: &str) -> String {
    format!(
        "[[sensor]]\nid = \"{id}\"\nasset = \"{ASSET}\"\nunit = \"degC\"\n[sensor.modbus]\n\
         device = \"{device}\"\nregister = \"input\"\naddress = 0\ntype = \"f32\"\n\n"
    )
}

/// The first reading of quality `quality` stamped at or after `since_ms`.
fn first_since(rows: &[Stored], quality: i64, since_ms: i64) -> Option<Stored> {
    rows.iter().copied().find(|r| r.t >= since_ms && r.quality == quality)
}

/// A Modbus TCP device (pymodbus, an independent implementation) is killed for 3 s and
/// started again on the same port. Readings expected = polls scheduled.
pub fn tcp_device_unplugged() -> Outcome {
    const POLL: Duration = Duration::from_millis(200);
    // The poller keeps its interval from the poll before (a late poll moves the later
    // ones), so only a gap of nearly two intervals is a skipped poll.
    const LATE: Duration = Duration::from_millis(180);
    let mut out = Outcome::new("modbus tcp device unplugged");
    let dir = tempfile::tempdir().expect("temp dir");
    let peer = PyModbus::tcp(dir.path());
    let address = peer.tcp.clone().expect("pymodbus tcp address");
    let sensors = ["hr.u16.abcd", "co.0"];
    let mut config = base_config()
        + &format!(
            "[[modbus.device]]\nid = \"py\"\ntransport = \"tcp\"\naddress = \"{address}\"\nunit = {}\n\
             poll_interval = \"{}ms\"\ntimeout = \"300ms\"\n\n",
            peer.unit,
            POLL.as_millis()
        );
    for id in sensors {
        config += &peer.point(id).sensor_toml("py", ASSET);
    }
    let site = checked_site(&config);
    let daemon = site.start_daemon();
    wait_for(Duration::from_secs(15), "good readings before the fault", || {
        (readings(&site, sensors[0]).iter().filter(|r| r.quality == GOOD).count() >= 5).then_some(())
    });

    // Unplugged: the server process dies (SIGKILL), its connections and port close.
    let unplugged_ms = now_ms();
    drop(peer);
    std::thread::sleep(Duration::from_secs(3));
    let peer = PyModbus::tcp_on(dir.path(), &address);
    let back = Instant::now();
    let back_ms = now_ms();
    let recovered = wait_for(
        Duration::from_secs(30),
        "a good reading after the device came back",
        || {
            sensors
                .iter()
                .all(|s| first_since(&readings(&site, s), GOOD, back_ms).is_some())
                .then(Instant::now)
        },
    );
    out.recovery = Some(recovered - back);
    std::thread::sleep(Duration::from_secs(1));
    let stop_ms = now_ms();
    finish(&site, daemon, &mut out);
    drop(peer);

    let (mut expected, mut stored, mut dup, mut errors) = (0, 0, 0, 0);
    let mut gap = Duration::ZERO;
    for id in sensors {
        let rows = readings(&site, id);
        expected += polls_scheduled(&rows, POLL, LATE, stop_ms);
        stored += rows.len() as u64;
        dup += same_time_duplicates(&rows);
        errors += rows
            .iter()
            .filter(|r| r.t >= unplugged_ms && r.t < back_ms && r.quality == COMM_ERROR)
            .count();
        gap = gap.max(longest_gap(&rows));
    }
    out.readings_produced = Some(expected);
    out.readings_stored = Some(stored);
    out.readings_duplicated = Some(dup);
    out.detail = format!(
        "2 sensors polled every 200 ms; unplugged {:.1} s (3 s + the server's start), {errors} comm_error \
         readings meanwhile, longest gap {} ms; recovery = server ready -> good readings of both sensors \
         (reconnect backoff 1 s, doubling)",
        (back_ms - unplugged_ms) as f64 / 1000.0,
        gap.as_millis()
    );
    if errors == 0 && out.error.is_none() {
        out.error = Some("no comm_error reading while the device was unplugged".into());
    }
    out
}

fn sim_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Two RTU units on one serial line (cryosim on a socat pty pair: unit 1 `dewar-1`,
/// unit 2 `freezer-7`); unit 2 stops answering for 3 s. Readings expected = the live
/// unit's polls scheduled; stored = its good readings.
pub fn rtu_unit_dead() -> Outcome {
    const POLL: Duration = Duration::from_millis(600);
    const TIMEOUT: Duration = Duration::from_millis(200);
    // A live poll may wait behind the dead unit's timeout and its own transaction; the
    // line keeps each unit's slots, so a slot is late, never shifted.
    const LATE: Duration = Duration::from_millis(300);
    let mut out = Outcome::new("rtu unit dead on a shared bus");
    let dir = tempfile::tempdir().expect("temp dir");
    let pty = PtyPair::new(dir.path());
    let rt = sim_runtime();
    let sim = rt
        .block_on(Sim::start(SimConfig {
            modbus_rtu: Some(pty.a.clone()),
            ..SimConfig::default()
        }))
        .expect("start cryosim on the serial line");
    let config = base_config()
        + &rtu_device("live", &pty.b, 1, POLL, TIMEOUT)
        + &rtu_device("flaky", &pty.b, 2, POLL, TIMEOUT)
        + &temp_sensor("live.temp", "live")
        + &temp_sensor("flaky.temp", "flaky");
    let site = checked_site(&config);
    let daemon = site.start_daemon();
    let good = |id: &str| readings(&site, id).iter().filter(|r| r.quality == GOOD).count();
    wait_for(Duration::from_secs(15), "good readings of both units", || {
        (good("live.temp") >= 3 && good("flaky.temp") >= 3).then_some(())
    });

    std::thread::sleep(Duration::from_secs(1));
    let dead_ms = now_ms();
    sim.set_scenario("freezer-7", Scenario::Silent).expect("silence unit 2");
    std::thread::sleep(Duration::from_secs(3));
    sim.set_scenario("freezer-7", Scenario::Steady)
        .expect("unit 2 answers again");
    let back = Instant::now();
    let back_ms = now_ms();
    let recovered = wait_for(Duration::from_secs(15), "unit 2 answering again", || {
        first_since(&readings(&site, "flaky.temp"), GOOD, back_ms).map(|_| Instant::now())
    });
    out.recovery = Some(recovered - back);
    std::thread::sleep(Duration::from_secs(1));
    let stop_ms = now_ms();
    finish(&site, daemon, &mut out);
    rt.block_on(sim.shutdown());

    let live = readings(&site, "live.temp");
    let flaky = readings(&site, "flaky.temp");
    out.readings_produced = Some(polls_scheduled(&live, POLL, LATE, stop_ms));
    out.readings_stored = Some(live.iter().filter(|r| r.quality == GOOD).count() as u64);
    out.readings_duplicated = Some(same_time_duplicates(&live));
    let dead: Vec<&Stored> = flaky.iter().filter(|r| r.t >= dead_ms && r.t < back_ms).collect();
    let errors = dead.iter().filter(|r| r.quality == COMM_ERROR).count();
    out.detail = format!(
        "polls every 600 ms, timeout 200 ms; live unit longest gap {} ms; dead unit: {errors} comm_error of {} readings \
         while silent; recovery = unit 2 answers -> its good reading",
        longest_gap(&live).as_millis(),
        dead.len()
    );
    if errors == 0 && out.error.is_none() {
        out.error = Some("the silent unit left no comm_error reading".into());
    }
    out
}

/// A Modbus TCP server that lies in 36 ways, one per unit id (silence, closed
/// connections, wrong transaction/protocol/unit/function, every exception code, byte
/// counts and length fields that disagree, floods, garbage, duplicate, late and
/// byte-by-byte answers, replays, NaN, infinity, 1e38 °C), beside one honest unit. Every
/// lie must be stored as a bad reading — never a good one — and the honest unit stays
/// good on every poll, with no crash. Each lying unit has its own connection
/// (`max_connections`), as devices of separate addresses would.
pub fn modbus_lies() -> Outcome {
    const POLL: Duration = Duration::from_millis(300);
    const LATE: Duration = Duration::from_millis(280);
    const RUN: Duration = Duration::from_secs(10);
    const HONEST: u8 = 200;
    let mut out = Outcome::new("modbus server lies 36 ways");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/modbus_liar.py");
    let listed = std::process::Command::new(crate::common::python())
        .arg(&script)
        .arg("--list")
        .output()
        .expect("list the lies");
    let lies: Vec<(u8, String)> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .filter_map(|l| {
            let (unit, name) = l.split_once(' ')?;
            Some((unit.parse().ok()?, name.to_string()))
        })
        .collect();
    if lies.len() != 36 {
        out.error = Some(format!("modbus_liar.py lists {} lies, expected 36", lies.len()));
        return out;
    }
    let port = crate::common::free_port();
    let liar = crate::common::Proc::spawn(
        "modbus_liar.py",
        std::process::Command::new(crate::common::python())
            .arg(&script)
            .arg(port.to_string())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null()),
    );
    wait_for(Duration::from_secs(10), "the lying server to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok().map(|_| ())
    });
    let units: Vec<(String, u8)> = lies
        .iter()
        .map(|(u, _)| (format!("lie-{u}"), *u))
        .chain([("honest".to_string(), HONEST)])
        .collect();
    let mut config = base_config();
    for (id, unit) in &units {
        config += &format!(
            "[[modbus.device]]\nid = \"{id}\"\ntransport = \"tcp\"\naddress = \"127.0.0.1:{port}\"\nunit = {unit}\n\
             poll_interval = \"{}ms\"\ntimeout = \"300ms\"\nmax_connections = {}\n\n",
            POLL.as_millis(),
            units.len()
        );
        // A temperature: a value no probe reads (1e38 degC) is outside its valid range.
        config += &temp_sensor(&format!("{id}.temp"), id)
            .replace("unit = \"degC\"", "unit = \"degC\"\nquantity = \"temperature\"");
    }
    let site = checked_site(&config);
    let daemon = site.start_daemon();
    std::thread::sleep(RUN);
    let stop_ms = now_ms();
    finish(&site, daemon, &mut out);
    drop(liar);

    let honest = readings(&site, "honest.temp");
    let expected = polls_scheduled(&honest, POLL, LATE, stop_ms);
    let honest_good = honest
        .iter()
        .filter(|r| r.quality == GOOD && r.value == Some(21.5))
        .count() as u64;
    out.readings_produced = Some(expected);
    out.readings_stored = Some(honest_good);
    out.readings_duplicated = Some(same_time_duplicates(&honest));
    let mut believed = Vec::new();
    let mut bad_total = 0;
    for (unit, name) in &lies {
        let rows = readings(&site, &format!("lie-{unit}.temp"));
        bad_total += rows.iter().filter(|r| r.quality != GOOD).count();
        // A duplicated answer's first copy is a true answer; what must never be
        // believed is anything else.
        let wrong = rows
            .iter()
            .filter(|r| r.quality == GOOD && !(name == "answers twice" && r.value == Some(21.5)))
            .count();
        if wrong > 0 || rows.is_empty() {
            believed.push(format!("{name}: {wrong} good of {}", rows.len()));
        }
    }
    out.detail = format!(
        "36 lying units + 1 honest, polled every 300 ms for 10 s; {bad_total} bad readings stored for the lies, \
         {} lies believed; honest unit good {honest_good} of {expected} polls",
        believed.len()
    );
    if !believed.is_empty() && out.error.is_none() {
        out.error = Some(format!(
            "lies stored as good readings (or nothing stored): {}",
            believed.join("; ")
        ));
    }
    out
}
