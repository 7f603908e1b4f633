//! cryowatch keeps watch over cryostorage — liquid-nitrogen dewars and ultra-low
//! freezers. It polls sensors over Modbus, MQTT and NUT, stores every reading, with its
//! quality, in an embedded store that is the system of record, raises alarms and pages
//! people until someone acknowledges.
//!
//! # Layout
//!
//! Follow a reading from left to right:
//!
//! - [`config`]: raw serde schema per section ([`config::raw`]), then one file per
//!   section turns its raw section into checked types with every problem and its key
//!   path, secrets resolved once (`check` collects the problems; [`config::rules`] for
//!   rules and defaults, [`config::notify`] for contacts, schedules, escalations and
//!   routes, [`config::monitor`] for the monitor's own record-integrity sensor and
//!   rule; `validate` calls the sections in order).
//! - [`model`]: `Reading`, `Quality`, timestamps, the alarm vocabulary (`AlarmId`,
//!   `AlarmState`, `Severity`) and the change set the alarm engine produces and the
//!   store persists ([`model::changes`]). Plain data, no I/O.
//! - [`sources`]: where readings enter. [`sources::modbus`] (read planning, decoding,
//!   one poller per link: a serial line, or a connection to a TCP address shared by the
//!   units behind it), [`sources::mqtt`] (routing, payload
//!   parsing, acknowledge-after-commit, a broker that lost the session told apart from a
//!   first connection; [`sources::mqtt::pump`] polls an MQTT connection apart from the
//!   timers around it, for the heartbeat and the standby too) and [`sources::ups`] (NUT upsd client and
//!   poller). [`sources::backoff`] is shared by all three.
//! - [`pipeline`]: the commit stage, where a reading becomes an alarm: one thread
//!   ([`pipeline::commit`]) owns the store's writer connection and the alarm engine and
//!   commits each batch of readings with the alarm changes it causes in one
//!   transaction; sources send into its [`pipeline::CommitHandle`]. [`pipeline::control`]
//!   is acknowledge/shelve/test-alarm from the command line.
//! - [`store`]: every SQL statement of the program. The embedded SQLite store
//!   ([`store::embedded`]: schema, migrations, readings), the alarm tables
//!   ([`store::alarms`]), the notification outbox
//!   ([`store::outbox`]), the InfluxDB mirror's outbox and cursors
//!   ([`store::mirror`]), retention ([`store::retention`]: per-minute reduction and
//!   deletion, each recorded in the audit trail), [`store::flags`] (readings kept but not
//!   believed: stamped far ahead of the clock, never a sensor's latest value) and
//!   [`store::outage`] (when failing commits become the paged condition "the store
//!   cannot write"), [`store::mqtt_session`] (when the MQTT client id was last connected,
//!   and the last session a broker lost), [`store::lock`] (the lock file the running
//!   daemon holds), [`store::acklinks`] (the link key and used nonces),
//!   [`store::figures`] (what `/metrics` reads), [`store::users`] (users and sessions)
//!   and [`store::audit`]: the hash-chained audit trail (appended in the same
//!   transaction as what it records), readings bound into it at commit
//!   ([`store::audit::batch`]) and sealed into it in blocks ([`store::audit::seal`]),
//!   configuration loads with their diff ([`store::audit::config`]), `audit verify`
//!   ([`store::audit::verify`]) and the daemon's continuous check of its own record
//!   ([`store::audit::watch`]), whose failures become readings of the monitor's own
//!   sensor ([`config::monitor`]) and so a paged alarm.
//! - [`alarm`]: the decisions, none of them touching the store: [`alarm::condition`]
//!   (rule evaluation) and [`alarm::lifecycle`] (the alarm state machine) are pure;
//!   [`alarm::suppress`] holds maintenance windows and shelving; [`alarm::engine`] runs
//!   them and turns every change into the change set the commit stage persists with the
//!   readings, including alarm tests (a synthetic excursion through a real rule, never a
//!   stored reading).
//! - [`notify`]: where alarms become pages: [`notify::oncall`] and
//!   [`notify::escalation`] (who and when, pure), [`notify::message`] (texts),
//!   [`notify::dispatcher`] (plan → outbox ([`store::outbox`]) → send with fallback →
//!   record), the channels ([`notify::smtp`], [`notify::twilio`], [`notify::modem`],
//!   [`notify::webhook`]), power incidents in paging ([`notify::incident`]: update
//!   pages, one return to normal for the incident), inbound `ACK` replies and their
//!   answers ([`notify::inbound`]) and signed acknowledgement links ([`notify::acklink`]).
//! - [`sink`]: the InfluxDB v2 mirror: batches from [`store::mirror`], the escaped line
//!   protocol ([`sink::line`]), points and answer classes ([`sink::influx`]), a refused
//!   batch split until its bad points are alone, cursor moved only on a confirmed write.
//! - [`api`]: the HTTP side: who is calling ([`api::auth`]: bearer tokens and session
//!   cookies, roles, CSRF), the JSON API ([`api::v1`], described by its OpenAPI
//!   document), the web dashboard, acknowledgement-link pages, the SMS gateway's webhook
//!   and `/metrics`. Users and sessions live in [`store::users`].
//! - [`report`]: what is read back out: `history` export, the `status` overview, the
//!   alarm list, the mirror's lag ([`report::mirror`]), `check --explain`, the auditor's
//!   asset report ([`report::asset`]) and the OQ self-test ([`report::selftest`]), both
//!   rendered as PDF or HTML by [`report::render`].
//! - [`telemetry`]: what the running pipeline counts about itself (readings by source
//!   and quality, poll and commit latency, connection states), shared by the stages and
//!   read by `/metrics`.
//! - [`commands`]: the work of each command of the command line, one call per command,
//!   with the failure the binary turns into its exit code.
//! - [`daemon`]: wiring of sources, commit stage, dispatcher, InfluxDB sink and HTTP
//!   API; signals; ordered shutdown.
//! - [`heartbeat`]: the daemon's own signs of life (retained MQTT status with a Last
//!   Will, a dead-man URL pinged while the pipeline progresses).
//! - [`standby`]: a second machine that takes over when the primary's heartbeat stops.
//! - [`service`]: systemd readiness, status lines and a watchdog fed only by progress.
//! - [`demo`]: simulators plus daemon in one command.
//! - [`escape`]: outside strings made safe to print: control characters escaped in every
//!   log line and in listings, so none can forge a line.
//! - [`timearg`]: the command line's time arguments.
//! - [`random`]: keys, salts, session ids and nonces from the operating system's
//!   generator (an error when it cannot be read, never a weaker stand-in).
//! - [`http`]: what every HTTP client shares (bounded answers, errors with causes).
//! - [`tls`]: whom every TLS client trusts (the system store plus a peer's `ca_file`),
//!   and certificate failures said with what to do.
pub mod alarm;
pub mod api;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod escape;
pub mod heartbeat;
pub mod http;
pub mod model;
pub mod notify;
pub mod pipeline;
pub mod random;
pub mod report;
pub mod service;
pub mod sink;
pub mod sources;
pub mod standby;
pub mod store;
pub mod telemetry;
pub mod timearg;
pub mod tls;
