//! A real NUT 2.8 upsd with a `dummy-ups` driver for one test: its own loopback port
//! and files (ups.conf, upsd.conf, upsd.users, NAME.dev, driver socket, logs) in a
//! directory the test owns. Both processes are killed when the fixture is dropped.
//!
//! Timings worth knowing: the driver opens its socket about 1 s after it starts and
//! serves data about 1 s later (until then upsd answers `ERR DRIVER-NOT-CONNECTED`, then
//! lists only `ups.status "WAIT"`); a restarted upsd also lists `WAIT` until the driver's
//! next poll (up to 2 s); upsd notices a killed driver at once. A rewritten .dev file is
//! picked up within ~2 s (the driver's poll interval, by modification time);
//! [`Nut::set`] therefore also sets the variable through upsd (`SET VAR`, what
//! `upsrw -s` does), which takes effect at once, and keeps the file in step so a
//! restarted driver starts from the same values.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Proc, free_port};

/// How long a start, a change or a restart may take before the fixture gives up.
const PATIENCE: Duration = Duration::from_secs(15);

/// A running upsd on `127.0.0.1:port` serving one dummy UPS.
pub struct Nut {
    dir: PathBuf,
    name: String,
    port: u16,
    upsd: Option<Proc>,
    driver: Option<Proc>,
    /// The variables of the .dev file, by name.
    vars: Mutex<BTreeMap<String, String>>,
}

impl Nut {
    /// The upsd user allowed to set variables and run instant commands.
    pub const USER: &'static str = "cryowatch";
    pub const PASSWORD: &'static str = "s3cret pass";

    /// Starts a UPS `ups_name` that is on line: `ups.status OL`, `battery.charge 100`,
    /// `battery.runtime 3600`, `input.voltage 230.0`. Returns once upsd serves them.
    pub fn start(dir: &Path, ups_name: &str) -> Nut {
        Nut::start_with(
            dir,
            ups_name,
            &[
                ("ups.status", "OL"),
                ("battery.charge", "100"),
                ("battery.runtime", "3600"),
                ("input.voltage", "230.0"),
            ],
        )
    }

    /// Starts a UPS with exactly these variables (`ups.status` must be among them).
    pub fn start_with(dir: &Path, ups_name: &str, vars: &[(&str, &str)]) -> Nut {
        let socket = dir.join(format!("dummy-ups-{ups_name}"));
        assert!(
            socket.as_os_str().len() < 100,
            "{} is too long for a Unix socket path; use a shorter directory",
            socket.display()
        );
        let mut nut = Nut {
            dir: dir.to_path_buf(),
            name: ups_name.to_string(),
            port: 0,
            upsd: None,
            driver: None,
            vars: Mutex::new(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
        };
        write_file(
            &dir.join("ups.conf"),
            &format!("[{ups_name}]\n\tdriver = dummy-ups\n\tport = {ups_name}.dev\n\tdesc = \"cryowatch test UPS\"\n"),
        );
        write_file(
            &dir.join("upsd.users"),
            &format!(
                "[{}]\n\tpassword = \"{}\"\n\tactions = SET\n\tinstcmds = ALL\n",
                Nut::USER,
                Nut::PASSWORD
            ),
        );
        nut.write_dev();
        nut.spawn_driver();
        // Another test may take the free port between our probe and upsd's bind: try a
        // few ports before giving up.
        for _ in 0..5 {
            nut.port = free_port();
            write_file(&dir.join("upsd.conf"), &format!("LISTEN 127.0.0.1 {}\n", nut.port));
            if nut.spawn_upsd() {
                nut.wait_served();
                return nut;
            }
        }
        panic!("upsd did not start on any of 5 free ports; log:\n{}", nut.log());
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`, for `nut` in an `[[ups]]`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The driver's and upsd's output (for assertion messages).
    pub fn log(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.join(f)).unwrap_or_default();
        format!(
            "--- dummy-ups ---\n{}\n--- upsd ---\n{}",
            read("dummy-ups.log"),
            read("upsd.log")
        )
    }

    /// Sets a variable (e.g. `set("ups.status", "OB LB")`) and returns once upsd reports
    /// the new value. With the driver down, only the .dev file changes: the driver
    /// serves the value when [`Nut::start_driver`] brings it back.
    pub fn set(&self, var: &str, value: &str) {
        {
            let mut vars = self.vars.lock().expect("vars lock");
            vars.insert(var.to_string(), value.to_string());
        }
        self.write_dev();
        if self.driver.is_none() || self.upsd.is_none() {
            return;
        }
        // SET VAR takes effect at once; a variable the driver does not have yet is
        // refused and arrives when the driver re-reads the .dev file (within ~2 s).
        let _ = self.set_var(var, value);
        let expected = value.to_string();
        self.wait(&format!("upsd to report {var} = {value:?}"), || {
            (self.get(var).ok().as_ref() == Some(&expected)).then_some(())
        });
    }

    /// Kills the driver (SIGKILL); returns once upsd answers `ERR DRIVER-NOT-CONNECTED`.
    pub fn kill_driver(&mut self) {
        drop(self.driver.take());
        let _ = std::fs::remove_file(self.dir.join(format!("dummy-ups-{}", self.name)));
        if self.upsd.is_some() {
            self.wait("upsd to lose the driver", || {
                (self.get("ups.status") == Err("ERR DRIVER-NOT-CONNECTED".into())).then_some(())
            });
        }
    }

    /// Starts the driver again; returns once upsd serves its data (about 2 s).
    pub fn start_driver(&mut self) {
        assert!(self.driver.is_none(), "the dummy-ups driver is already running");
        self.spawn_driver();
        if self.upsd.is_some() {
            self.wait_served();
        }
    }

    /// Kills upsd (SIGKILL); the driver keeps running.
    pub fn kill_upsd(&mut self) {
        drop(self.upsd.take());
        let port = self.port;
        self.wait("upsd to stop listening", || {
            TcpStream::connect(("127.0.0.1", port)).is_err().then_some(())
        });
    }

    /// Starts upsd again on the same port; returns once it serves the UPS.
    pub fn start_upsd(&mut self) {
        assert!(self.upsd.is_none(), "upsd is already running");
        // The port was ours a moment ago; only a slow release of the socket can delay
        // the bind, so retry for a while.
        let deadline = Instant::now() + PATIENCE;
        while !self.spawn_upsd() {
            assert!(
                Instant::now() < deadline,
                "upsd did not start again on port {}; log:\n{}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        if self.driver.is_some() {
            self.wait_served();
        }
    }

    /// `GET VAR NAME var` over a fresh connection: the value, or upsd's `ERR …` line
    /// (or the I/O error) as the error.
    pub fn get(&self, var: &str) -> Result<String, String> {
        let answer = self.request(&[&format!("GET VAR {} {var}", self.name)])?;
        let line = answer.into_iter().next().unwrap_or_default();
        let prefix = format!("VAR {} {var} \"", self.name);
        match line.strip_prefix(&prefix).and_then(|rest| rest.strip_suffix('"')) {
            Some(value) => Ok(value.replace("\\\"", "\"").replace("\\\\", "\\")),
            None => Err(line),
        }
    }

    /// `SET VAR` as the fixture's user, what `upsrw -s` does.
    fn set_var(&self, var: &str, value: &str) -> Result<(), String> {
        let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
        let answers = self.request(&[
            &format!("USERNAME {}", Nut::USER),
            &format!("PASSWORD \"{}\"", Nut::PASSWORD),
            &format!("SET VAR {} {var} \"{escaped}\"", self.name),
        ])?;
        match answers.last() {
            Some(a) if a.starts_with("OK") => Ok(()),
            other => Err(format!("SET VAR {var} answered {other:?}")),
        }
    }

    /// Sends each line and reads one answer line per line sent.
    fn request(&self, lines: &[&str]) -> Result<Vec<String>, String> {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .map_err(|e| e.to_string())?;
        let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
        let mut reader = BufReader::new(stream);
        let mut answers = Vec::new();
        for line in lines {
            writer
                .write_all(format!("{line}\n").as_bytes())
                .map_err(|e| e.to_string())?;
            let mut answer = String::new();
            reader.read_line(&mut answer).map_err(|e| e.to_string())?;
            answers.push(answer.trim_end().to_string());
        }
        let _ = writer.write_all(b"LOGOUT\n");
        Ok(answers)
    }

    /// Writes NAME.dev atomically (write a temporary file, rename it over the old one).
    fn write_dev(&self) {
        let text: String = self
            .vars
            .lock()
            .expect("vars lock")
            .iter()
            .map(|(k, v)| format!("{k}: {v}\n"))
            .collect();
        let tmp = self.dir.join(format!(".{}.dev.tmp", self.name));
        write_file(&tmp, &text);
        std::fs::rename(&tmp, self.dir.join(format!("{}.dev", self.name))).expect("rename the .dev file");
    }

    fn command(&self, program: &str, log: &str) -> Command {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(log))
            .expect("open NUT log");
        let log2 = log.try_clone().expect("clone NUT log handle");
        let mut cmd = Command::new(program);
        cmd.env("NUT_CONFPATH", &self.dir)
            .env("NUT_STATEPATH", &self.dir)
            .env("NUT_ALTPIDPATH", &self.dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        cmd
    }

    fn spawn_driver(&mut self) {
        let mut cmd = self.command("/lib/nut/dummy-ups", "dummy-ups.log");
        cmd.args(["-a", &self.name]).args(as_user()).arg("-F");
        let mut driver = Proc::spawn("dummy-ups", &mut cmd);
        // upsd connects to the driver's socket when it starts; wait for it, so a fresh
        // upsd finds the driver at once instead of on its next retry.
        let socket = self.dir.join(format!("dummy-ups-{}", self.name));
        self.wait("dummy-ups to open its socket", || {
            assert!(driver.running(), "dummy-ups exited; log:\n{}", self.log());
            socket.exists().then_some(())
        });
        self.driver = Some(driver);
    }

    /// Starts upsd and waits until it listens; false when it exited instead (port taken).
    fn spawn_upsd(&mut self) -> bool {
        let mut cmd = self.command("/lib/nut/upsd", "upsd.log");
        cmd.args(as_user()).arg("-F");
        let mut upsd = Proc::spawn("upsd", &mut cmd);
        let port = self.port;
        let up = self.wait("upsd to listen", || {
            if !upsd.running() {
                return Some(false);
            }
            TcpStream::connect(("127.0.0.1", port)).ok().map(|_| true)
        });
        if up {
            self.upsd = Some(upsd);
        }
        up
    }

    /// Waits until upsd serves every variable of the .dev file with its value (so not
    /// `WAIT`, not an error, and not a value from before the last [`Nut::set`]).
    fn wait_served(&self) {
        let vars = self.vars.lock().expect("vars lock").clone();
        self.wait("upsd to serve the UPS's data", || {
            vars.iter().all(|(k, v)| self.get(k).as_ref() == Ok(v)).then_some(())
        });
    }

    fn wait<T>(&self, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(v) = f() {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {PATIENCE:?} waiting for {what}; NUT log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// `-u root` when running as root (NUT would otherwise drop to its `nut` user, who
/// cannot read the test's directory); nothing otherwise.
fn as_user() -> Vec<&'static str> {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    if root { vec!["-u", "root"] } else { Vec::new() }
}

fn write_file(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}
