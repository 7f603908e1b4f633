//! Modbus polling at scale: 200 devices × 20 input registers polled every second.
//!
//! The devices are one Modbus TCP gateway in the bench (tokio-modbus's server, units
//! 1–200, `support::modbus_fleet`) that counts every request and the registers it asked
//! for. The daemon is `cryowatch run` (the binary Cargo builds with this bench), one
//! i16 temperature sensor per register (4,000 sensors, 4,000 readings/s), each device on
//! its own connection. After a warm-up, over a window:
//!
//! - requests per poll: requests × registers per device ÷ registers read. Every poll
//!   reads each register once, so this is how many requests one device's poll took
//!   (1 when the device's adjacent registers are read in one request);
//! - polls per device per second (does the daemon keep the 1 s schedule?) and readings
//!   stored per second;
//! - the daemon's CPU share: utime + stime from `/proc/PID/stat` over the window ÷ wall
//!   time, as a percentage of one core.
//!
//! Run: `cargo bench --bench modbus_poll`. BENCH_DEVICES (default 200, at most 247),
//! BENCH_REGISTERS (20) and BENCH_SECS (window, default 60) set the sizes; BENCH_QUICK=1
//! shrinks the window to 5 s. Needs nothing outside the repository.

use std::path::Path;
use std::time::{Duration, Instant};

use cryowatch::store::Store;

mod support;
use support::modbus_fleet::FleetServer;
use support::{alive, pid_cpu, size, start_fleet_daemon};

fn stored(db: &Path) -> i64 {
    Store::open_read_only(db).and_then(|s| s.count()).unwrap_or(0)
}

pub fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --all-targets` asks benches to list their tests.
    }
    let devices = size("BENCH_DEVICES", 200, 200).min(247) as u16;
    let registers = size("BENCH_REGISTERS", 20, 20).min(125) as u16;
    let window_secs = size("BENCH_SECS", 60, 5);
    let warmup = Duration::from_secs(if support::quick() { 3 } else { 10 });

    let fleet = FleetServer::start(devices, registers);
    let (_dir, db, log, mut daemon) = start_fleet_daemon("modbus poll bench", fleet.addr, devices, registers, "1s");
    let pid = daemon.0.id();
    let daemon_log = || std::fs::read_to_string(&log).unwrap_or_default();

    // Every device polled once, then the warm-up.
    let deadline = Instant::now() + Duration::from_secs(30);
    while fleet.counts.units_polled() < usize::from(devices) {
        assert!(alive(&mut daemon), "cryowatch exited:\n{}", daemon_log());
        assert!(
            Instant::now() < deadline,
            "only {} of {devices} devices polled after 30 s:\n{}",
            fleet.counts.units_polled(),
            daemon_log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(warmup);

    let (req0, reg0, exc0) = fleet.counts.snapshot();
    let stored0 = stored(&db);
    let cpu0 = pid_cpu(pid);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(window_secs));
    let cpu1 = pid_cpu(pid);
    let wall = t0.elapsed().as_secs_f64();
    let (req1, reg1, exc1) = fleet.counts.snapshot();
    let stored1 = stored(&db);
    let rss = support::proc_status_kib(pid, "VmRSS").unwrap_or(0);
    assert!(alive(&mut daemon), "cryowatch exited:\n{}", daemon_log());
    drop(daemon);

    let requests = req1 - req0;
    let regs = reg1 - reg0;
    let polls = regs as f64 / f64::from(registers);
    let per_device = requests as f64 / polls.max(1.0);
    let per_poll = per_device * f64::from(devices);
    let polls_per_s = polls / f64::from(devices) / wall;
    let stored_per_s = (stored1 - stored0) as f64 / wall;
    let cpu_pct = 100.0 * (cpu1 - cpu0).as_secs_f64() / wall;
    let sensors = u64::from(devices) * u64::from(registers);

    println!(
        "modbus poll: {devices} devices × {registers} input registers (i16) every 1 s = {sensors} sensors, \
         one Modbus TCP gateway (tokio-modbus server, units 1-{devices}) in the bench, `cryowatch run` ({} build)",
        if cfg!(debug_assertions) { "debug" } else { "release" }
    );
    println!(
        "  requests per poll   {per_poll:>9.1}   ({per_device:.2} per device; {requests} requests for {regs} registers in {wall:.1} s)"
    );
    println!(
        "  polls               {polls_per_s:>9.3} per device per second   (schedule: 1.000); exceptions {}",
        exc1 - exc0
    );
    println!("  readings stored     {stored_per_s:>9.0} /s   (expected {sensors} /s)");
    println!(
        "  daemon CPU          {cpu_pct:>9.2} % of one core   ({:.2} s of CPU in {wall:.1} s, /proc/{pid}/stat utime+stime); RSS {:.1} MB",
        (cpu1 - cpu0).as_secs_f64(),
        rss as f64 / 1024.0
    );
    let warnings = daemon_log();
    if let Some(first) = warnings.lines().find(|l| !l.trim().is_empty()) {
        println!(
            "  daemon log          {} lines, first: {first}",
            warnings.lines().count()
        );
    }
    println!(
        "REPORT modbus_devices={devices} modbus_registers={registers} modbus_requests_per_poll={per_poll:.2} \
         modbus_requests_per_device={per_device:.3} modbus_polls_per_s={polls_per_s:.3} modbus_stored_per_s={stored_per_s:.0} \
         modbus_cpu_pct={cpu_pct:.2} modbus_window_s={wall:.1}"
    );
}
