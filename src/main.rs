//! The `cryowatch` command line: parse the arguments, call the command's function in
//! `cryowatch::commands`, and turn how it failed into the exit code.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use cryowatch::commands::{self, CommandError};
use cryowatch::report::history;

use cryowatch::commands::DEFAULT_CONFIG;
use cryowatch::commands::quality_cli::{AlarmCheckAction, CalibrationAction, ReviewAction};

#[derive(Parser)]
#[command(
    name = "cryowatch",
    version,
    about = "Monitoring, alarming and records for cryostorage"
)]
struct Cli {
    /// Log lines as text (colour only on a terminal; under systemd with syslog priority
    /// prefixes for journald and no time of their own) or as one JSON object per line
    /// (for a log shipper).
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
        /// Also print what will be polled and paged, and the defaults in effect.
        #[arg(long)]
        explain: bool,
        /// Also report every file this user (the service's) could not read. Default
        /// when run as root: the user cryowatch, if it exists.
        #[arg(long)]
        as_user: Option<String>,
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
        /// Only open deviations: alarms that cleared and wait for a signed corrective
        /// action (`cryowatch close`).
        #[arg(long, conflicts_with = "active")]
        open_deviations: bool,
        #[arg(long)]
        json: bool,
    },
    /// Close an excursion that has cleared with a corrective action, signed with your
    /// dashboard password (read from standard input; no echo on a terminal).
    Close {
        #[arg(short, long, env = "CRYOWATCH_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The alarm id (see `cryowatch alarms --open-deviations`).
        alarm_id: i64,
        /// The dashboard user who signs (`cryowatch user add ... --name`).
        #[arg(long)]
        by: String,
        /// A reason code from the configuration's [[reason]] list.
        #[arg(long)]
        reason: String,
        /// What was done about it.
        #[arg(long)]
        action: String,
        /// Whether stored product was affected.
        #[arg(long, default_value = "none", value_parser = ["none", "assessed", "quarantined"])]
        impact: String,
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// The calibration register: record a probe's calibration (signed with your
    /// dashboard password, read from standard input), or list every probe's status.
    Calibration {
        #[command(subcommand)]
        action: CalibrationAction,
    },
    /// Physical alarm checks against a reference thermometer: start one (the sensor's
    /// paging is held), finish it with the reference's reading (signed with your
    /// dashboard password, read from standard input), or list them.
    AlarmCheck {
        #[command(subcommand)]
        action: AlarmCheckAction,
    },
    /// Periodic reviews (`[[review]]`): list them, or sign one with your dashboard
    /// password (read from standard input; no echo on a terminal).
    Review {
        #[command(subcommand)]
        action: ReviewAction,
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
        /// Sign the acknowledgement: --by names a dashboard user, whose password is read
        /// from standard input (no echo on a terminal).
        #[arg(long)]
        sign: bool,
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
    /// Who is on call in each schedule now (or at --at), and who is next and from when.
    Oncall {
        #[arg(short, long, env = "CRYOWATCH_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The time asked about: RFC 3339, relative (+7d), a date (midnight in the
        /// site's time zone) or now. Default: now.
        #[arg(long, allow_hyphen_values = true)]
        at: Option<String>,
        #[arg(long)]
        json: bool,
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
        /// The person generating the report, printed on it (default: the system user,
        /// marked "(system account)").
        #[arg(long)]
        by: Option<String>,
    },
    /// The alarm system's own performance per month and asset (excursions, time to
    /// acknowledge, escalations, nuisance alarms, tests), as PDF, HTML or CSV (by --out's
    /// extension); the CSV lists the records each figure counts.
    Quality {
        #[arg(short, long, env = "CRYOWATCH_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Start: RFC 3339, relative (-90d), a date (the site's midnight) or now.
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
        /// The person's printed name, shown with each of their electronic signatures.
        #[arg(long = "name", value_name = "PRINTED NAME")]
        printed_name: Option<String>,
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    cryowatch::logging::init(if cli.log_format == "json" {
        cryowatch::logging::Format::Json
    } else {
        cryowatch::logging::Format::Text
    });
    // Bad input exits 2, any other failure 1; a failed check has said why already.
    match dispatch(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(CommandError::BadInput(msg)) => {
            eprintln!("{msg}");
            ExitCode::from(2)
        }
        Err(CommandError::Reported) => ExitCode::from(1),
        Err(e) => {
            eprintln!("cryowatch: {:#}", anyhow::Error::new(e));
            ExitCode::from(1)
        }
    }
}

fn dispatch(command: Command) -> Result<(), CommandError> {
    use commands::{audit, control, documents, influx, oncall, quality, read, serve, user};
    match command {
        Command::Run { config } => serve::run(&config),
        Command::Check {
            config,
            explain,
            as_user,
        } => read::check(&config, explain, as_user.as_deref()),
        Command::Status { config, json } => read::status(&config, json),
        Command::History {
            config,
            sensor,
            from,
            to,
            format,
        } => {
            let format = match format {
                OutFormat::Csv => history::Format::Csv,
                OutFormat::Json => history::Format::Json,
            };
            read::history(&config, &sensor, from.as_deref(), to.as_deref(), format)
        }
        Command::Alarms {
            config,
            active,
            open_deviations,
            json,
        } => read::alarms(&config, active, open_deviations, json),
        Command::Close {
            config,
            alarm_id,
            by,
            reason,
            action,
            impact,
            comment,
        } => quality::close(
            &config,
            alarm_id,
            &by,
            &quality::CloseArgs {
                reason: &reason,
                action: &action,
                impact: &impact,
                comment: &comment,
            },
        ),
        Command::AlarmCheck { action } => action.run(),
        Command::Calibration { action } => action.run(),
        Command::Review { action } => action.run(),
        Command::Ack {
            config,
            alarm_id,
            by,
            comment,
            sign,
        } => control::ack(&config, alarm_id, &by, &comment, sign),
        Command::Shelve {
            config,
            sensor,
            duration,
            by,
            reason,
        } => control::shelve(&config, &sensor, &duration, &by, &reason),
        Command::TestPage { config, contact } => control::test_page(&config, &contact),
        Command::TestAlarm { config, sensor, by } => control::test_alarm(&config, &sensor, by.as_deref()),
        Command::Oncall { config, at, json } => oncall::oncall(&config, at.as_deref(), json),
        Command::Standby { config } => serve::standby(&config),
        Command::User {
            action:
                UserAction::Add {
                    config,
                    name,
                    role,
                    printed_name,
                },
        } => user::add(&config, &name, &role, printed_name.as_deref()),
        Command::Selftest { config, out } => documents::selftest(&config, &out),
        Command::Report {
            config,
            asset,
            from,
            to,
            out,
            by,
        } => documents::report(&config, &asset, &from, &to, &out, by.as_deref()),
        Command::Quality { config, from, to, out } => commands::indicators::quality(&config, &from, &to, &out),
        Command::Influx { action } => match action {
            InfluxAction::Status { config, json } => influx::status(&config, json),
            InfluxAction::Quarantine { config, json } => influx::quarantine(&config, json),
            InfluxAction::Requeue { config } => influx::requeue(&config),
            InfluxAction::Backfill { config, from, to } => influx::backfill(&config, &from, to.as_deref()),
        },
        Command::Audit { action } => match action {
            AuditAction::Verify { config, json, anchor } => audit::verify(&config, json, anchor.as_deref()),
            AuditAction::Log {
                config,
                from,
                to,
                kind,
                json,
            } => audit::log(&config, from.as_deref(), to.as_deref(), kind.as_deref(), json),
        },
        Command::Demo { dir, duration } => serve::demo(dir, duration.as_deref()),
    }
}
