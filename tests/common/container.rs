//! A minimal Debian 12 booted with systemd as PID 1, in a container: the package is
//! installed and run there as on a real server.
//!
//! The tree is made by `debootstrap --variant=minbase` (with systemd, systemd-sysv and
//! dbus) from a tarball of its packages kept under `target/container/` (made on first
//! use, about 50 MB; later runs unpack it in ~20 s without the network). It boots with
//! `systemd-nspawn -b` and commands run inside through `nsenter` into the container's
//! PID 1: this kind of machine has no system bus of its own, so `machinectl` is out.
//! The container shares the host's network, so peers it needs listen on loopback ports.
//!
//! [`Container::boot`] says why when this machine cannot do it (not root, tools
//! missing, no boot); the caller decides whether that skips or fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// What the tree holds besides the minimal base: an init and its bus.
const INCLUDE: &str = "systemd,systemd-sysv,dbus";
const SUITE: &str = "bookworm";

/// The Debian mirror: `CRYOWATCH_TEST_DEBIAN_MIRROR`, else the project's default.
fn mirror() -> String {
    std::env::var("CRYOWATCH_TEST_DEBIAN_MIRROR").unwrap_or_else(|_| "http://deb.debian.org/debian".into())
}

/// Why this machine cannot boot a container, if it cannot.
pub fn unavailable() -> Option<String> {
    // SAFETY-free check of the effective user: /proc/self/status names it.
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .is_some_and(|l| l.split_whitespace().nth(2) == Some("0"));
    if !root {
        return Some("not root: debootstrap and systemd-nspawn need root".into());
    }
    for tool in ["debootstrap", "systemd-nspawn", "nsenter"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return Some(format!(
                "{tool} is not installed (bash tests/run.sh installs debootstrap and systemd-container)"
            ));
        }
    }
    None
}

fn run(what: &str, cmd: &mut Command) -> Result<Output, String> {
    let out = cmd.output().map_err(|e| format!("{what}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(out)
}

/// Makes a fresh tree in `root` from the cached package tarball (made first if missing).
pub fn bootstrap(cache: &Path, root: &Path) -> Result<(), String> {
    std::fs::create_dir_all(cache).map_err(|e| format!("{}: {e}", cache.display()))?;
    let tarball = cache.join(format!("{SUITE}-minbase.tgz"));
    if !tarball.exists() {
        let partial = cache.join(format!("{SUITE}-minbase.tgz.partial"));
        let scratch = cache.join("scratch");
        let _ = std::fs::remove_dir_all(&scratch);
        run(
            "debootstrap --make-tarball",
            Command::new("debootstrap")
                .args(["--variant=minbase", &format!("--include={INCLUDE}")])
                .arg(format!("--make-tarball={}", partial.display()))
                .arg(SUITE)
                .arg(&scratch)
                .arg(mirror()),
        )?;
        let _ = std::fs::remove_dir_all(&scratch);
        std::fs::rename(&partial, &tarball).map_err(|e| format!("{}: {e}", tarball.display()))?;
    }
    run(
        "debootstrap --unpack-tarball",
        Command::new("debootstrap")
            .args(["--variant=minbase", &format!("--include={INCLUDE}")])
            .arg(format!("--unpack-tarball={}", tarball.display()))
            .arg(SUITE)
            .arg(root)
            .arg(mirror()),
    )?;
    Ok(())
}

/// A booted container; powered off (and its nspawn killed if it will not) when dropped.
pub struct Container {
    nspawn: Child,
    /// The container's PID 1 (systemd), as the host sees it.
    leader: u32,
    pub root: PathBuf,
    log: PathBuf,
}

impl Container {
    /// Boots the tree at `root` as machine `name` and waits until systemd has finished
    /// starting up. The console goes to `log`.
    pub fn boot(root: &Path, name: &str, log: &Path) -> Result<Container, String> {
        let console = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let console_err = console.try_clone().map_err(|e| e.to_string())?;
        let nspawn = Command::new("systemd-nspawn")
            .arg("-D")
            .arg(root)
            .args(["-M", name, "-b", "--register=no", "--keep-unit", "--console=passive"])
            .env("SYSTEMD_NSPAWN_UNIFIED_HIERARCHY", "1")
            .stdin(Stdio::null())
            .stdout(console)
            .stderr(console_err)
            .spawn()
            .map_err(|e| format!("systemd-nspawn: {e}"))?;
        let mut container = Container {
            leader: 0,
            nspawn,
            root: root.to_path_buf(),
            log: log.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = container.nspawn.try_wait() {
                return Err(format!(
                    "the container exited ({status}) while booting:\n{}",
                    container.console()
                ));
            }
            if container.leader == 0 {
                container.leader = first_child(container.nspawn.id()).unwrap_or(0);
            }
            if container.leader != 0 {
                let state = container.sh("systemctl is-system-running");
                let state = String::from_utf8_lossy(&state.stdout).trim().to_string();
                if state == "running" || state == "degraded" {
                    return Ok(container);
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "systemd in the container did not finish starting:\n{}",
                    container.console()
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// What the container's console printed so far.
    pub fn console(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs `script` with `/bin/sh -c` inside the container, as root.
    pub fn sh(&self, script: &str) -> Output {
        Command::new("nsenter")
            .args(["-t", &self.leader.to_string(), "-a", "/bin/sh", "-c", script])
            .env_clear()
            .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LANG", "C.UTF-8")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("nsenter: {e}"))
    }

    /// Runs `script` and returns its standard output and error; panics when it fails.
    pub fn ok(&self, script: &str) -> String {
        let out = self.sh(script);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if !out.status.success() {
            let journal = self.out("journalctl -b --no-pager -n 40");
            panic!(
                "in the container, `{script}` failed ({}):\n{text}\nthe journal's last lines:\n{journal}",
                out.status
            );
        }
        text
    }

    /// Standard output of `script` (trimmed), whatever its exit status.
    pub fn out(&self, script: &str) -> String {
        String::from_utf8_lossy(&self.sh(script).stdout).trim().to_string()
    }

    /// `systemctl show -p PROPERTY --value UNIT`.
    pub fn property(&self, unit: &str, property: &str) -> String {
        self.out(&format!("systemctl show -p {property} --value {unit}"))
    }

    /// The host path of `path` inside the container.
    pub fn path(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if self.leader != 0 {
            let _ = self.sh("systemctl poweroff --no-block");
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.nspawn.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.nspawn.kill();
        let _ = self.nspawn.wait();
    }
}

/// The first child of process `pid` (nspawn's child is the container's init).
fn first_child(pid: u32) -> Option<u32> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    for task in tasks.flatten() {
        let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        if let Some(child) = children.split_whitespace().next().and_then(|c| c.parse().ok()) {
            return Some(child);
        }
    }
    None
}
