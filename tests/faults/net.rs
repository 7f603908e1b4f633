//! Network and peer faults, one scenario per fault, each against real peers and the real
//! `cryowatch run`:
//!
//! - [`mqtt`]: the MQTT broker restarts mid-flow; InfluxDB (VictoriaMetrics) is down for
//!   a while.
//! - [`modbus`]: a Modbus TCP device is unplugged and comes back; one RTU unit on a
//!   shared serial line stops answering; a server lies 36 ways beside an honest unit.
//! - [`paging`]: the SMTP server is down during an excursion; the SMS gateway answers 500
//!   and 429; the GSM modem answers `+CMS ERROR`.
//!
//! - [`floods`]: a flood of failed sign-ins; hundreds of half-sent requests.
//!
//! Readings are counted in the store itself (read-only SQLite), pages at the peers that
//! received them (SMTP server, gateway, modem).

mod floods;
mod modbus;
mod mqtt;
mod paging;

use std::collections::BTreeMap;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::Scenario;
use crate::common::{Proc, Site, cryowatch_output};
use crate::outcome::Outcome;

pub fn scenarios() -> Vec<Scenario> {
    vec![
        ("broker restart", mqtt::broker_restart),
        ("modbus tcp device unplugged", modbus::tcp_device_unplugged),
        ("rtu unit dead on a shared bus", modbus::rtu_unit_dead),
        ("modbus lies", modbus::modbus_lies),
        ("influxdb down", mqtt::influx_down),
        ("smtp down", paging::smtp_down),
        ("gateway 500 then 429", paging::gateway_errors),
        ("modem +CMS ERROR", paging::modem_errors),
        ("sign-in flood", floods::sign_in_flood),
        ("idle connections", floods::idle_connections),
    ]
}

/// Writes the config and has `cryowatch check` accept it.
fn checked_site(config: &str) -> Site {
    let site = Site::new(config);
    let out = cryowatch_output(&["check", "-c", &site.config_str()]);
    assert!(
        out.status.success(),
        "cryowatch check refused the scenario's config: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    site
}

/// A read-only connection to the daemon's store; `None` before the daemon created it.
fn store(site: &Site) -> Option<Connection> {
    let path = site.path().join("cryowatch.db");
    if !path.exists() {
        return None;
    }
    Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).ok()
}

/// One stored reading.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Stored {
    /// Milliseconds since the Unix epoch.
    t: i64,
    value: Option<f64>,
    /// `Quality::code`: 0 good, 1 comm_error, 2 sensor_fault, 3 stale.
    quality: i64,
}

const GOOD: i64 = 0;
const COMM_ERROR: i64 = 1;

/// Every stored reading of `sensor`, oldest first (empty before the store or the sensor
/// exists).
fn readings(site: &Site, sensor: &str) -> Vec<Stored> {
    let Some(conn) = store(site) else { return Vec::new() };
    let Ok(mut st) = conn.prepare(
        "SELECT r.t, r.value, r.quality FROM reading r JOIN sensor s ON s.id = r.sensor \
         WHERE s.name = ?1 ORDER BY r.t, r.seq",
    ) else {
        return Vec::new();
    };
    st.query_map([sensor], |r| {
        Ok(Stored {
            t: r.get(0)?,
            value: r.get(1)?,
            quality: r.get(2)?,
        })
    })
    .and_then(|rows| rows.collect())
    .unwrap_or_default()
}

/// Milliseconds since the Unix epoch, as the daemon stamps readings.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Stops the daemon with SIGTERM. A daemon that had already exited by itself counts as a
/// crash; one that does not exit 0 on SIGTERM makes the row fail.
fn finish(site: &Site, mut daemon: Proc, out: &mut Outcome) {
    if !daemon.running() {
        out.crashes += 1;
        let last = site.daemon_log().lines().last().unwrap_or_default().to_string();
        out.error = Some(format!("the daemon exited by itself; last log line: {last}"));
        return;
    }
    daemon.signal("TERM");
    let code = daemon.wait_exit(Duration::from_secs(20));
    if code != Some(0) && out.error.is_none() {
        out.error = Some(format!("the daemon exited with {code:?} on SIGTERM"));
    }
}

/// Fills the page columns: `expected` contacts each paged once, `arrivals` the contacts
/// the peers received a page for (one entry per message received).
fn tally_pages(out: &mut Outcome, expected: &[&str], arrivals: &[String]) {
    let mut by_contact: BTreeMap<&str, u64> = BTreeMap::new();
    for a in arrivals {
        *by_contact.entry(a.as_str()).or_default() += 1;
    }
    let sent = expected.iter().filter(|c| by_contact.contains_key(*c)).count() as u64;
    let duplicated: u64 = by_contact.values().map(|n| n.saturating_sub(1)).sum();
    out.pages_expected = Some(expected.len() as u64);
    out.pages_sent = Some(sent);
    out.pages_missed = Some(expected.len() as u64 - sent);
    out.pages_duplicated = Some(duplicated);
    let unexpected: Vec<&str> = by_contact.keys().copied().filter(|c| !expected.contains(c)).collect();
    if !unexpected.is_empty() && out.error.is_none() {
        out.error = Some(format!("pages nobody expected, to: {}", unexpected.join(", ")));
    }
}

/// Polls scheduled from the first of `rows` until `until_ms` (when the daemon was told
/// to stop) for a sensor polled every `interval`, where a poll may come up to `late`
/// after its slot and still be on schedule (a neighbour's timeout on a shared line, a
/// slow scheduler): each gap between two readings, and the time after the last one,
/// counts the slots it spans, so a skipped slot counts as a missing reading.
fn polls_scheduled(rows: &[Stored], interval: Duration, late: Duration, until_ms: i64) -> u64 {
    let every = interval.as_millis() as i64;
    let late = late.as_millis() as i64;
    let Some(last) = rows.last() else { return 0 };
    let between: i64 = rows
        .windows(2)
        .map(|w| ((w[1].t - w[0].t + every - late) / every).max(1))
        .sum();
    let after = ((until_ms - last.t - late) / every).max(0);
    (1 + between + after) as u64
}

/// Readings stored more than once for the same millisecond.
fn same_time_duplicates(rows: &[Stored]) -> u64 {
    rows.windows(2).filter(|w| w[0].t == w[1].t).count() as u64
}

/// The longest time between two consecutive readings.
fn longest_gap(rows: &[Stored]) -> Duration {
    let ms = rows.windows(2).map(|w| w[1].t - w[0].t).max().unwrap_or(0);
    Duration::from_millis(ms.max(0) as u64)
}
