//! A small upsd client over one TCP connection: connect, optional `USERNAME` /
//! `PASSWORD`, `LIST VAR`. Every request has its own deadline; a request that fails on
//! the wire leaves the connection unusable and the caller drops it.

use std::collections::HashMap;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::proto::{self, Garbage, ListStep, ListVar, NutErr};

/// A reply line longer than this is garbage, not a very long value.
const MAX_LINE: usize = 8192;

/// Why a request to upsd gave no variables.
#[derive(Debug, thiserror::Error)]
pub enum UpsError {
    #[error("cannot resolve {addr}: {why}; check `nut` in this [[ups]]")]
    Resolve { addr: String, why: String },
    #[error("cannot connect to upsd at {addr}: {source}; check that upsd runs and LISTENs there (upsd.conf)")]
    Connect { addr: String, source: std::io::Error },
    #[error("no answer from upsd at {addr} to {command} within {timeout:?}")]
    Timeout {
        addr: String,
        command: &'static str,
        timeout: Duration,
    },
    #[error("upsd at {addr} closed the connection")]
    Closed { addr: String },
    #[error("talking to upsd at {addr} failed: {source}")]
    Io { addr: String, source: std::io::Error },
    #[error("{source} from {addr}")]
    Garbage { addr: String, source: Garbage },
    #[error("{}", explain(.addr, .ups, .err))]
    Refused { addr: String, ups: String, err: NutErr },
    #[error(
        "the driver of UPS {ups:?} has not given upsd at {addr} any data yet (ups.status WAIT); drivers usually do within seconds of starting, else check the driver's log"
    )]
    Waiting { addr: String, ups: String },
    #[error(
        "upsd at {addr} refused {command} ({err}); check `username` / `password` in this [[ups]] against upsd.users"
    )]
    Login {
        addr: String,
        command: &'static str,
        err: NutErr,
    },
}

impl UpsError {
    /// Whether the connection can still carry the next request. An `ERR` answer to
    /// `LIST VAR` (driver gone, stale data, unknown UPS) leaves it in step.
    pub fn keeps_connection(&self) -> bool {
        matches!(self, UpsError::Refused { .. } | UpsError::Waiting { .. })
    }
}

fn explain(addr: &str, ups: &str, err: &NutErr) -> String {
    match err {
        NutErr::UnknownUps => format!(
            "upsd at {addr} knows no UPS named {ups:?} ({err}); set `name` in this [[ups]] to one that `upsc -l {addr}` lists"
        ),
        NutErr::DriverNotConnected => format!(
            "upsd at {addr} has lost the driver of UPS {ups:?} ({err}); start the NUT driver (upsdrvctl start) and check its log and the UPS cable"
        ),
        NutErr::DataStale => format!(
            "the driver of UPS {ups:?} stopped sending fresh data to upsd at {addr} ({err}); check the UPS cable and the driver's log"
        ),
        NutErr::AccessDenied => format!(
            "upsd at {addr} denied access to UPS {ups:?} ({err}); check `username` / `password` in this [[ups]] against upsd.users"
        ),
        NutErr::VarNotSupported | NutErr::Other(_) => format!("upsd at {addr} answered {err} for UPS {ups:?}"),
    }
}

/// An open connection to upsd.
pub struct Client {
    addr: String,
    timeout: Duration,
    stream: BufReader<TcpStream>,
    line: Vec<u8>,
}

impl Client {
    /// Connects and, when a username is given, sends `USERNAME` and `PASSWORD`.
    pub async fn open(
        addr: &str,
        username: Option<&str>,
        password: Option<&str>,
        timeout: Duration,
    ) -> Result<Client, UpsError> {
        let connect = async {
            let target = tokio::net::lookup_host(addr)
                .await
                .map_err(|e| UpsError::Resolve {
                    addr: addr.to_string(),
                    why: e.to_string(),
                })?
                .next()
                .ok_or_else(|| UpsError::Resolve {
                    addr: addr.to_string(),
                    why: "it resolves to no address".into(),
                })?;
            TcpStream::connect(target).await.map_err(|source| UpsError::Connect {
                addr: addr.to_string(),
                source,
            })
        };
        let stream = tokio::time::timeout(timeout, connect)
            .await
            .map_err(|_| UpsError::Timeout {
                addr: addr.to_string(),
                command: "connect",
                timeout,
            })??;
        let _ = stream.set_nodelay(true);
        let mut client = Client {
            addr: addr.to_string(),
            timeout,
            stream: BufReader::new(stream),
            line: Vec::new(),
        };
        if let Some(user) = username {
            client.simple("USERNAME", user).await?;
            if let Some(pass) = password {
                client.simple("PASSWORD", pass).await?;
            }
        }
        Ok(client)
    }

    /// `COMMAND arg`, expecting `OK`.
    async fn simple(&mut self, command: &'static str, arg: &str) -> Result<(), UpsError> {
        let request = format!("{command} {}\n", proto::quote(arg));
        let timeout = self.timeout;
        let exchange = async {
            self.write(&request).await?;
            let line = self.read_line().await?;
            proto::parse_ok(&line).map_err(|source| self.garbage(source))
        };
        let answer = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| self.timed_out(command))??;
        answer.map_err(|err| UpsError::Login {
            addr: self.addr.clone(),
            command,
            err,
        })
    }

    /// Every variable of `ups`, by name.
    pub async fn list_vars(&mut self, ups: &str) -> Result<HashMap<String, String>, UpsError> {
        let request = format!("LIST VAR {}\n", proto::quote(ups));
        let timeout = self.timeout;
        let exchange = async {
            self.write(&request).await?;
            let mut list = ListVar::new(ups);
            loop {
                let line = self.read_line().await?;
                match list.feed(&line).map_err(|source| self.garbage(source))? {
                    ListStep::More => {}
                    ListStep::Done(vars) => return Ok(vars),
                    ListStep::Refused(err) => {
                        return Err(UpsError::Refused {
                            addr: self.addr.clone(),
                            ups: ups.to_string(),
                            err,
                        });
                    }
                }
            }
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| self.timed_out("LIST VAR"))?
    }

    /// Says goodbye; errors do not matter any more.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(self.timeout, self.write("LOGOUT\n")).await;
    }

    async fn write(&mut self, request: &str) -> Result<(), UpsError> {
        self.stream
            .get_mut()
            .write_all(request.as_bytes())
            .await
            .map_err(|source| UpsError::Io {
                addr: self.addr.clone(),
                source,
            })
    }

    async fn read_line(&mut self) -> Result<String, UpsError> {
        self.line.clear();
        let n = (&mut self.stream)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut self.line)
            .await
            .map_err(|source| UpsError::Io {
                addr: self.addr.clone(),
                source,
            })?;
        if n == 0 {
            return Err(UpsError::Closed {
                addr: self.addr.clone(),
            });
        }
        if self.line.last() != Some(&b'\n') {
            let source = Garbage {
                line: String::from_utf8_lossy(&self.line[..self.line.len().min(200)]).into_owned(),
                why: if n >= MAX_LINE {
                    "line too long"
                } else {
                    "connection closed in the middle of a line"
                },
            };
            return Err(self.garbage(source));
        }
        Ok(String::from_utf8_lossy(&self.line).into_owned())
    }

    fn garbage(&self, source: Garbage) -> UpsError {
        UpsError::Garbage {
            addr: self.addr.clone(),
            source,
        }
    }

    fn timed_out(&self, command: &'static str) -> UpsError {
        UpsError::Timeout {
            addr: self.addr.clone(),
            command,
            timeout: self.timeout,
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    use super::*;

    /// A one-connection fake upsd: reads a request line, answers with `reply` (verbatim,
    /// may be empty), and keeps the connection open until the client goes.
    async fn fake_upsd(reply: &'static str) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        tokio::spawn(async move {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let mut socket = BufReader::new(socket);
            let mut request = String::new();
            while socket.read_line(&mut request).await.is_ok_and(|n| n > 0) {
                let _ = socket.get_mut().write_all(reply.as_bytes()).await;
                request.clear();
            }
        });
        addr
    }

    async fn list(reply: &'static str) -> Result<HashMap<String, String>, UpsError> {
        let addr = fake_upsd(reply).await;
        let mut client = Client::open(&addr, None, None, Duration::from_millis(300))
            .await
            .expect("connect");
        client.list_vars("ups1").await
    }

    #[tokio::test]
    async fn a_list_arriving_in_one_segment_is_read_whole() {
        let vars = list("BEGIN LIST VAR ups1\nVAR ups1 ups.status \"OL\"\nEND LIST VAR ups1\n")
            .await
            .expect("variables");
        assert_eq!(vars.get("ups.status").map(String::as_str), Some("OL"));
    }

    #[tokio::test]
    async fn an_err_answer_keeps_the_connection_and_names_the_ups() {
        let e = list("ERR UNKNOWN-UPS\n").await.expect_err("refused");
        assert!(e.keeps_connection());
        assert!(e.to_string().contains("\"ups1\""), "{e}");
        let e = list("ERR DATA-STALE\n").await.expect_err("refused");
        assert!(
            matches!(
                e,
                UpsError::Refused {
                    err: NutErr::DataStale,
                    ..
                }
            ),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn garbage_silence_and_half_lines_break_the_connection() {
        let e = list("HTTP/1.0 400 Bad Request\n").await.expect_err("garbage");
        assert!(matches!(e, UpsError::Garbage { .. }) && !e.keeps_connection(), "{e:?}");
        let e = list("").await.expect_err("silence");
        assert!(matches!(e, UpsError::Timeout { .. }) && !e.keeps_connection(), "{e:?}");
        let e = list("BEGIN LIST VAR ups1\nVAR ups1 ups.st")
            .await
            .expect_err("half a line");
        assert!(matches!(e, UpsError::Timeout { .. }), "{e:?}");
    }

    #[tokio::test]
    async fn a_refused_connection_says_where_upsd_was_expected() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        drop(listener);
        let Err(e) = Client::open(&addr, None, None, Duration::from_millis(300)).await else {
            panic!("connected to a closed port");
        };
        assert!(matches!(e, UpsError::Connect { .. }), "{e:?}");
        assert!(e.to_string().contains(&addr), "{e}");
    }

    #[tokio::test]
    async fn a_refused_login_is_reported_as_such() {
        let addr = fake_upsd("ERR ACCESS-DENIED\n").await;
        let Err(e) = Client::open(&addr, Some("monitor"), Some("pw"), Duration::from_millis(300)).await else {
            panic!("login accepted");
        };
        assert!(
            matches!(
                e,
                UpsError::Login {
                    command: "USERNAME",
                    ..
                }
            ),
            "{e:?}"
        );
    }
}
