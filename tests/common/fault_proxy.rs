//! An HTTP proxy in front of a real server that injects faults: the next requests can be
//! answered with a chosen status (429 with `Retry-After`, 500, 400 …), bodies above a
//! number of lines with 413; everything else is forwarded to the server and its answer
//! relayed. Every request is recorded (time, lines in the body, status answered).
//!
//! It lets tests drive the InfluxDB sink through error classes a real server cannot be
//! made to produce on demand, while every accepted point still lands in the real server.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A scripted answer.
#[derive(Debug, Clone)]
pub struct Fault {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// Only a request whose body starts with this takes the fault; others pass.
    pub body_prefix: Option<String>,
}

impl Fault {
    pub fn status(status: u16, body: &str) -> Fault {
        Fault {
            status,
            headers: Vec::new(),
            body: body.to_string(),
            body_prefix: None,
        }
    }

    pub fn for_body_starting(mut self, prefix: &str) -> Fault {
        self.body_prefix = Some(prefix.to_string());
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Fault {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
}

/// A request the proxy saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub at: Instant,
    /// Non-empty lines in the body (points, for line protocol).
    pub lines: usize,
    pub status: u16,
    pub injected: bool,
}

#[derive(Default)]
struct State {
    faults: VecDeque<Fault>,
    too_large_above: Option<usize>,
    /// Every request with a line holding all these substrings gets this fault, until
    /// cleared: a server refusing one point for its content, every time it is sent.
    refuse_line: Option<(Vec<String>, Fault)>,
    seen: Vec<Seen>,
}

pub struct FaultProxy {
    port: u16,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream` (`host:port`).
    pub fn start(upstream: &str) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp, up) = (state.clone(), stop.clone(), upstream.to_string());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (st, up) = (st.clone(), up.clone());
                std::thread::spawn(move || serve(conn, &up, &st));
            }
        });
        FaultProxy { port, state, stop }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The next requests get these answers, in order.
    pub fn fail_next(&self, faults: impl IntoIterator<Item = Fault>) {
        self.lock().faults.extend(faults);
    }

    /// Bodies with more than `lines` lines get 413 (`None` lifts it).
    /// Answers `fault` to every request holding a line that contains all of `parts`
    /// (`None` clears the rule).
    pub fn refuse_line(&self, rule: Option<(&[&str], Fault)>) {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .refuse_line = rule.map(|(parts, f)| (parts.iter().map(|p| p.to_string()).collect(), f));
    }

    pub fn too_large_above(&self, lines: Option<usize>) {
        self.lock().too_large_above = lines;
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.lock().seen.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Serves the requests of one keep-alive connection.
fn serve(conn: TcpStream, upstream: &str, state: &Mutex<State>) {
    let mut reader = BufReader::new(conn.try_clone().expect("clone the connection"));
    let mut out = conn;
    while let Some((head, body)) = read_request(&mut reader) {
        let lines = body.split(|b| *b == b'\n').filter(|l| !l.is_empty()).count();
        let injected = {
            let mut s = state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let refused_line = s.refuse_line.as_ref().and_then(|(parts, fault)| {
                body.split(|b| *b == b'\n')
                    .map(String::from_utf8_lossy)
                    .any(|line| parts.iter().all(|p| line.contains(p.as_str())))
                    .then(|| fault.clone())
            });
            match s.too_large_above {
                Some(max) if lines > max => Some(Fault::status(413, "request entity too large")),
                _ if refused_line.is_some() => refused_line,
                _ => match s.faults.front() {
                    Some(f) if f.body_prefix.as_ref().is_none_or(|p| body.starts_with(p.as_bytes())) => {
                        s.faults.pop_front()
                    }
                    _ => None,
                },
            }
        };
        let (status, headers, answer) = match &injected {
            Some(f) => (f.status, f.headers.clone(), f.body.clone().into_bytes()),
            None => forward(upstream, &head, &body),
        };
        state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .seen
            .push(Seen {
                at: Instant::now(),
                lines,
                status,
                injected: injected.is_some(),
            });
        let mut response = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n", answer.len());
        for (k, v) in headers {
            response.push_str(&format!("{k}: {v}\r\n"));
        }
        response.push_str("\r\n");
        if out.write_all(response.as_bytes()).is_err() || out.write_all(&answer).is_err() {
            return;
        }
    }
    let _ = out.shutdown(Shutdown::Both);
}

/// Request head lines and body (Content-Length bodies only, as reqwest sends them).
fn read_request(reader: &mut BufReader<TcpStream>) -> Option<(Vec<String>, Vec<u8>)> {
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end().to_string();
        if line.is_empty() {
            break;
        }
        head.push(line);
    }
    let length = head
        .iter()
        .find_map(|h| {
            let (k, v) = h.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((head, body))
}

/// Sends the request to the real server and returns its status and body.
fn forward(upstream: &str, head: &[String], body: &[u8]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let Ok(mut up) = TcpStream::connect(upstream) else {
        return (502, Vec::new(), b"upstream not reachable".to_vec());
    };
    let _ = up.set_read_timeout(Some(Duration::from_secs(30)));
    let mut request = format!("{}\r\n", head[0]);
    for h in &head[1..] {
        let name = h.split(':').next().unwrap_or("").to_ascii_lowercase();
        if name != "connection" && name != "host" {
            request.push_str(&format!("{h}\r\n"));
        }
    }
    request.push_str(&format!("Host: {upstream}\r\nConnection: close\r\n\r\n"));
    if up.write_all(request.as_bytes()).is_err() || up.write_all(body).is_err() {
        return (502, Vec::new(), b"upstream write failed".to_vec());
    }
    let mut raw = Vec::new();
    let _ = up.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(502);
    let answer = match text.find("\r\n\r\n") {
        Some(i) => raw[i + 4..].to_vec(),
        None => Vec::new(),
    };
    (status, Vec::new(), answer)
}
