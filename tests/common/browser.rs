//! Runs a browser test script (`tests/browser/*.mjs`: playwright-core driving Debian's
//! headless Chromium) and reads its result line.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::Proc;

/// Where a browser test's screenshots go: `target/test-artifacts/NAME`, emptied first.
pub fn artifacts(name: &str) -> PathBuf {
    // CARGO_TARGET_TMPDIR is <target>/tmp.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .to_path_buf();
    let dir = target.join("test-artifacts").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the screenshot directory");
    dir
}

/// What a browser test needs, or a failure naming how to get it.
pub fn tools() -> (PathBuf, PathBuf) {
    let chromium =
        std::env::var_os("CRYOWATCH_TEST_CHROMIUM").map_or(PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    assert!(
        chromium.exists(),
        "{} not found: the browser test needs Debian's chromium; `bash tests/run.sh` installs it (CI runs it)",
        chromium.display()
    );
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|o| o.status.success()),
        "node not found: the browser test needs Node.js; `bash tests/run.sh` installs it"
    );
    let browser_dir = super::tests_dir().join("browser");
    assert!(
        browser_dir.join("node_modules/playwright-core/package.json").exists(),
        "{}/node_modules/playwright-core missing: `bash tests/run.sh` installs it (npm ci in tests/browser)",
        browser_dir.display()
    );
    (chromium, browser_dir)
}

/// Runs `tests/browser/SCRIPT` with `envs` (plus `ARTIFACTS` = `shots` and `CHROMIUM`),
/// logging into `dir`; fails when it fails or takes longer than `timeout`. Its JSON
/// result line.
pub fn run(script: &str, envs: &[(&str, String)], shots: &Path, dir: &Path, timeout: Duration) -> serde_json::Value {
    let (chromium, browser_dir) = tools();
    let log = dir.join("browser.log");
    let err = dir.join("browser.err");
    let mut cmd = Command::new("node");
    cmd.arg(browser_dir.join(script))
        .current_dir(&browser_dir)
        .env("ARTIFACTS", shots)
        .env("CHROMIUM", &chromium)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).expect("browser log"))
        .stderr(std::fs::File::create(&err).expect("browser log"))
        // Its own process group, so that a timeout ends Chromium too.
        .process_group(0);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut node = Proc::spawn(&format!("node {script}"), &mut cmd);
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = node.child.try_wait().expect("wait for node") {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(format!("-{}", node.pid()))
                .status();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = std::fs::read_to_string(&log).unwrap_or_default() + &std::fs::read_to_string(&err).unwrap_or_default();
    assert!(
        status.is_some_and(|s| s.success()),
        "the browser test {} (screenshots in {}):\n{output}",
        if status.is_none() { "timed out" } else { "failed" },
        shots.display()
    );
    eprintln!("{output}");
    output
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .expect("the browser test's JSON result line")
}

/// Asserts each of `names` in `shots` is a real PNG screenshot.
pub fn assert_screenshots(shots: &Path, names: &[&str]) {
    for name in names {
        let png = std::fs::read(shots.join(name)).unwrap_or_else(|e| panic!("screenshot {name}: {e}"));
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 2000,
            "{name} is not a real screenshot"
        );
    }
}
