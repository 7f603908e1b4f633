//! The control port: a line protocol over TCP to switch scenarios and read values.
//!
//! One command per line, one answer line per command:
//!
//! ```text
//! set <device|all> <scenario>   -> ok | err <reason>
//! get <device>                  -> {"device":"dewar-1","temp_c":-190.5,...}
//! list                          -> {"devices":[...],"scenarios":[...]}
//! help                          -> the commands, on one line
//! ```

use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::lab::{self, SharedLab};
use crate::scenario::Scenario;

/// Longest accepted command line, in bytes.
const MAX_LINE: u64 = 1024;

const HELP: &str = "commands: set <device|all> <scenario> | get <device> | list | help";

/// Execute one command line against the lab at `now` and return the answer line
/// (without the newline).
pub fn execute(lab: &SharedLab, line: &str, now: Instant) -> String {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["set", device, scenario] => match scenario.parse::<Scenario>() {
            Ok(scenario) => match lab.lock().set(device, scenario, now) {
                Ok(()) => {
                    tracing::info!(device, %scenario, "scenario switched");
                    "ok".to_string()
                }
                Err(reason) => format!("err {reason}"),
            },
            Err(reason) => format!("err {reason}"),
        },
        ["get", device] => match lab::find(device) {
            Ok(idx) => lab.lock().json(idx, now).to_string(),
            Err(reason) => format!("err {reason}"),
        },
        ["list"] => lab.lock().list().to_string(),
        ["help"] => HELP.to_string(),
        [] => "err empty command; ".to_string() + HELP,
        _ => format!("err unknown command {:?}; {HELP}", line.trim()),
    }
}

/// Accept control connections until the task is dropped.
pub(crate) async fn serve(listener: TcpListener, lab: SharedLab) -> anyhow::Result<()> {
    // Connections live in this set, so they end when the server task is dropped.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let lab = lab.clone();
                    connections.spawn(async move {
                        if let Err(err) = connection(stream, &lab).await {
                            tracing::debug!(%peer, "control connection ended: {err}");
                        }
                    });
                }
                Err(err) => {
                    tracing::warn!("control port accept failed: {err}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn connection(stream: TcpStream, lab: &SharedLab) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut line = String::new();
    loop {
        line.clear();
        let n = (&mut reader).take(MAX_LINE).read_line(&mut line).await?;
        if n == 0 {
            return Ok(());
        }
        if !line.ends_with('\n') && n as u64 >= MAX_LINE {
            write.write_all(b"err line too long\n").await?;
            return Ok(());
        }
        if line.trim().is_empty() {
            continue;
        }
        let mut answer = execute(lab, &line, Instant::now());
        answer.push('\n');
        write.write_all(answer.as_bytes()).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn commands() {
        let t0 = Instant::now();
        let lab = SharedLab::new(false, t0);
        let get = |dev: &str, at: Instant| -> Value {
            serde_json::from_str(&execute(&lab, &format!("get {dev}"), at)).unwrap()
        };

        let v = get("dewar-1", t0);
        assert_eq!(v["temp_c"], -190.5);
        assert_eq!(v["level_pct"], 85.3);
        assert_eq!(v["lid"], 0);
        assert_eq!(v["scenario"], "steady");

        assert_eq!(execute(&lab, "set dewar-1 warmup:2.0", t0), "ok");
        assert_eq!(get("dewar-1", t0 + Duration::from_secs(30))["temp_c"], -189.5);
        assert_eq!(execute(&lab, "  set  freezer-7   probe-fault \r\n", t0), "ok");
        assert_eq!(get("freezer-7", t0)["temp_c"], Value::Null);
        assert_eq!(get("freezer-7", t0)["probe_fault"], 1);

        assert!(execute(&lab, "set ups-1 lid-open", t0).starts_with("err scenario lid-open does not apply"));
        assert!(execute(&lab, "set dewar-9 steady", t0).starts_with("err unknown device"));
        assert!(execute(&lab, "set dewar-1 boil", t0).starts_with("err unknown scenario"));
        assert!(execute(&lab, "get", t0).starts_with("err unknown command"));
        assert!(execute(&lab, "frobnicate", t0).starts_with("err unknown command"));

        let list: Value = serde_json::from_str(&execute(&lab, "list", t0)).unwrap();
        assert_eq!(list["devices"][0]["name"], "dewar-1");
        assert_eq!(list["devices"][0]["scenario"], "warmup:2.0");
        assert_eq!(list["devices"][3]["modbus"], false);
        assert_eq!(list["scenarios"][0], "steady");
    }
}
