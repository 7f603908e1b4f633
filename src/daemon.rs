//! Wiring: opens the store, starts the writer and every source, and shuts them down in
//! order — sources first, then the writer once it has committed every reading already
//! received.

use std::sync::Arc;

use anyhow::Context as _;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::sources::{modbus, mqtt, serial, ups};
use std::time::Duration;

use crate::model::now_ms;
use crate::notify::dispatcher::{self, Dispatcher};
use crate::pipeline::commit::{self, WriterStats};
use crate::pipeline::{CommitHandle, WriterJoin};
use crate::store::Store;
use crate::telemetry::Telemetry;

/// Readings queued between the sources and the writer before sources wait.
const QUEUE: usize = 65_536;

/// A running daemon.
pub struct Daemon {
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    writer: WriterJoin,
    pub writer_stats: Arc<WriterStats>,
    pub mqtt_stats: Arc<mqtt::MqttStats>,
    /// Sends readings to the store writer; subscribe to `store.events` for alarm
    /// transitions.
    pub store: CommitHandle,
    dispatcher: Option<std::thread::JoinHandle<()>>,
    pub dispatch_stats: Arc<dispatcher::DispatchStats>,
    sink: Option<std::thread::JoinHandle<()>>,
    /// The InfluxDB mirror's counters, when one is configured.
    pub sink_stats: Option<Arc<crate::sink::SinkStats>>,
    /// Everything `/metrics` shows that only the running daemon knows.
    pub telemetry: Arc<Telemetry>,
    store_path: std::path::PathBuf,
    /// The record watch ([`crate::store::audit::watch`]) and what it last verified.
    record_watch: Option<std::thread::JoinHandle<()>>,
    /// The periodic review worker ([`crate::review`]), when reviews are configured.
    reviews: Option<std::thread::JoinHandle<()>>,
    /// The calibration watch ([`crate::calibration`]), when `[calibration]` is configured.
    calibration: Option<std::thread::JoinHandle<()>>,
    pub record: Arc<crate::store::audit::watch::Shared>,
    /// Held while running: one daemon per store.
    _lock: std::fs::File,
}

/// How often the clock is evaluated (stale sensors, delays, suppression, requests).
pub const TICK: Duration = Duration::from_millis(250);

fn spawn_clock(handle: &CommitHandle, shutdown: &CancellationToken) -> JoinHandle<()> {
    let handle = handle.clone();
    let shutdown = shutdown.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(TICK);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = every.tick() => if handle.tick().is_err() { break },
            }
        }
    })
}

impl Daemon {
    /// Opens the store and starts every source. Must be called inside a Tokio runtime.
    pub fn start(config: &Config) -> anyhow::Result<Daemon> {
        // `cryowatch ack` or `shelve` with no daemon running holds the lock for a moment:
        // wait for it rather than fail to start.
        let mut lock = crate::store::lock::take(&config.store.path)?;
        for _ in 0..50 {
            if lock.is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
            lock = crate::store::lock::take(&config.store.path)?;
        }
        let Some(lock) = lock else {
            anyhow::bail!(
                "another cryowatch is already running on the store {} (its lock file {} is held)",
                config.store.path.display(),
                crate::store::lock::path(&config.store.path).display()
            );
        };
        let mut store = Store::open(&config.store.path).context("opening the embedded store")?;
        let names: Vec<(String, String)> = config.sensors.iter().map(|s| (s.id.clone(), s.unit.clone())).collect();
        let ids = store
            .register_sensors(&names)
            .context("registering sensors in the store")?;
        let dropped = store
            .set_mirror(config.influx.is_some())
            .context("preparing the InfluxDB mirror's outbox")?;
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "no [influx] section any more: readings waiting for InfluxDB were removed from its outbox (they stay in the store; `cryowatch influx backfill` can send them later)"
            );
        }
        let detail = serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "pid": std::process::id(),
            "site": config.site.name,
            "sensors": config.sensors.len(),
        });
        store
            .append_audit(now_ms(), "daemon.start", "daemon", &config.site.name, &detail)
            .context("recording the start in the audit trail")?;
        let engine = crate::pipeline::load_engine(config, &store, &ids, now_ms())
            .context("loading the alarm state from the store")?;
        let housekeeping = commit::Housekeeping {
            seal: Some((config.store.seal_interval, config.store.seal_grace)),
            retention: Some(crate::store::retention::Policy {
                retention: config.store.retention,
                reduce_after: config.store.reduce_after,
            }),
        };
        let ranges = config.sensors.iter().map(|s| (s.id.clone(), s.valid_range)).collect();
        let (handle, writer) = commit::spawn(
            store,
            ids,
            ranges,
            QUEUE,
            config.store.batch_size,
            Some(engine),
            housekeeping,
        )
        .context("starting the store writer")?;
        let shutdown = CancellationToken::new();
        let mut tasks = vec![spawn_clock(&handle, &shutdown)];
        let dispatch_store =
            Store::open(&config.store.path).context("opening the store for the notification dispatcher")?;
        let tag = crate::notify::acklink::installation_tag(&dispatch_store)
            .map_err(|e| tracing::error!(error = %e, "no installation tag for mail Message-IDs"))
            .ok();
        let channels = crate::notify::channels::build(&config.notify, tag.as_deref());
        let condition = crate::store::outage::ConditionFile::open(&config.store.path)
            .map_err(|e| tracing::warn!(error = %e, "no condition file next to the store: `status` cannot show a store outage"))
            .ok();
        let dispatcher = Dispatcher::new(Arc::new(config.clone()), dispatch_store, channels.senders)
            .with_modems(channels.modems)
            .with_store_watch(handle.stats.clone(), condition);
        let dispatch_stats = dispatcher.stats.clone();
        let dispatcher = dispatcher::spawn(dispatcher, shutdown.clone(), handle.events.subscribe())
            .context("starting the dispatcher")?;
        let reviews = crate::review::spawn(Arc::new(config.clone()), now_ms, shutdown.clone())
            .context("starting the periodic review worker")?;
        let calibration = crate::calibration::spawn(Arc::new(config.clone()), &handle, shutdown.clone())
            .context("starting the calibration watch")?;
        let sink =
            crate::sink::spawn(Arc::new(config.clone()), shutdown.clone()).context("starting the InfluxDB mirror")?;
        let (sink, sink_stats) = sink.unzip();
        let telemetry = Arc::new(Telemetry::new(config).with_writer(handle.stats.clone()));
        // Each stage registers what it counts; the API serves the registry on /metrics.
        let mut registry = prometheus_client::registry::Registry::default();
        telemetry.register(&mut registry);
        handle.stats.register(&mut registry, {
            let probe = handle.queue_probe();
            Some(Arc::new(move || probe.depth()))
        });
        let channel_ids = config.notify.channels.iter().map(|c| c.id.clone()).collect();
        dispatch_stats.register(&mut registry, channel_ids);
        if let Some(s) = &sink_stats {
            s.register(&mut registry);
        }
        let registry = Arc::new(registry);
        let (outputs, desired) =
            crate::output::spawn(config, &handle, &shutdown).context("starting the local alarm outputs")?;
        tasks.extend(outputs);
        tasks.extend(modbus::spawn(config, &handle, &shutdown, &telemetry, &desired));
        tasks.extend(mqtt::spawn(config, &handle, &shutdown, &telemetry));
        tasks.extend(ups::spawn(config, &handle, &shutdown, &telemetry));
        tasks.extend(serial::spawn(config, &handle, &shutdown, &telemetry));
        let record = crate::store::audit::watch::Shared::new(tag.clone());
        let record_watch = spawn_record_watch(config, &handle, record.clone(), telemetry.clone(), &shutdown)?;
        tasks.extend(crate::heartbeat::spawn(
            config,
            handle.stats.clone(),
            record.clone(),
            &shutdown,
        ));
        tasks.extend(
            crate::api::spawn_with(
                config,
                &shutdown,
                Some(telemetry.clone()),
                Some(registry),
                Some(handle.clone()),
            )
            .context("starting the HTTP API")?,
        );
        tracing::info!(
            site = %config.site.name,
            store = %config.store.path.display(),
            sensors = config.sensors.len(),
            devices = config.devices.len(),
            "cryowatch running"
        );
        Ok(Daemon {
            shutdown,
            tasks,
            writer,
            writer_stats: handle.stats.clone(),
            mqtt_stats: telemetry.mqtt.clone(),
            telemetry,
            store: handle,
            dispatcher: Some(dispatcher),
            dispatch_stats,
            sink,
            sink_stats,
            store_path: config.store.path.clone(),
            record_watch: Some(record_watch),
            reviews,
            calibration,
            record,
            _lock: lock,
        })
    }

    /// Stops the sources, then waits until every reading they produced is committed.
    pub async fn stop(self) {
        self.shutdown.cancel();
        for t in self.tasks {
            if let Err(e) = t.await {
                tracing::error!(error = %e, "a source task ended abnormally");
            }
        }
        if let Some(w) = self.record_watch {
            self.record.interrupt();
            let _ = tokio::task::spawn_blocking(move || w.join()).await;
        }
        if let Some(r) = self.reviews {
            let _ = tokio::task::spawn_blocking(move || r.join()).await;
        }
        // It sends readings: stopped before the writer.
        if let Some(c) = self.calibration {
            let _ = tokio::task::spawn_blocking(move || c.join()).await;
        }
        // The writer stops once every handle to it is gone, this one included.
        drop(self.store);
        self.writer.join().await;
        if let Some(d) = self.dispatcher {
            let _ = tokio::task::spawn_blocking(move || d.join()).await;
        }
        if let Some(s) = self.sink {
            let _ = tokio::task::spawn_blocking(move || s.join()).await;
        }
        let committed = self.writer_stats.committed.load(std::sync::atomic::Ordering::Relaxed);
        let recorded = Store::open(&self.store_path).and_then(|mut s| s.record_stop(now_ms(), committed));
        if let Err(e) = recorded {
            tracing::error!(error = %e, "could not record the stop in the audit trail");
        }
        tracing::info!(committed, "cryowatch stopped; every received reading is stored");
    }
}

/// How often the record-integrity sensor gets a reading while nothing changes, so
/// `status` shows the record as checked recently.
const RECORD_READING_EVERY: Duration = Duration::from_secs(60);

/// Starts the record watch; each look becomes a reading of the record-integrity sensor
/// (0 verified, 1 failed), so a failure raises its critical alarm and is paged.
fn spawn_record_watch(
    config: &Config,
    handle: &CommitHandle,
    record: Arc<crate::store::audit::watch::Shared>,
    telemetry: Arc<Telemetry>,
    shutdown: &CancellationToken,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    use crate::config::monitor::{RECORD_BROKEN, RECORD_SENSOR};
    let sensor = config.sensor_index(RECORD_SENSOR);
    let handle = handle.clone();
    let mut last: Option<(bool, std::time::Instant)> = None;
    let report = move |look: &crate::store::audit::watch::Look| {
        let Some(sensor) = sensor else { return };
        let broken = look.problem.is_some();
        let due = match last {
            Some((was, at)) => was != broken || at.elapsed() >= RECORD_READING_EVERY,
            None => true,
        };
        if !due {
            return;
        }
        last = Some((broken, std::time::Instant::now()));
        let value = if broken { RECORD_BROKEN } else { 0.0 };
        let readings = vec![crate::model::Reading::good(sensor, now_ms(), value)];
        telemetry.count_readings(crate::telemetry::Source::Monitor, &readings);
        if handle.send_blocking(commit::Batch::new(readings)).is_err() {
            tracing::debug!("record watch: the store writer has stopped");
        }
    };
    crate::store::audit::watch::spawn(config.store.path.clone(), record, shutdown.clone(), report)
        .context("starting the record watch")
}

/// Records the configuration file (hash, diff against the last one) in the audit trail.
fn record_config(config: &Config, path: &std::path::Path, kind: &str) {
    let res = std::fs::read(path)
        .context("reading the configuration file")
        .and_then(|bytes| {
            let mut store = Store::open(&config.store.path)?;
            store.record_config_load(path, &bytes, kind, "daemon", now_ms())?;
            Ok(())
        });
    if let Err(e) = res {
        tracing::error!(file = %path.display(), error = %e, "could not record the configuration in the audit trail");
    }
}

/// Runs until SIGTERM or SIGINT, then shuts down cleanly.
///
/// SIGHUP (`systemctl reload`) re-reads the configuration. A valid one is applied by
/// stopping the pipeline (every reading received is committed first) and starting it
/// again on the new configuration: alarm state, the outboxes and the MQTT session are in
/// the store and the broker, so nothing is lost or forgotten. An invalid one is logged,
/// recorded in the audit trail and raised as a warning condition in `status`, and the
/// running configuration is kept. Both are audited.
pub async fn run(config: Config, config_path: std::path::PathBuf) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let mut config = config;
    let mut daemon = Daemon::start(&config)?;
    record_config(&config, &config_path, "config.loaded");
    let mut watchdog = crate::service::spawn_watchdog(daemon.writer_stats.clone(), daemon.shutdown.clone());
    crate::service::ready(&running_status(&config));
    loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!("SIGTERM: shutting down"); break }
            _ = int.recv() => { tracing::info!("SIGINT: shutting down"); break }
            _ = hup.recv() => {
                let new = crate::config::load(&config_path).map_err(|e| e.to_string()).and_then(|new| {
                    if new.store.path == config.store.path {
                        Ok(new)
                    } else {
                        Err(format!(
                            "{}: store.path: cannot change while running ({} → {}); restart cryowatch for that",
                            config_path.display(),
                            config.store.path.display(),
                            new.store.path.display()
                        ))
                    }
                });
                let new = match new {
                    Ok(new) => new,
                    Err(problems) => {
                        tracing::error!(file = %config_path.display(), problems = %problems, "SIGHUP: configuration is invalid; keeping the running one");
                        record_rejected(&config, &config_path, &problems);
                        crate::service::status(&format!("running; configuration reload refused: {}", first_line(&problems)));
                        continue;
                    }
                };
                tracing::info!(file = %config_path.display(), "SIGHUP: configuration is valid; applying it");
                crate::service::status("reloading the configuration");
                daemon.stop().await;
                if let Some(w) = watchdog.take() {
                    let _ = w.await;
                }
                daemon = match Daemon::start(&new) {
                    Ok(d) => {
                        config = new;
                        record_config(&config, &config_path, "config.reloaded");
                        d
                    }
                    Err(e) => {
                        let problems = format!("{e:#}");
                        tracing::error!(problems = %problems, "the new configuration could not start; going back to the running one");
                        let d = Daemon::start(&config)?;
                        record_rejected(&config, &config_path, &problems);
                        d
                    }
                };
                watchdog = crate::service::spawn_watchdog(daemon.writer_stats.clone(), daemon.shutdown.clone());
                crate::service::ready(&running_status(&config));
            }
        }
    }
    crate::service::stopping();
    daemon.stop().await;
    if let Some(w) = watchdog {
        let _ = w.await;
    }
    Ok(())
}

fn running_status(config: &Config) -> String {
    format!(
        "running: {} sensors, {} devices, {} rules",
        config.sensors.len(),
        config.devices.len(),
        config.rules.len()
    )
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}

/// Records a configuration that was refused on reload: in the audit trail, and as the
/// warning condition `status` shows until a configuration is applied.
fn record_rejected(config: &Config, path: &std::path::Path, problems: &str) {
    let res =
        Store::open(&config.store.path).and_then(|mut store| store.record_config_rejected(now_ms(), path, problems));
    if let Err(e) = res {
        tracing::error!(error = %e, "could not record the refused configuration");
    }
}
