//! Checks shared by the configuration targets: load a configuration file the way
//! `cryowatch check` and the daemon do, then check what the loader promises.
//!
//! - A refused file names at least one problem, and every problem is one line (the
//!   command line prints one line per problem).
//! - A loaded configuration is internally consistent (every index points into its
//!   list, ids are unique, Modbus scaling is usable): nothing downstream re-checks.
//! - Loading is deterministic, and validating the same raw form twice gives the same
//!   configuration.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use cryowatch::config::rules::Condition;
use cryowatch::config::{self, Config, SensorSource};

/// A directory of its own for the configuration file under test, created once per
/// process in the system temp dir (`TMPDIR`).
pub fn work_dir() -> &'static Path {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("cryowatch-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create a directory for the configuration file");
        dir
    })
}

/// Writes `text` as `cryowatch.toml` in [`work_dir`], loads it and checks the result.
/// Returns the configuration when it loaded.
pub fn load_and_check(text: &[u8]) -> Option<Config> {
    let dir = work_dir();
    let file = dir.join("cryowatch.toml");
    std::fs::write(&file, text).expect("write the configuration file");
    match config::load(&file) {
        Err(e) => {
            assert!(!e.problems.is_empty(), "refused without naming a problem");
            for p in &e.problems {
                let line = p.to_string();
                assert!(!line.contains(['\n', '\r']), "a problem spans several lines: {line:?}");
                assert!(
                    !p.message.trim().is_empty(),
                    "a problem without a message at {:?}",
                    p.path
                );
            }
            assert_eq!(e.to_string().lines().count(), e.problems.len(), "{e}");
            None
        }
        Ok(cfg) => {
            check_consistent(&cfg);
            let again = config::load(&file).expect("a configuration that loaded loads again");
            assert_eq!(format!("{cfg:?}"), format!("{again:?}"), "loading twice differs");
            let raw = config::load_raw(&file).expect("the raw form of a loaded configuration parses");
            let first = config::validate(&raw, dir).expect("the raw form validates");
            let second = config::validate(&raw, dir).expect("the raw form validates again");
            assert_eq!(
                format!("{first:?}"),
                format!("{second:?}"),
                "validate is not idempotent"
            );
            assert_eq!(format!("{cfg:?}"), format!("{first:?}"), "load and validate differ");
            Some(cfg)
        }
    }
}

fn unique<'a>(what: &str, ids: impl Iterator<Item = &'a str>) {
    let mut seen = HashSet::new();
    for id in ids {
        assert!(seen.insert(id), "duplicate {what} id {id:?} in a loaded configuration");
    }
}

/// What every loaded configuration holds.
pub fn check_consistent(cfg: &Config) {
    unique("sensor", cfg.sensors.iter().map(|s| s.id.as_str()));
    unique("asset", cfg.assets.iter().map(|a| a.id.as_str()));
    unique("device", cfg.devices.iter().map(|d| d.id.as_str()));
    unique("rule", cfg.rules.iter().map(|r| r.id.as_str()));
    unique("maintenance", cfg.maintenance.iter().map(|m| m.id.as_str()));
    for s in &cfg.sensors {
        assert!(
            s.asset < cfg.assets.len(),
            "sensor {} has asset index {}",
            s.id,
            s.asset
        );
        if let SensorSource::Modbus(p) = &s.source {
            assert!(
                p.device < cfg.devices.len(),
                "sensor {} has device index {}",
                s.id,
                p.device
            );
            assert!(
                p.scale.is_finite() && p.scale != 0.0 && p.offset.is_finite(),
                "sensor {}: scale {} offset {}",
                s.id,
                p.scale,
                p.offset
            );
        }
    }
    for r in &cfg.rules {
        assert!(
            r.sensor < cfg.sensors.len(),
            "rule {} has sensor index {}",
            r.id,
            r.sensor
        );
        if let Condition::All(children) | Condition::Any(children) = &r.condition {
            for &c in children {
                let child = cfg
                    .rules
                    .get(c)
                    .unwrap_or_else(|| panic!("rule {} combines rule index {c}", r.id));
                assert!(
                    !matches!(child.condition, Condition::All(_) | Condition::Any(_)),
                    "rule {} combines the all/any rule {}",
                    r.id,
                    child.id
                );
            }
        }
    }
    for m in &cfg.maintenance {
        for &s in &m.sensors {
            assert!(s < cfg.sensors.len(), "maintenance {} has sensor index {s}", m.id);
        }
    }
}
