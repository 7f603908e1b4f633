//! `tests/peers/lazyfs.py` mounted for one test: a FUSE pass-through that keeps every
//! write in memory until the file is fsynced, and drops what was not at a simulated power
//! cut ([`LazyFs::cut`]). Unmounted and stopped when dropped.

use std::io::{BufRead, BufReader, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{Proc, python, tests_dir, wait_for};

pub struct LazyFs {
    pub mount: PathBuf,
    control: PathBuf,
    log: PathBuf,
    proc: Option<Proc>,
}

/// What one cut dropped.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cut {
    pub files: u64,
    pub bytes: u64,
}

impl LazyFs {
    /// Why FUSE cannot be used here (no `/dev/fuse`), if so: the caller skips, saying so.
    pub fn unavailable() -> Option<String> {
        (!Path::new("/dev/fuse").exists()).then(|| "/dev/fuse is missing: no FUSE on this machine".to_string())
    }

    /// Mounts `backing` (created if needed) on `mount` (created if needed); the control
    /// socket and the log go to `work`.
    pub fn mount(backing: &Path, mount: &Path, work: &Path) -> LazyFs {
        for dir in [backing, mount, work] {
            std::fs::create_dir_all(dir).expect("create a lazyfs directory");
        }
        let control = work.join("lazyfs.sock");
        let log = work.join("lazyfs.log");
        let out = std::fs::File::create(&log).expect("create the lazyfs log");
        let err = out.try_clone().expect("clone the lazyfs log handle");
        let mut proc = Proc::spawn(
            "lazyfs.py",
            Command::new(python())
                .arg(tests_dir().join("peers/lazyfs.py"))
                .arg(backing)
                .arg(mount)
                .arg("--control")
                .arg(&control)
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err),
        );
        wait_for(Duration::from_secs(15), "lazyfs to mount", || {
            assert!(
                proc.running(),
                "lazyfs.py exited (needs fuse3 and mfusepy: bash tests/run.sh installs them):\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            (mounted(mount) && control.exists()).then_some(())
        });
        LazyFs {
            mount: mount.to_path_buf(),
            control,
            log,
            proc: Some(proc),
        }
    }

    /// The power cut: every write not fsynced is gone. Kill the writers first.
    pub fn cut(&self) -> Cut {
        let answer = self.command("cut");
        let mut words = answer
            .split_whitespace()
            .skip(2)
            .map(|w| w.parse::<u64>().unwrap_or_default());
        Cut {
            files: words.next().unwrap_or_default(),
            bytes: words.next().unwrap_or_default(),
        }
    }

    fn command(&self, command: &str) -> String {
        let mut s = UnixStream::connect(&self.control).expect("connect to the lazyfs control socket");
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("control socket timeout");
        writeln!(s, "{command}").expect("send to lazyfs");
        let mut line = String::new();
        BufReader::new(&s).read_line(&mut line).expect("lazyfs answers");
        assert!(line.starts_with("ok "), "lazyfs {command}: {line:?}\n{}", self.log());
        line.trim().to_string()
    }

    /// The file system's own log (its cuts, any error it met).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for LazyFs {
    fn drop(&mut self) {
        let _ = Command::new("fusermount3")
            .args(["-u", "-z"])
            .arg(&self.mount)
            .stderr(Stdio::null())
            .status();
        if let Some(mut proc) = self.proc.take()
            && proc.running()
        {
            proc.signal("TERM");
            if wait_exit_quietly(&mut proc, Duration::from_secs(5)).is_none() {
                drop(proc); // SIGKILL
            }
        }
    }
}

fn wait_exit_quietly(proc: &mut Proc, within: Duration) -> Option<()> {
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        if !proc.running() {
            return Some(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// Whether a FUSE file system is mounted on `path` (from /proc/self/mountinfo).
fn mounted(path: &Path) -> bool {
    let want = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            f.get(4).is_some_and(|m| Path::new(m) == want) && l.contains(" - fuse")
        })
}
