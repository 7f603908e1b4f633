//! The UPS source: UPS status read through NUT's upsd. Each `[[ups]]` with sensors gets
//! its own task and TCP connection; every `poll_interval` it asks upsd for the UPS's
//! variables (`LIST VAR`) and stores one reading per sensor.
//!
//! A poll that fails — upsd unreachable, no answer in time, `ERR DRIVER-NOT-CONNECTED`,
//! `ERR DATA-STALE`, `ERR UNKNOWN-UPS`, a driver still starting (`ups.status WAIT`), an
//! answer that is not the protocol — still yields a `comm_error` reading per sensor. A
//! variable the UPS does not report gives its sensor `sensor_fault`. Reconnects back off
//! with jitter; an `ERR` answer keeps the connection, which is still in step, and the
//! next poll simply asks again.
//!
//! The client is our own (`client.rs`, `proto.rs`) rather than the `rups` crate: the
//! protocol is a few line-based commands, and rups 0.6 folds `DRIVER-NOT-CONNECTED` and
//! `DATA-STALE` into untyped strings, has no request timeouts, and builds a new read
//! buffer per reply, which can drop bytes upsd sent ahead.

mod client;
mod proto;
mod variable;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use self::client::{Client, UpsError};
use self::variable::{Missing, Variable};
use super::backoff::Backoff;
use crate::config::{Config, SensorSource, UpsDevice};
use crate::model::{Quality, Reading, now_ms};
use crate::pipeline::{Batch, CommitHandle};
use crate::telemetry::{Device, Source, Telemetry};

/// No request to upsd waits longer than this, however long the poll interval.
const MAX_TIMEOUT: Duration = Duration::from_secs(5);

/// While a UPS stays unreadable, its warning is repeated this often.
const REMIND_EVERY: Duration = Duration::from_secs(600);

/// While a UPS stays unreadable, a new reason is logged at most this often.
const CHANGE_GAP: Duration = Duration::from_secs(30);

/// Starts one poller per `[[ups]]` that has sensors.
pub fn spawn(
    config: &Config,
    store: &CommitHandle,
    shutdown: &CancellationToken,
    telemetry: &Arc<Telemetry>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    for (i, ups) in config.ups.iter().enumerate() {
        let points: Vec<(usize, Variable)> = config
            .sensors
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match &s.source {
                SensorSource::Ups(p) if p.ups == ups.id => match Variable::parse(&p.variable) {
                    Some(v) => Some((i, v)),
                    None => {
                        tracing::error!(ups = %ups.id, sensor = %s.id, variable = %p.variable, "unknown UPS variable; sensor not read");
                        None
                    }
                },
                _ => None,
            })
            .collect();
        if points.is_empty() {
            tracing::warn!(ups = %ups.id, "ups has no sensors; not polled");
            continue;
        }
        tracing::info!(ups = %ups.id, upsd = %ups.nut, name = %ups.name, sensors = points.len(), "ups planned");
        let device = telemetry.ups_device(i);
        tasks.push(tokio::spawn(run(
            ups.clone(),
            points,
            store.clone(),
            shutdown.clone(),
            telemetry.clone(),
            device,
        )));
    }
    tasks
}

/// The state of one UPS's poller between polls.
struct Poller {
    ups: UpsDevice,
    points: Vec<(usize, Variable)>,
    timeout: Duration,
    client: Option<Client>,
    backoff: Backoff,
    next_connect: Instant,
    health: Health,
    /// Poll latency and connection state for `/metrics`.
    telemetry: Arc<Device>,
}

impl Poller {
    fn new(ups: UpsDevice, points: Vec<(usize, Variable)>, telemetry: Arc<Device>) -> Poller {
        let timeout = ups.poll_interval.min(MAX_TIMEOUT);
        let backoff = Backoff::new(
            ups.poll_interval.min(Duration::from_secs(1)),
            Duration::from_secs(30).max(ups.poll_interval),
        );
        Poller {
            ups,
            points,
            timeout,
            client: None,
            backoff,
            next_connect: Instant::now(),
            health: Health::default(),
            telemetry,
        }
    }

    /// One poll: (re)connect when due, ask for the variables, and turn the answer — or
    /// the failure — into one reading per sensor.
    async fn poll(&mut self) -> Vec<Reading> {
        if self.client.is_none() && Instant::now() >= self.next_connect {
            let user = self.ups.username.as_deref();
            let pass = self.ups.password.as_ref().map(|p| p.0.as_str());
            match Client::open(&self.ups.nut, user, pass, self.timeout).await {
                Ok(c) => self.client = Some(c),
                Err(e) => self.broken(&e),
            }
        }
        let Some(client) = self.client.as_mut() else {
            self.telemetry.set_connected(false);
            return self.comm_errors();
        };
        let started = Instant::now();
        let answer = client.list_vars(&self.ups.name).await;
        self.telemetry.poll.observe(started.elapsed());
        // Connected: upsd answered with the UPS's variables (a driver still starting or
        // an `ERR` answer is not).
        let readable = matches!(&answer, Ok(vars) if !variable::driver_waiting(vars));
        self.telemetry.set_connected(readable);
        match answer {
            Ok(vars) if variable::driver_waiting(&vars) => {
                let e = UpsError::Waiting {
                    addr: self.ups.nut.clone(),
                    ups: self.ups.name.clone(),
                };
                self.health.failed(&self.ups.id, &e);
                self.comm_errors()
            }
            Ok(vars) => {
                self.health.ok(&self.ups.id);
                self.backoff.reset();
                self.readings(&vars)
            }
            Err(e) if e.keeps_connection() => {
                self.health.failed(&self.ups.id, &e);
                self.comm_errors()
            }
            Err(e) => {
                self.client = None;
                self.broken(&e);
                self.comm_errors()
            }
        }
    }

    /// The connection is gone or could not be made: try again after a backoff.
    fn broken(&mut self, e: &UpsError) {
        self.health.failed(&self.ups.id, e);
        self.next_connect = Instant::now() + self.backoff.next_delay();
    }

    fn readings(&mut self, vars: &HashMap<String, String>) -> Vec<Reading> {
        let t = now_ms();
        let mut missing = Vec::new();
        let readings = self
            .points
            .iter()
            .map(|&(sensor, var)| match var.value(vars) {
                Ok(v) => Reading::good(sensor, t, v),
                Err(why) => {
                    missing.push(why);
                    Reading::bad(sensor, t, Quality::SensorFault)
                }
            })
            .collect();
        self.health.missing(&self.ups.id, missing);
        readings
    }

    fn comm_errors(&self) -> Vec<Reading> {
        let t = now_ms();
        self.points
            .iter()
            .map(|&(sensor, _)| Reading::bad(sensor, t, Quality::CommError))
            .collect()
    }
}

async fn run(
    ups: UpsDevice,
    points: Vec<(usize, Variable)>,
    store: CommitHandle,
    shutdown: CancellationToken,
    telemetry: Arc<Telemetry>,
    device: Arc<Device>,
) {
    let mut tick = tokio::time::interval(ups.poll_interval);
    // Skip: a late poll does not shift the schedule (Delay did, drifting ~0.5 %
    // under load); polls missed while a device timed out are not made up in a burst.
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut poller = Poller::new(ups, points, device);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        let readings = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = poller.poll() => r,
        };
        telemetry.count_readings(Source::Ups, &readings);
        if store.send(Batch::new(readings)).await.is_err() {
            break;
        }
    }
    poller.telemetry.set_connected(false);
    if let Some(c) = poller.client.take() {
        c.close().await;
    }
}

/// Logs a UPS's health when it changes, so a dead upsd does not flood the journal every
/// poll: the first failure at once, a different reason at most every [`CHANGE_GAP`], the
/// same reason again every [`REMIND_EVERY`], and the recovery with how long it took.
#[derive(Default)]
struct Health {
    failing: Option<Failing>,
    missing: HashSet<&'static str>,
}

struct Failing {
    /// The reason last logged.
    why: String,
    since: Instant,
    logged: Instant,
}

impl Health {
    fn failed(&mut self, ups: &str, e: &UpsError) {
        let why = e.to_string();
        let now = Instant::now();
        let Some(f) = self.failing.as_mut() else {
            tracing::warn!(ups, reason = %why, "UPS not readable; its sensors read comm_error");
            self.failing = Some(Failing {
                why,
                since: now,
                logged: now,
            });
            return;
        };
        let quiet = now.duration_since(f.logged);
        if (f.why != why && quiet >= CHANGE_GAP) || quiet >= REMIND_EVERY {
            let failing_for = whole_seconds(now.duration_since(f.since));
            tracing::warn!(ups, reason = %why, failing_for = %failing_for, "UPS still not readable; its sensors read comm_error");
            f.why = why;
            f.logged = now;
        }
    }

    fn ok(&mut self, ups: &str) {
        if let Some(f) = self.failing.take() {
            tracing::info!(ups, after = %whole_seconds(f.since.elapsed()), "UPS readable again");
        }
    }

    /// Logs each NUT variable once when it goes missing and once when it is back.
    fn missing(&mut self, ups: &str, now: Vec<Missing>) {
        let mut names = HashSet::new();
        for m in &now {
            let var = m.variable();
            if !names.insert(var) || self.missing.contains(var) {
                continue;
            }
            match m {
                Missing::Absent(_) => tracing::warn!(
                    ups,
                    variable = var,
                    "UPS does not report {var}; sensors reading it get sensor_fault (`upsc` lists the variables this UPS has)"
                ),
                Missing::NotANumber(_, raw) => tracing::warn!(
                    ups,
                    variable = var,
                    value = %raw,
                    "UPS reports {var} but not as a number; sensors reading it get sensor_fault"
                ),
            }
        }
        for var in self.missing.difference(&names) {
            tracing::info!(ups, variable = var, "UPS reports {var} again");
        }
        self.missing = names;
    }
}

fn whole_seconds(d: Duration) -> humantime::FormattedDuration {
    humantime::format_duration(Duration::from_secs(d.as_secs()))
}
