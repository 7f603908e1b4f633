//! The command line of the quality record's registers, each action run by its command:
//! `alarm-check` (start, finish, list), `calibration` (record, list) and `review` (list,
//! sign, report). `main.rs` nests them under their subcommands.

use std::path::PathBuf;

use clap::Subcommand;

use super::{CommandError, DEFAULT_CONFIG, alarm_check, calibration, review};

#[derive(Subcommand)]
pub enum AlarmCheckAction {
    /// Start a check of a sensor: its alarms are raised and stored, and paged to nobody
    /// until the check is finished or `[alarm_check] max_duration` has passed.
    Start {
        #[arg(short, long, env = "CRYOWATCH_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        #[arg(long)]
        sensor: String,
        /// Who does the check.
        #[arg(long)]
        by: String,
        /// Recorded with the check: nobody is to be paged.
        #[arg(long)]
        silent: bool,
    },
    /// Finish the running check of a sensor with the reference thermometer's reading
    /// at the trigger; exits 1 when the check failed.
    Finish {
        #[arg(short, long, env = "CRYOWATCH_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        #[arg(long)]
        sensor: String,
        /// The reference thermometer's reading, in the sensor's unit.
        #[arg(long, allow_hyphen_values = true)]
        reference: f64,
        /// The dashboard user who records and signs it.
        #[arg(long)]
        by: String,
    },
    /// Every alarm check: state, reference, difference.
    List {
        #[arg(short, long, env = "CRYOWATCH_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum CalibrationAction {
    /// Record a calibration certificate of a probe.
    Record {
        #[arg(short, long, env = "CRYOWATCH_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        #[arg(long)]
        sensor: String,
        /// The certificate's reference.
        #[arg(long)]
        certificate: String,
        /// The date of the calibration (2026-11-30).
        #[arg(long)]
        calibrated: String,
        /// The date the next calibration is due.
        #[arg(long)]
        due: String,
        /// The probe's error found before adjustment, in its unit.
        #[arg(long, allow_hyphen_values = true)]
        as_found: Option<f64>,
        /// The probe's error left after adjustment, in its unit.
        #[arg(long, allow_hyphen_values = true)]
        as_left: Option<f64>,
        /// The reference instrument it was compared against.
        #[arg(long, default_value = "")]
        reference: String,
        /// The offset the certificate asks for (set it as the sensor's `offset`).
        #[arg(long, allow_hyphen_values = true)]
        offset: Option<f64>,
        /// The dashboard user who records and signs it.
        #[arg(long)]
        by: String,
    },
    /// Every watched probe: certificate, calibrated, due, days left, status.
    List {
        #[arg(short, long, env = "CRYOWATCH_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum ReviewAction {
    /// Every period's review, newest first: asset, report hash, status, signatures.
    List {
        #[arg(short, long, env = "CRYOWATCH_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Only this asset.
        #[arg(long)]
        asset: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Sign the review of one asset for one period.
    Sign {
        #[arg(short, long, env = "CRYOWATCH_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        #[arg(long)]
        asset: String,
        /// The period as `review list` names it: 2026-11, 2026-Q4 or 2026-W48.
        #[arg(long)]
        period: String,
        /// The version you read (`review list`); refused when a newer one exists.
        #[arg(long)]
        version: Option<i64>,
        /// The dashboard user who signs (`cryowatch user add ... --name`).
        #[arg(long)]
        by: String,
        #[arg(long, value_parser = ["reviewed", "approved"])]
        meaning: String,
    },
    /// Write the report of a review exactly as it was generated (PDF).
    Report {
        #[arg(short, long, env = "CRYOWATCH_CONFIG", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        #[arg(long)]
        asset: String,
        #[arg(long)]
        period: String,
        #[arg(long)]
        out: PathBuf,
    },
}

impl AlarmCheckAction {
    pub fn run(self) -> Result<(), CommandError> {
        match self {
            Self::Start {
                config,
                sensor,
                by,
                silent,
            } => alarm_check::start(&config, &sensor, &by, silent),
            Self::Finish {
                config,
                sensor,
                reference,
                by,
            } => alarm_check::finish(&config, &sensor, reference, &by),
            Self::List { config, json } => alarm_check::list(&config, json),
        }
    }
}

impl CalibrationAction {
    pub fn run(self) -> Result<(), CommandError> {
        match self {
            Self::Record {
                config,
                sensor,
                certificate,
                calibrated,
                due,
                as_found,
                as_left,
                reference,
                offset,
                by,
            } => calibration::record(
                &config,
                &by,
                &calibration::RecordArgs {
                    sensor: &sensor,
                    certificate: &certificate,
                    calibrated: &calibrated,
                    due: &due,
                    as_found,
                    as_left,
                    reference: &reference,
                    offset,
                },
            ),
            Self::List { config, json } => calibration::list(&config, json),
        }
    }
}

impl ReviewAction {
    pub fn run(self) -> Result<(), CommandError> {
        match self {
            Self::List { config, asset, json } => review::list(&config, asset.as_deref(), json),
            Self::Sign {
                config,
                asset,
                period,
                version,
                by,
                meaning,
            } => review::sign(&config, &asset, &period, version, &by, &meaning),
            Self::Report {
                config,
                asset,
                period,
                out,
            } => review::report(&config, &asset, &period, &out),
        }
    }
}
