//! cryowatch keeps watch over cryostorage — liquid-nitrogen dewars and ultra-low
//! freezers. It polls sensors over Modbus, MQTT and NUT, stores every reading, with its
//! quality, in an embedded store that is the system of record, raises alarms and pages
//! people until someone acknowledges.
//!
//! # Layout
//!
//! One line per module, in the order a reading travels: it enters in `sources`, is
//! committed with the alarm changes it causes in `pipeline` (SQL only in `store`, the
//! decisions in `alarm`), becomes a page in `notify`, and is read back by `report`,
//! `api` and `commands`.
//!
//! - [`config`]: the file into checked types, one file per section, every problem with its key path, secrets resolved once.
//!   - [`config::raw`]: the serde schema (`deny_unknown_fields`); [`config::access`]: whether the service user can open the files it names; [`config::rules`], [`config::notify`], [`config::monitor`]: rules, paging, the monitor's own sensors; [`config::serial`]: `[[serial.device]]`, `[sensor.serial]` and `[[serial.event]]`; [`config::states`]: the names people read for a discrete sensor's 0 and 1; [`config::calibration`]: the calibration sensors and rules of watched probes; `config::every`: when a recurring maintenance window or scheduled test page opens (weekly, daily, monthly); `config::quality`: `[[reason]]` codes for corrective actions, `[quality]` reminders and the nuisance limit, `[[review]]`; `config::alarm_check`: `[alarm_check]`, the tolerance and longest duration of physical alarm checks, `[[alarm_check_schedule]]`, and the rules a check proves; `config::trend`: the keys of `forecast` and `no_event` rules; [`config::output`]: `[[output]]` and its `when`.
//! - [`model`]: plain data: `Reading`, `Quality`, time, the alarm vocabulary (`AlarmId`, `AlarmState`, `Severity`).
//!   - [`model::changes`]: the change set the alarm engine produces and the store persists.
//! - [`sources`]: where readings enter; each yields readings, a failed poll included.
//!   - [`sources::modbus`]: one poller per link ([`sources::modbus::plan`] reads, [`sources::modbus::poll`] a poll, [`sources::modbus::decode`] registers to values, [`sources::modbus::write`] the local alarm outputs after each poll).
//!   - [`sources::mqtt`]: subscriptions, acknowledge-after-commit ([`sources::mqtt::payload`] parsing, [`sources::mqtt::pump`] the connection's loop).
//!   - [`sources::serial`]: line-based text protocols on a serial port (LN2 controllers), one task per port ([`sources::serial::parse`] lines to readings, events included).
//!   - [`sources::ups`]: NUT's upsd; [`sources::backoff`]: reconnect backoff with jitter for all of them.
//! - [`pipeline`]: the commit stage, where a reading becomes an alarm.
//!   - [`pipeline::commit`]: the thread owning the writer and the alarm engine; one transaction per batch; [`pipeline::CommitHandle`] is what sources send into.
//!   - [`pipeline::control`]: acknowledge, shelve and test-alarm requests from the command line.
//! - [`store`]: every SQL statement, behind typed `Store` methods; rows come out as the model's types.
//!   - [`store::embedded`]: open, schema and migrations, readings written and read back.
//!   - [`store::alarms`]: alarms, transitions, rule states, shelvings, requests.
//!   - [`store::outbox`]: notifications to send and their attempts; [`store::planning`]: the facts paging decides from.
//!   - [`store::mirror`]: the InfluxDB mirror's outbox and cursors; [`store::retention`]: reduction and deletion, audited.
//!   - [`store::audit`]: the hash-chained trail ([`store::audit::batch`], [`store::audit::seal`], [`store::audit::verify`], [`store::audit::watch`], [`store::audit::config`]).
//!   - [`store::quality`]: electronic signatures, the corrective actions that close excursions, signed acknowledgements and periodic reviews ([`store::quality::review`]), calibrations and physical alarm checks ([`store::quality::alarm_check`]: the trigger of each rule read back from the stored readings), proven by `audit verify`; signatures listed by what they sign; the open deviations kept for `/metrics`.
//!   - [`store::indicators`]: what `cryowatch quality` counts: the period's alarms with their return to normal, tests and corrective actions, its notifications with their fate, reading counts.
//!   - [`store::outputs`]: the open alarms as local alarm outputs see them (tests marked) and each change of an output's state, audited.
//!   - [`store::flags`], [`store::outage`], [`store::mqtt_session`], [`store::lock`], [`store::acklinks`], [`store::figures`], [`store::users`]: flagged readings, write outages, MQTT sessions, the daemon's lock, link keys, scrape figures, users and sessions.
//! - [`alarm`]: the decisions, touching no store.
//!   - [`alarm::condition`] (rule evaluation) and [`alarm::lifecycle`] (the alarm state machine): pure functions of readings and `now`.
//!   - [`alarm::forecast`]: where a sensor is heading (a robust line through a window of readings, and when it reaches a threshold), pure.
//!   - [`alarm::suppress`]: maintenance windows and shelving; [`alarm::engine`]: runs them and emits the change set, alarm tests included.
//! - [`notify`]: where alarms become pages.
//!   - [`notify::dispatcher`]: plan → outbox → send with fallback → record; [`notify::dispatcher::decide`] is the pure planning of what is due.
//!   - [`notify::escalation`], [`notify::oncall`]: who and when (pure); [`notify::message`]: the texts; [`notify::incident`]: power incidents.
//!   - [`notify::smtp`], [`notify::twilio`], [`notify::modem`], [`notify::webhook`]: the channels ([`notify::channel`], [`notify::channels`]); [`notify::modem::call`]: the modem's wake-up call before an SMS.
//!   - [`notify::inbound`], [`notify::acklink`], [`notify::testpage`]: SMS `ACK` replies, signed acknowledgement links, test pages.
//! - [`output`]: local alarm outputs (`[[output]]`): a beacon or siren on a Modbus coil or register, on while an open alarm matches; [`output::decide`] is the pure decision, the Modbus poller of its device writes it every poll ([`sources::modbus::write`]).
//! - [`sink`]: the InfluxDB v2 mirror ([`sink::line`] the escaped line protocol, [`sink::influx`] points and answers).
//! - [`api`]: the HTTP side: [`api::auth`], [`api::v1`] (JSON, with its OpenAPI document), [`api::web`] (dashboard, maud templates; `/quality` the indicators), [`api::ack`], [`api::close`] (signed corrective actions, JSON and dashboard form), [`api::sign`] (who signs: a session's person and password), [`api::sms`], [`api::metrics`], [`api::server`].
//! - [`alarm_check`]: which physical alarm checks `[[alarm_check_schedule]]` makes due and which are overdue.
//! - [`calibration`]: the calibration register's due dates as readings of each watched probe's calibration sensor, and a probe's calibration status.
//! - [`review`]: periodic review and sign-off: each period's report of an asset generated when the period ends, recorded, sent; signing checks it still shows the record.
//! - [`report`]: what is read back out: [`report::history`], [`report::status`], [`report::alarms`], [`report::mirror`], [`report::explain`], [`report::asset`], [`report::indicators`] (the alarm system's own performance per month and asset, every figure with the records it counts), [`report::selftest`], rendered by [`report::render`].
//! - [`telemetry`]: the pipeline's own counters ([`telemetry::stats`]) and the collectors each stage registers for `/metrics` ([`telemetry::families`]).
//! - [`commands`]: each command of the command line as a library function; `main.rs` only parses and dispatches.
//! - [`daemon`]: wiring of sources, commit stage, dispatcher, mirror and API; signals; ordered shutdown.
//! - [`heartbeat`]: the daemon's signs of life (retained MQTT status, a dead-man URL).
//! - [`standby`]: a second machine that takes over when the primary's heartbeat stops.
//! - [`service`]: systemd readiness, status lines and a watchdog fed only by progress.
//! - [`demo`]: simulators, daemon and dashboard in one command; [`demo::mail_sink`] the SMTP server its pages arrive at, [`demo::story`] what it tells as alarms open, page and are acknowledged.
//! - [`escape`]: outside strings made safe to print (control characters escaped).
//! - [`logging`]: log lines to standard error, escaped; under journald with syslog priority prefixes and no time of their own.
//! - [`timearg`]: the command line's time arguments.
//! - [`random`]: keys, salts, session ids and nonces from the operating system's generator, never a weaker stand-in.
//! - [`http`]: what every HTTP client shares (bounded answers, errors with causes).
//! - [`tls`]: whom every TLS client trusts (the system store plus a peer's `ca_file`), and which peers of a configuration use TLS.
pub mod alarm;
pub mod alarm_check;
pub mod api;
pub mod calibration;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod escape;
pub mod heartbeat;
pub mod http;
pub mod logging;
pub mod model;
pub mod notify;
pub mod output;
pub mod pipeline;
pub mod random;
pub mod report;
pub mod review;
pub mod service;
pub mod sink;
pub mod sources;
pub mod standby;
pub mod store;
pub mod telemetry;
pub mod timearg;
pub mod tls;
