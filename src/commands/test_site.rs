//! A site for the commands' tests: a configuration in a temporary directory, and its
//! store holding two readings of its one sensor from the last hour.

use std::path::PathBuf;

use crate::config::Config;
use crate::model::{Quality, now_ms};
use crate::store::Store;

/// The one sensor, of asset `dewar-1`.
pub const SENSOR: &str = "dewar-1.temp";

/// An `[influx]` section for [`site`] (nothing listens at its address; the commands that
/// read the mirror's state never connect).
pub const INFLUX: &str = "[influx]\nurl = \"http://127.0.0.1:1\"\norg = \"o\"\nbucket = \"b\"\ntoken = \"t\"\n";

pub struct Site {
    /// The configuration file.
    pub path: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Site {
    pub fn config(&self) -> Config {
        crate::config::load(&self.path).expect("valid config")
    }
}

/// A site whose configuration ends with `extra` (whole sections).
pub fn site(extra: &str) -> Site {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("cryowatch.toml");
    let text = format!(
        r#"[site]
name = "commands test"
timezone = "UTC"
[store]
path = "{store}/cryowatch.db"
[[modbus.device]]
id = "plc"
transport = "tcp"
address = "127.0.0.1:1"
[[asset]]
id = "dewar-1"
kind = "ln2_dewar"
[[sensor]]
id = "{SENSOR}"
asset = "dewar-1"
quantity = "temperature"
unit = "degC"
[sensor.modbus]
device = "plc"
register = "input"
address = 0
type = "f32"
{extra}"#,
        store = dir.path().display()
    );
    std::fs::write(&path, text).expect("write config");
    let site = Site { path, dir };
    let mut store = Store::open(&site.config().store.path).expect("store");
    let ids = store
        .register_sensors(&[(SENSOR.into(), "degC".into())])
        .expect("register");
    let now = now_ms();
    store
        .insert(&[
            (ids[0], now - 3_600_000, Some(-190.5), Quality::Good),
            (ids[0], now - 60_000, None, Quality::CommError),
        ])
        .expect("insert");
    site
}
