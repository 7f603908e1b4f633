//! The commands that keep running until stopped: `run` (the daemon), `standby` and `demo`.

use std::path::{Path, PathBuf};

use super::{CommandError, load, runtime};

/// `run`: the daemon in the foreground, with the configuration at `config`.
pub fn run(config: &Path) -> Result<(), CommandError> {
    let cfg = load(config)?;
    runtime()?.block_on(crate::daemon::run(cfg, config.to_path_buf()))?;
    Ok(())
}

/// `standby`: watches the primary's heartbeat and takes over while it is silent; bad
/// input when the configuration has no `[standby]` section.
pub fn standby(config: &Path) -> Result<(), CommandError> {
    let cfg = load(config)?;
    if cfg.standby.is_none() {
        return Err(CommandError::BadInput(format!(
            "{}: no [standby] section: give primary_topic (the primary's [heartbeat] mqtt_topic)",
            config.display()
        )));
    }
    runtime()?.block_on(crate::standby::run(cfg))?;
    Ok(())
}

/// `demo`: the simulators and the daemon in `dir` (default: a new temporary directory),
/// for `duration` (e.g. `30s`; default: until Ctrl-C).
pub fn demo(dir: Option<PathBuf>, duration: Option<&str>) -> Result<(), CommandError> {
    let duration = match duration {
        Some(d) => Some(crate::config::parse_duration(d).map_err(|e| CommandError::BadInput(format!("--for: {e}")))?),
        None => None,
    };
    runtime()?.block_on(crate::demo::run(dir, duration))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::test_site::site;

    #[test]
    fn run_refuses_a_broken_configuration_before_starting() {
        let site = site("");
        std::fs::write(&site.path, "[site]\nname = \"no store\"\n").expect("break the config");
        assert!(matches!(run(&site.path), Err(CommandError::BadInput(_))));
    }

    #[test]
    fn standby_needs_its_section() {
        let site = site("");
        match standby(&site.path) {
            Err(CommandError::BadInput(m)) => assert_eq!(
                m,
                format!(
                    "{}: no [standby] section: give primary_topic (the primary's [heartbeat] mqtt_topic)",
                    site.path.display()
                )
            ),
            other => panic!("expected bad input, got {other:?}"),
        }
    }

    #[test]
    fn demo_refuses_a_bad_duration_before_starting() {
        let site = site("");
        match demo(Some(site.dir.path().join("demo")), Some("a while")) {
            Err(CommandError::BadInput(m)) => assert!(m.starts_with("--for: "), "{m}"),
            other => panic!("expected bad input, got {other:?}"),
        }
    }
}
