//! The `cryowatch` command line: parse, load the configuration, call into the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use cryowatch::config::{self, Config};
use cryowatch::model::now_ms;
use cryowatch::pipeline::control::{ControlError, Request};
use cryowatch::report::{alarms, history, status};
use cryowatch::store::{Store, mirror};
use cryowatch::timearg;
use sha2::Digest as _;
use std::io::Write as _;

const DEFAULT_CONFIG: &str = "/etc/cryowatch/cryowatch.toml";

#[derive(Parser)]
#[command(
    name = "cryowatch",
    version,
    about = "Monitoring, alarming and records for cryostorage"
)]
struct Cli {
    /// Log lines as text (colour only on a terminal) or as one JSON object per line
    /// (for journald or a log shipper).
    #[arg(long, global = true, env = "CRYOWATCH_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon in the foreground.
    Run {
        #[arg(short, long, env = "CRYOWATCH_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Validate the configuration: exit 0 when valid, 2 with every problem listed.
    Check {
        #[arg(short, long, env = "CRYOWATCH_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Also print what will be polled.
        #[arg(long)]
        explain: bool,
    },
    /// Current value and state of every sensor.
    Status {
        #[arg(short, long, env = "CRYOWATCH_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Readings of one sensor over a period.
    History {
        #[arg(short, long, env = "CRYOWATCH_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        #[arg(long)]
        sensor: String,
        /// Start: RFC 3339, relative (-24h) or now. Default: -24h.
        #[arg(long, allow_hyphen_values = true)]
        from: Option<String>,
        /// End: RFC 3339, relative (-1h) or now. Default: now.
        #[arg(long, allow_hyphen_values = true)]
        to: Option<String>,
        #[arg(long, value_enum, default_value_t = OutFormat::Csv)]
        format: OutFormat,
    },
    /// Alarms, newest first.
    Alarms {
        #[arg(short, long, env = "CRYOWATCH_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Only open alarms (active or acknowledged).
        #[arg(long)]
        active: bool,
        #[arg(long)]
        json: bool,
    },
    /// Acknowledge an alarm: stops its escalation; recorded with who and why.
    Ack {
        #[arg(short, long, env = "CRYOWATCH_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The alarm id (see `cryowatch alarms`).
        alarm_id: i64,
        /// Who acknowledges.
        #[arg(long)]
        by: String,
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Shelve a sensor: its alarms are recorded but not escalated until the shelving expires.
    Shelve {
        #[arg(short, long, env = "CRYOWATCH_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        #[arg(long)]
        sensor: String,
        /// How long, e.g. 30m, 2h (at most 7 days).
        #[arg(long = "for")]
        duration: String,
        #[arg(long)]
        by: String,
        #[arg(long)]
        reason: String,
    },
    /// Send a test page to a contact on every channel that reaches them, and report.
    TestPage {
        #[arg(short, long, env = "CRYOWATCH_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The contact's id or name.
        #[arg(long)]
        contact: String,
    },
    /// Test the alarm path of a sensor without touching it: a synthetic excursion marked
    /// as a test goes through its rule, escalation and channels to the on-call person,
    /// whose acknowledgement completes the test. No reading is stored.
    TestAlarm {
        #[arg(short, long, env = "CRYOWATCH_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        #[arg(long)]
        sensor: String,
        /// Who starts the test (default: the login name).
        #[arg(long)]
        by: Option<String>,
    },
    /// On a second machine: watch the primary's heartbeat ([standby]) and, when it goes
    /// silent, page that the monitor is down and take over until the primary is back.
    Standby {
        #[arg(short, long, env = "CRYOWATCH_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// People who sign in to the web dashboard.
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Run the operational-qualification checks against this installation and write
    /// them as a report to sign off (.pdf or .html). Exit 0 when every check passed.
    Selftest {
        #[arg(short, long, env = "CRYOWATCH_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// The auditor's report of one asset over a period, as PDF, HTML or CSV (by --out's
    /// extension).
    Report {
        #[arg(short, long, env = "CRYOWATCH_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        #[arg(long)]
        asset: String,
        /// Start: RFC 3339, relative (-30d) or now.
        #[arg(long, allow_hyphen_values = true)]
        from: String,
        #[arg(long, allow_hyphen_values = true)]
        to: String,
        /// FILE.pdf, FILE.html or FILE.csv.
        #[arg(long)]
        out: PathBuf,
    },
    /// The InfluxDB mirror: its lag, quarantined batches, and sending history again.
    Influx {
        #[command(subcommand)]
        action: InfluxAction,
    },
    /// The hash-chained audit trail: verify it, or list it.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
    /// Start the simulators and the daemon with an embedded store; no setup needed.
    Demo {
        /// Where the store and configuration go (default: a new temporary directory).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Stop after this long (e.g. 30s, 10m); default: until Ctrl-C.
        #[arg(long = "for")]
        duration: Option<String>,
    },
}

#[derive(Subcommand)]
enum InfluxAction {
    /// How far behind the mirror is, and what needs a person.
    Status {
        #[arg(short, long, env = "CRYOWATCH_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Batches InfluxDB refused for their content.
    Quarantine {
        #[arg(short, long, env = "CRYOWATCH_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Queue the quarantined readings and alarm transitions again (once the cause is fixed).
    Requeue {
        #[arg(short, long, env = "CRYOWATCH_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Queue stored history for the mirror (e.g. readings from before [influx] was set up).
    Backfill {
        #[arg(short, long, env = "CRYOWATCH_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Start: RFC 3339 or relative (-30d).
        #[arg(long, allow_hyphen_values = true)]
        from: String,
        /// End: RFC 3339, relative or now. Default: now.
        #[arg(long, allow_hyphen_values = true)]
        to: Option<String>,
    },
}

#[derive(Subcommand)]
enum UserAction {
    /// Add a user, or set an existing user's password and role. The password is read
    /// from standard input (typed without echo on a terminal); at least 12 characters.
    Add {
        #[arg(short, long, env = "CRYOWATCH_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        name: String,
        #[arg(long, value_parser = ["viewer", "operator", "admin"])]
        role: String,
    },
}

#[derive(Subcommand)]
enum AuditAction {
    /// Walk the chain and every sealed block of readings: exit 0 intact, 1 naming the
    /// first broken record.
    Verify {
        #[arg(short, long, env = "CRYOWATCH_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        #[arg(long)]
        json: bool,
        /// Also require this record (from an external copy of the head: SEQ:HASH).
        #[arg(long)]
        anchor: Option<String>,
    },
    /// List the trail (optionally one kind, e.g. alarm, notification, config).
    Log {
        #[arg(short, long, env = "CRYOWATCH_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        #[arg(long, allow_hyphen_values = true)]
        from: Option<String>,
        #[arg(long, allow_hyphen_values = true)]
        to: Option<String>,
        #[arg(long)]
        kind: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum OutFormat {
    Csv,
    Json,
}

/// How a command failed: bad input exits 2, anything else 1.
enum Failure {
    BadInput(String),
    Runtime(anyhow::Error),
    /// A check failed and said why already: exit 1 without another message.
    Reported,
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Runtime(e)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format == "json");
    match dispatch(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::BadInput(msg)) => {
            eprintln!("{msg}");
            ExitCode::from(2)
        }
        Err(Failure::Runtime(e)) => {
            eprintln!("cryowatch: {e:#}");
            ExitCode::from(1)
        }
        Err(Failure::Reported) => ExitCode::from(1),
    }
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    // Outside strings (user names, SMS texts, topics, server answers) reach the log;
    // their control characters are escaped so none can forge a line.
    let ansi = !json && std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(cryowatch::escape::LogWriter { ansi });
    if json {
        builder.json().with_current_span(false).init();
    } else {
        builder.with_ansi(ansi).init();
    }
}

fn load(path: &Path) -> Result<Config, Failure> {
    config::load(path).map_err(|e| Failure::BadInput(e.to_string()))
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Runtime(e.into()))
}

fn time_arg(text: Option<&str>, default: &str, now: i64) -> Result<i64, Failure> {
    timearg::parse(text.unwrap_or(default), now).map_err(|e| Failure::BadInput(e.to_string()))
}

/// Prints `value` as pretty JSON, or as the table `table` writes.
fn print_json_or<T: serde::Serialize>(
    json: bool,
    value: &T,
    table: impl FnOnce(&mut std::io::StdoutLock<'static>) -> std::io::Result<()>,
) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    let res = if json {
        serde_json::to_writer_pretty(&mut out, value)
            .map_err(std::io::Error::from)
            .and_then(|()| std::io::Write::write_all(&mut out, b"\n"))
    } else {
        table(&mut out)
    };
    res.map_err(|e| Failure::Runtime(e.into()))
}

/// `--by` as recorded; bad input when blank or too long.
fn checked_by(by: &str) -> Result<&str, Failure> {
    cryowatch::pipeline::control::checked_by(by).map_err(|e| Failure::BadInput(format!("--by: {e}")))
}

fn control(cfg: &Config, req: Request) -> Result<(), Failure> {
    match cryowatch::pipeline::control::submit(cfg, req) {
        Ok(text) => {
            println!("{text}");
            Ok(())
        }
        Err(ControlError::Refused(text)) => Err(Failure::BadInput(format!("cryowatch: {text}"))),
        Err(ControlError::Failed(text)) => Err(Failure::Runtime(anyhow::anyhow!(text))),
    }
}

fn user_add(config: &Path, name: &str, role: &str) -> Result<(), Failure> {
    use std::io::IsTerminal as _;
    let cfg = load(config)?;
    let role = cryowatch::config::Role::parse(role)
        .ok_or_else(|| Failure::BadInput(format!("--role: unknown role {role:?}")))?;
    let password = if std::io::stdin().is_terminal() {
        rpassword::prompt_password(format!("password for {name}: "))
    } else {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| line)
    }
    .map_err(|e| Failure::Runtime(anyhow::anyhow!("reading the password from standard input: {e}")))?;
    let password = password.trim_end_matches(['\r', '\n']);
    use cryowatch::store::users;
    let hash = match users::hash_password(name, password) {
        Ok(h) => h,
        Err(e @ (users::UserError::BadName(_) | users::UserError::ShortPassword)) => {
            return Err(Failure::BadInput(format!("cryowatch: {e}")));
        }
        Err(e) => return Err(Failure::Runtime(e.into())),
    };
    let mut store = Store::open(&cfg.store.path).map_err(|e| Failure::Runtime(e.into()))?;
    let actor = cryowatch::store::audit::local_actor();
    let new = store
        .transaction(|c| users::store_user(c, name, &hash, role, &actor, now_ms()))
        .map_err(|e| Failure::Runtime(e.into()))?;
    if new {
        println!("user {name} added with role {}", role.as_str());
    } else {
        println!(
            "user {name}: password and role ({}) set; their sessions ended",
            role.as_str()
        );
    }
    Ok(())
}

fn selftest(config: &Path, out: &Path) -> Result<(), Failure> {
    use cryowatch::report::{render, selftest};
    let kind = out.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    if !matches!(kind.as_deref(), Some("pdf" | "html")) {
        return Err(Failure::BadInput(format!(
            "--out {}: the file name must end in .pdf or .html",
            out.display()
        )));
    }
    let cfg = load(config)?;
    let by = cryowatch::store::audit::local_actor();
    let t = runtime()?.block_on(selftest::run(&cfg, config, now_ms(), &by, |what| {
        eprintln!("selftest: {what}")
    }));
    let doc = selftest::document(&t, &cfg.site.timezone);
    let bytes = if kind.as_deref() == Some("pdf") {
        render::render_pdf(&doc).map_err(|e| Failure::Runtime(e.into()))?
    } else {
        render::render_html(&doc).into_bytes()
    };
    std::fs::write(out, &bytes).map_err(|e| Failure::Runtime(anyhow::anyhow!("writing {}: {e}", out.display())))?;
    let failed: Vec<_> = t.checks.iter().filter(|c| !c.pass).collect();
    record_cli(
        &cfg,
        "selftest.run",
        &out.display().to_string(),
        serde_json::json!({
            "checks": t.checks.len(), "failed": failed.iter().map(|c| &c.id).collect::<Vec<_>>(),
            "sha256": cryowatch::store::audit::hex(&sha2::Sha256::digest(&bytes)),
        }),
    );
    for c in &t.checks {
        println!(
            "{} {} {}: {}",
            c.id,
            if c.pass { "PASS" } else { "FAIL" },
            c.what,
            c.observed
        );
    }
    println!("{}: {} checks, {} failed", out.display(), t.checks.len(), failed.len());
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Failure::Reported)
    }
}

fn report(config: &Path, asset: &str, from: &str, to: &str, out: &Path) -> Result<(), Failure> {
    use cryowatch::report::asset::{self, ReportError};
    let kind = out.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    if !matches!(kind.as_deref(), Some("pdf" | "html" | "csv")) {
        return Err(Failure::BadInput(format!(
            "--out {}: the file name must end in .pdf, .html or .csv",
            out.display()
        )));
    }
    let cfg = load(config)?;
    let now = now_ms();
    // A bare date is the site's midnight: the report's days are the site's days.
    let tz = &cfg.site.timezone;
    let bad = |e: timearg::BadTime| Failure::BadInput(e.to_string());
    let from = timearg::parse_in(from, now, tz).map_err(bad)?;
    let to = timearg::parse_in(to, now, tz).map_err(bad)?;
    if from >= to {
        return Err(Failure::BadInput("--from must be earlier than --to".into()));
    }
    let store = Store::open_read_only(&cfg.store.path).map_err(|e| Failure::Runtime(e.into()))?;
    let by = cryowatch::store::audit::local_actor();
    let progress = |what: &str| eprintln!("report: {what}");
    let req = asset::Request {
        asset,
        from,
        to,
        now,
        by: &by,
    };
    let r = match asset::gather(&cfg, &store, req, progress) {
        Ok(r) => r,
        Err(e @ ReportError::UnknownAsset(..)) => {
            return Err(Failure::BadInput(format!("{}: --asset: {e}", config.display())));
        }
        Err(e) => return Err(Failure::Runtime(e.into())),
    };
    eprintln!("report: writing {}", out.display());
    let bytes = match kind.as_deref() {
        Some("pdf") => {
            cryowatch::report::render::render_pdf(&asset::document(&r)).map_err(|e| Failure::Runtime(e.into()))?
        }
        Some("html") => cryowatch::report::render::render_html(&asset::document(&r)).into_bytes(),
        _ => {
            let mut buf = Vec::new();
            asset::write_csv(&r, &mut buf).map_err(|e| Failure::Runtime(e.into()))?;
            buf
        }
    };
    std::fs::write(out, &bytes).map_err(|e| Failure::Runtime(anyhow::anyhow!("writing {}: {e}", out.display())))?;
    record_cli(
        &cfg,
        "report.generated",
        asset,
        serde_json::json!({
            "from": from, "to": to, "file": out.display().to_string(),
            "sha256": cryowatch::store::audit::hex(&sha2::Sha256::digest(&bytes)),
            "audit_verified": r.audit.ok(), "audit_head": r.audit.head_seq,
        }),
    );
    println!(
        "{}: {} sensors, {} excursions, {} alarm tests; audit trail {}",
        out.display(),
        r.sensors.len(),
        r.excursions.iter().filter(|e| !e.test).count(),
        r.tests.len(),
        if r.audit.ok() { "verified" } else { "BROKEN" }
    );
    Ok(())
}

/// Records a command-line action in the audit trail (as the invoking user). A failure is
/// reported but does not undo what the command did.
fn record_cli(cfg: &Config, kind: &str, subject: &str, detail: serde_json::Value) {
    let res = Store::open(&cfg.store.path).and_then(|mut s| {
        s.transaction(|c| {
            cryowatch::store::audit::append(
                c,
                now_ms(),
                kind,
                &cryowatch::store::audit::local_actor(),
                subject,
                &detail,
            )
        })
    });
    if let Err(e) = res {
        eprintln!("cryowatch: could not record {kind} in the audit trail: {e}");
    }
}

fn audit(action: AuditAction) -> Result<(), Failure> {
    use cryowatch::store::audit::verify;
    let runtime_err = |e: cryowatch::store::StoreError| Failure::Runtime(e.into());
    match action {
        AuditAction::Verify { config, json, anchor } => {
            let anchor = match anchor.as_deref().map(verify::parse_anchor) {
                Some(Some(a)) => Some(a),
                Some(None) => return Err(Failure::BadInput("--anchor: expected SEQ:HASH (64 hex digits)".into())),
                None => None,
            };
            let cfg = load(&config)?;
            let store = Store::open_read_only(&cfg.store.path).map_err(runtime_err)?;
            let progress = verify::stderr_progress();
            let mut v = store.with_conn(|c| verify::verify(c, progress)).map_err(runtime_err)?;
            if let Some(a) = &anchor {
                v.check_anchor(&store, a).map_err(runtime_err)?;
            }
            let ok = v.ok();
            print_json_or(json, &v, |out| verify::write_text(&v, out))?;
            if let Some(p) = &v.problem {
                eprintln!(
                    "{}: audit trail broken at record {}: {}",
                    cfg.store.path.display(),
                    p.record,
                    p.what
                );
            }
            if ok { Ok(()) } else { Err(Failure::Reported) }
        }
        AuditAction::Log {
            config,
            from,
            to,
            kind,
            json,
        } => {
            let cfg = load(&config)?;
            let now = now_ms();
            let from = time_arg(from.as_deref(), "-24h", now)?;
            let to = time_arg(to.as_deref(), "now", now)?;
            let store = Store::open_read_only(&cfg.store.path).map_err(runtime_err)?;
            let mut rows = Vec::new();
            store
                .with_conn(|c| {
                    cryowatch::store::audit::list(c, from, to, kind.as_deref(), |r| {
                        rows.push(r);
                        true
                    })
                })
                .map_err(runtime_err)?;
            print_json_or(json, &rows, |out| {
                for r in &rows {
                    use cryowatch::escape::control;
                    writeln!(
                        out,
                        "{:>6} {} {:<22} {:<18} {} {}",
                        r.seq,
                        cryowatch::model::format_rfc3339(r.t),
                        r.kind,
                        control(&r.actor),
                        control(&r.subject),
                        control(&r.detail)
                    )?;
                }
                Ok(())
            })
        }
    }
}

fn influx(action: InfluxAction) -> Result<(), Failure> {
    let runtime_err = |e: cryowatch::store::StoreError| Failure::Runtime(e.into());
    let configured = |path: &Path| -> Result<(Config, cryowatch::config::InfluxConfig), Failure> {
        let cfg = load(path)?;
        match cfg.influx.clone() {
            Some(i) => Ok((cfg, i)),
            None => Err(Failure::BadInput(format!(
                "{}: no [influx] section: nothing is mirrored to InfluxDB",
                path.display()
            ))),
        }
    };
    match action {
        InfluxAction::Status { config, json } => {
            let (cfg, influx) = configured(&config)?;
            let store = Store::open_read_only(&cfg.store.path).map_err(runtime_err)?;
            let lag = store.with_conn(mirror::lag).map_err(runtime_err)?;
            let m = cryowatch::report::mirror::gather(&influx, lag, now_ms());
            print_json_or(json, &m, |out| cryowatch::report::mirror::write_text(&m, out))
        }
        InfluxAction::Quarantine { config, json } => {
            let (cfg, _) = configured(&config)?;
            let store = Store::open_read_only(&cfg.store.path).map_err(runtime_err)?;
            let rows = store
                .with_conn(cryowatch::store::mirror::quarantined)
                .map_err(runtime_err)?;
            print_json_or(json, &rows, |out| {
                for q in &rows {
                    writeln!(
                        out,
                        "#{} {} {} points of {} refused ({}){}",
                        q.id,
                        q.time,
                        q.points,
                        q.stream,
                        q.reason,
                        q.requeued
                            .as_ref()
                            .map(|t| format!(", requeued {t}"))
                            .unwrap_or_default()
                    )?;
                }
                Ok(())
            })
        }
        InfluxAction::Requeue { config } => {
            let (cfg, _) = configured(&config)?;
            let mut store = Store::open(&cfg.store.path).map_err(runtime_err)?;
            let n = store
                .transaction(|c| mirror::requeue(c, now_ms()))
                .map_err(runtime_err)?;
            record_cli(
                &cfg,
                "influx.requeued",
                "influx",
                serde_json::json!({ "readings": n.readings, "alarm_events": n.alarm_events }),
            );
            println!(
                "{} quarantined readings and {} alarm transitions (from the first quarantined on) queued for InfluxDB again",
                n.readings, n.alarm_events
            );
            Ok(())
        }
        InfluxAction::Backfill { config, from, to } => {
            let (cfg, _) = configured(&config)?;
            let now = now_ms();
            let from = time_arg(Some(&from), "", now)?;
            let to = time_arg(to.as_deref(), "now", now)?;
            if from > to {
                return Err(Failure::BadInput("--from is after --to".into()));
            }
            let mut store = Store::open(&cfg.store.path).map_err(runtime_err)?;
            let (queued, events) = mirror::backfill_range(&mut store, from, to).map_err(runtime_err)?;
            record_cli(
                &cfg,
                "influx.backfill",
                "influx",
                serde_json::json!({ "from": from, "to": to, "readings": queued, "alarm_events": events }),
            );
            println!(
                "{queued} readings from {} to {} queued for InfluxDB; {events} alarm transitions will be sent",
                cryowatch::model::format_rfc3339(from),
                cryowatch::model::format_rfc3339(to)
            );
            Ok(())
        }
    }
}

fn dispatch(command: Command) -> Result<(), Failure> {
    match command {
        Command::Run { config } => {
            let cfg = load(&config)?;
            runtime()?.block_on(cryowatch::daemon::run(cfg, config))?;
            Ok(())
        }
        Command::Check { config, explain } => {
            let cfg = load(&config)?;
            if explain {
                print!("{}", cryowatch::report::explain::explain(&cfg));
            }
            println!(
                "{}: configuration is valid ({} sensors, {} modbus devices)",
                config.display(),
                cfg.sensors.len(),
                cfg.devices.len()
            );
            Ok(())
        }
        Command::Status { config, json } => {
            let cfg = load(&config)?;
            // Said first: while the store cannot write, the daemon keeps it outside the store.
            if let Some(c) = cryowatch::store::outage::read_condition(&cfg.store.path) {
                eprintln!("{c}");
            }
            let store = Store::open_read_only(&cfg.store.path).map_err(|e| Failure::Runtime(e.into()))?;
            let rows = status::gather(&cfg, &store, now_ms()).map_err(|e| Failure::Runtime(e.into()))?;
            let conditions = status::conditions(&store, now_ms()).map_err(|e| Failure::Runtime(e.into()))?;
            print_json_or(json, &rows, |out| status::write_table(&rows, out))?;
            for c in &conditions {
                // Conditions quote outside answers (a mail server's refusal).
                eprintln!("{}", cryowatch::escape::control(c));
            }
            if let Some(influx) = &cfg.influx {
                let lag = store.with_conn(mirror::lag).map_err(|e| Failure::Runtime(e.into()))?;
                let m = cryowatch::report::mirror::gather(influx, lag, now_ms());
                if !json {
                    println!("{}", cryowatch::report::mirror::summary(&m));
                }
                for c in &m.conditions {
                    eprintln!("{}", cryowatch::escape::control(c));
                }
            }
            Ok(())
        }
        Command::History {
            config,
            sensor,
            from,
            to,
            format,
        } => {
            let cfg = load(&config)?;
            let now = now_ms();
            let from = time_arg(from.as_deref(), "-24h", now)?;
            let to = time_arg(to.as_deref(), "now", now)?;
            if from > to {
                return Err(Failure::BadInput("--from is later than --to".into()));
            }
            let store = Store::open_read_only(&cfg.store.path).map_err(|e| Failure::Runtime(e.into()))?;
            let format = match format {
                OutFormat::Csv => history::Format::Csv,
                OutFormat::Json => history::Format::Json,
            };
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            match history::export(&store, &sensor, from, to, format, &mut out) {
                Ok(_) => Ok(()),
                Err(e @ history::HistoryError::UnknownSensor(_)) => {
                    Err(Failure::BadInput(format!("{}: --sensor: {e}", config.display())))
                }
                Err(e) => Err(Failure::Runtime(e.into())),
            }
        }
        Command::Alarms { config, active, json } => {
            let cfg = load(&config)?;
            let store = Store::open_read_only(&cfg.store.path).map_err(|e| Failure::Runtime(e.into()))?;
            let rows = store
                .with_conn(|c| cryowatch::store::alarms::query_alarms(c, active, None))
                .map_err(|e| Failure::Runtime(e.into()))?;
            let lines = alarms::lines(&rows);
            print_json_or(json, &lines, |out| alarms::write_table(&lines, out))
        }
        Command::Ack {
            config,
            alarm_id,
            by,
            comment,
        } => {
            let by = checked_by(&by)?;
            cryowatch::pipeline::control::checked_text(&comment)
                .map_err(|e| Failure::BadInput(format!("--comment: {e}")))?;
            let cfg = load(&config)?;
            control(
                &cfg,
                Request::Ack {
                    alarm: alarm_id,
                    by,
                    comment: &comment,
                },
            )
        }
        Command::Shelve {
            config,
            sensor,
            duration,
            by,
            reason,
        } => {
            let by = checked_by(&by)?;
            cryowatch::pipeline::control::checked_text(&reason)
                .map_err(|e| Failure::BadInput(format!("--reason: {e}")))?;
            let cfg = load(&config)?;
            let duration =
                cryowatch::config::parse_duration(&duration).map_err(|e| Failure::BadInput(format!("--for: {e}")))?;
            control(
                &cfg,
                Request::Shelve {
                    sensor: &sensor,
                    duration,
                    by,
                    reason: &reason,
                },
            )
        }
        Command::TestPage { config, contact } => {
            let cfg = load(&config)?;
            match runtime()?.block_on(cryowatch::notify::testpage::run(&cfg, &contact)) {
                Ok(report) => {
                    print!("{report}");
                    Ok(())
                }
                Err(cryowatch::notify::testpage::TestPageError::BadInput(e)) => {
                    Err(Failure::BadInput(format!("{}: --contact: {e}", config.display())))
                }
                Err(e) => Err(Failure::Runtime(e.into())),
            }
        }
        Command::Influx { action } => influx(action),
        Command::Audit { action } => audit(action),
        Command::Standby { config } => {
            let cfg = load(&config)?;
            if cfg.standby.is_none() {
                return Err(Failure::BadInput(format!(
                    "{}: no [standby] section: give primary_topic (the primary's [heartbeat] mqtt_topic)",
                    config.display()
                )));
            }
            runtime()?.block_on(cryowatch::standby::run(cfg))?;
            Ok(())
        }
        Command::User {
            action: UserAction::Add { config, name, role },
        } => user_add(&config, &name, &role),
        Command::Selftest { config, out } => selftest(&config, &out),
        Command::TestAlarm { config, sensor, by } => {
            let cfg = load(&config)?;
            let by = by.unwrap_or_else(|| {
                cryowatch::store::audit::local_actor()
                    .trim_start_matches("cli:")
                    .to_string()
            });
            control(
                &cfg,
                Request::TestAlarm {
                    sensor: &sensor,
                    by: &by,
                },
            )
        }
        Command::Report {
            config,
            asset,
            from,
            to,
            out,
        } => report(&config, &asset, &from, &to, &out),
        Command::Demo { dir, duration } => {
            let duration = match duration {
                Some(d) => {
                    Some(cryowatch::config::parse_duration(&d).map_err(|e| Failure::BadInput(format!("--for: {e}")))?)
                }
                None => None,
            };
            runtime()?.block_on(cryowatch::demo::run(dir, duration))?;
            Ok(())
        }
    }
}
