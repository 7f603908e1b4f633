//! The API lab: cryosim's dewar read over Modbus by a daemon that serves the API, with
//! one bearer token per role and a critical rule the simulator's dewar can trip.

/// Bearer tokens of the three roles.
pub const VIEWER: &str = "viewer-token-0123456789";
pub const OPERATOR: &str = "operator-token-0123456789";
pub const ADMIN: &str = "admin-token-0123456789abc";

/// The lab's configuration for `Site::new` (`{dir}` stays for it to fill): site `name`,
/// the API on `port`, cryosim's Modbus server at `modbus`.
pub fn config(name: &str, port: u16, modbus: std::net::SocketAddr) -> String {
    format!(
        r#"[site]
name = "{name}"
timezone = "UTC"
[store]
path = "{{dir}}/cryowatch.db"
[api]
listen = "127.0.0.1:{port}"
[[api.token]]
id = "wall"
role = "viewer"
token = "{VIEWER}"
[[api.token]]
id = "ops"
role = "operator"
token = "{OPERATOR}"
[[api.token]]
id = "root"
role = "admin"
token = "{ADMIN}"
[[modbus.device]]
id = "ctrl"
transport = "tcp"
address = "{modbus}"
unit = 1
poll_interval = "250ms"
timeout = "500ms"
[[asset]]
id = "dewar-1"
name = "Dewar 1"
kind = "ln2_dewar"
[[sensor]]
id = "dewar-1.temp"
asset = "dewar-1"
quantity = "temperature"
unit = "degC"
stale_after = "3s"
[sensor.modbus]
device = "ctrl"
register = "input"
address = 0
type = "f32"
[[rule]]
id = "dewar-warm"
sensor = "dewar-1.temp"
kind = "high"
threshold = -189.0
hysteresis = 0.5
severity = "critical"
"#
    )
}
