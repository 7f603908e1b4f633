//! The commands that read and print: `check` (the configuration), `status` (every sensor
//! now), `history` (one sensor's readings) and `alarms`.

use std::path::Path;

use super::{CommandError, load, load_for_reading, print_json_or, time_arg};
use crate::config::access::Account;
use crate::config::{ConfigError, Problem};
use crate::model::now_ms;
use crate::report::{alarms, history, status};
use crate::store::Store;

/// `check`: validates the configuration at `config`; with `explain`, also prints what
/// will be polled and paged. Also refused: a file the service user could not open
/// (`as_user`, or `cryowatch` when run as root and that user exists), and a TLS peer
/// nothing could vouch for because the system trust store is empty.
pub fn check(config: &Path, explain: bool, as_user: Option<&str>) -> Result<(), CommandError> {
    let cfg = load(config)?;
    let mut problems = Vec::new();
    let account = match as_user {
        Some(name) => Some(
            Account::lookup(name)
                .map_err(CommandError::Failed)?
                .ok_or_else(|| CommandError::BadInput(format!("--as-user: no user {name:?} on this system")))?,
        ),
        None if nix::unistd::geteuid().is_root() => Account::lookup("cryowatch").ok().flatten(),
        None => None,
    };
    if let Some(account) = &account {
        let raw = crate::config::load_raw(config).map_err(|e| CommandError::BadInput(e.to_string()))?;
        problems.extend(crate::config::access::unreadable(config, &raw, &cfg, account));
    }
    let (errors, notes) = crate::tls::empty_store_findings(&crate::tls::peers(&cfg), crate::tls::system_roots());
    problems.extend(errors.into_iter().map(|(path, message)| Problem { path, message }));
    if !problems.is_empty() {
        return Err(CommandError::BadInput(
            ConfigError {
                file: config.to_path_buf(),
                problems,
            }
            .to_string(),
        ));
    }
    if explain {
        print!("{}", crate::report::explain::explain(&cfg));
    }
    for n in notes {
        println!("{}: {n}", config.display());
    }
    println!(
        "{}: configuration is valid ({} sensors, {} modbus devices{}{})",
        config.display(),
        cfg.sensors.len(),
        cfg.devices.len(),
        match cfg.serial_devices.len() {
            0 => String::new(),
            n => format!(", {n} serial devices"),
        },
        account.map_or(String::new(), |a| format!(", every file readable by user {}", a.name))
    );
    Ok(())
}

/// `status`: the current value and state of every sensor, then the conditions that need
/// a person (on standard error) and the InfluxDB mirror's lag.
pub fn status(config: &Path, json: bool) -> Result<(), CommandError> {
    let cfg = load_for_reading(config)?;
    // Said first: while the store cannot write, the daemon keeps it outside the store.
    if let Some(c) = crate::store::outage::read_condition(&cfg.store.path) {
        eprintln!("{c}");
    }
    let store = Store::open_read_only(&cfg.store.path)?;
    let rows = status::gather(&cfg, &store, now_ms())?;
    let conditions = status::conditions(&cfg, &store, now_ms())?;
    print_json_or(json, &rows, |out| status::write_table(&rows, out))?;
    for c in &conditions {
        // Conditions quote outside answers (a mail server's refusal).
        eprintln!("{}", crate::escape::control(c));
    }
    if let Some(influx) = &cfg.influx {
        let lag = store.mirror_lag()?;
        let m = crate::report::mirror::gather(influx, lag, now_ms());
        if !json {
            println!("{}", crate::report::mirror::summary(&m));
        }
        for c in &m.conditions {
            eprintln!("{}", crate::escape::control(c));
        }
    }
    Ok(())
}

/// `history`: the readings of `sensor` from `from` (default 24 hours ago) to `to`
/// (default now), as CSV or JSON on standard output.
pub fn history(
    config: &Path,
    sensor: &str,
    from: Option<&str>,
    to: Option<&str>,
    format: history::Format,
) -> Result<(), CommandError> {
    let cfg = load_for_reading(config)?;
    let now = now_ms();
    let from = time_arg(from, "-24h", now)?;
    let to = time_arg(to, "now", now)?;
    if from > to {
        return Err(CommandError::BadInput("--from is later than --to".into()));
    }
    let store = Store::open_read_only(&cfg.store.path)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match history::export(&store, sensor, from, to, format, &mut out) {
        Ok(_) => Ok(()),
        Err(e @ history::HistoryError::UnknownSensor(_)) => {
            Err(CommandError::BadInput(format!("{}: --sensor: {e}", config.display())))
        }
        Err(e) => Err(CommandError::History(e)),
    }
}

/// `alarms`: alarms newest first, only the open ones with `active`.
pub fn alarms(config: &Path, active: bool, open_deviations: bool, json: bool) -> Result<(), CommandError> {
    let cfg = load_for_reading(config)?;
    let store = Store::open_read_only(&cfg.store.path)?;
    let rows = if open_deviations {
        store.open_deviations()?
    } else {
        store.alarms(active)?
    };
    let lines = alarms::lines(&rows, &cfg);
    if !json {
        let mut out = std::io::stdout().lock();
        return Ok(alarms::write_table(&lines, &mut out)?);
    }
    let mut signers = store.ack_signers()?;
    let listed: Vec<Listed> = lines
        .into_iter()
        .map(|line| {
            let signer = signers.remove(&line.id);
            Listed {
                line,
                ack_signed: signer.is_some(),
                ack_signed_by: signer,
            }
        })
        .collect();
    print_json_or(true, &listed, |_| Ok(()))
}

/// One alarm of `alarms --json`: the listed line, and whether its acknowledgement is an
/// electronic signature, by whom.
#[derive(serde::Serialize)]
struct Listed<'a> {
    #[serde(flatten)]
    line: alarms::AlarmLine<'a>,
    ack_signed: bool,
    ack_signed_by: Option<crate::store::quality::Signer>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::test_site::{INFLUX, SENSOR, site};

    #[test]
    fn check_passes_a_valid_configuration_and_refuses_a_broken_one() {
        let site = site("");
        check(&site.path, false, None).expect("valid");
        check(&site.path, true, None).expect("valid, explained");
        std::fs::write(&site.path, "[site]\nname = \"no store\"\n").expect("break the config");
        assert!(matches!(check(&site.path, false, None), Err(CommandError::BadInput(_))));
    }

    #[test]
    fn status_reads_the_store_with_and_without_the_mirror() {
        status(&site("").path, false).expect("status");
        let mirrored = site(INFLUX);
        status(&mirrored.path, false).expect("status with the mirror");
        status(&mirrored.path, true).expect("status as JSON");
    }

    #[test]
    fn history_exports_a_known_sensor_and_names_an_unknown_one() {
        let site = site("");
        history(&site.path, SENSOR, None, None, history::Format::Csv).expect("CSV");
        history(&site.path, SENSOR, Some("-2h"), Some("now"), history::Format::Json).expect("JSON");
        match history(&site.path, "dewar-9.temp", None, None, history::Format::Csv) {
            Err(CommandError::BadInput(m)) => assert!(
                m.starts_with(&format!(
                    "{}: --sensor: unknown sensor \"dewar-9.temp\"",
                    site.path.display()
                )),
                "{m}"
            ),
            other => panic!("expected bad input, got {other:?}"),
        }
        match history(&site.path, SENSOR, Some("now"), Some("-1h"), history::Format::Csv) {
            Err(CommandError::BadInput(m)) => assert_eq!(m, "--from is later than --to"),
            other => panic!("expected bad input, got {other:?}"),
        }
        assert!(matches!(
            history(&site.path, SENSOR, Some("soon"), None, history::Format::Csv),
            Err(CommandError::BadInput(_))
        ));
    }

    #[test]
    fn alarms_lists_all_or_only_the_open_ones() {
        let site = site("");
        alarms(&site.path, false, false, false).expect("all");
        alarms(&site.path, true, false, true).expect("open, as JSON");
        alarms(&site.path, false, true, true).expect("open deviations, as JSON");
    }
}
