//! Fuzzed configuration files (seeded): lines deleted and duplicated, values swapped
//! between keys or replaced, random bytes, truncation. `cryowatch check` must answer 0
//! (valid) or 2 (invalid, naming the file) — never a crash, a panic or a hang. Then a
//! running daemon is sent SIGHUP with a handful of invalid files and must keep running
//! on its configuration without losing a reading.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Feed, base_config, json_sensor};
use crate::common::mosquitto::Mosquitto;
use crate::common::{Site, tests_dir};
use crate::outcome::Outcome;

const PER_EXAMPLE: usize = 1_200;
const HUPS: usize = 6;
const CLIENT: &str = "cw-fault-fuzz";
const SENSOR: &str = "dewar-1.temp";

/// Values that are wrong somewhere: types, ranges, syntax.
const ODD_VALUES: [&str; 14] = [
    "-1",
    "\"\"",
    "\"x\"",
    "1e309",
    "true",
    "[",
    "{}",
    "[]",
    "\"-5s\"",
    "\"0s\"",
    "18446744073709551616",
    "\"\\u0000\"",
    "\"../../../../etc/passwd\"",
    "nan",
];

/// One seeded mutation of `text`: 1 to 3 edits.
pub fn mutate(text: &str, rng: &mut fastrand::Rng) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    for _ in 0..rng.usize(1..=3) {
        let s = String::from_utf8_lossy(&bytes).into_owned();
        let mut lines: Vec<String> = s.lines().map(str::to_string).collect();
        if lines.is_empty() {
            break;
        }
        let i = rng.usize(..lines.len());
        let assignments: Vec<usize> = (0..lines.len())
            .filter(|k| lines[*k].contains(" = ") && !lines[*k].trim_start().starts_with('#'))
            .collect();
        match rng.u8(0..7) {
            0 => {
                lines.remove(i);
            }
            1 => {
                let line = lines[i].clone();
                let at = rng.usize(..=lines.len());
                lines.insert(at, line);
            }
            2 if assignments.len() >= 2 => {
                let a = assignments[rng.usize(..assignments.len())];
                let b = assignments[rng.usize(..assignments.len())];
                let (ka, va) = split(&lines[a]);
                let (kb, vb) = split(&lines[b]);
                lines[a] = format!("{ka} = {vb}");
                lines[b] = format!("{kb} = {va}");
            }
            3 if !assignments.is_empty() => {
                let a = assignments[rng.usize(..assignments.len())];
                let (k, _) = split(&lines[a]);
                lines[a] = format!("{k} = {}", ODD_VALUES[rng.usize(..ODD_VALUES.len())]);
            }
            4 => {
                let mut b = lines.join("\n").into_bytes();
                let at = rng.usize(..=b.len());
                let junk: Vec<u8> = (0..rng.usize(1..16)).map(|_| rng.u8(..)).collect();
                b.splice(at..at, junk);
                bytes = b;
                continue;
            }
            5 => {
                let mut b = lines.join("\n").into_bytes();
                b.truncate(rng.usize(..=b.len()));
                bytes = b;
                continue;
            }
            _ => {
                // A section header doubled or dropped.
                let headers: Vec<usize> = (0..lines.len()).filter(|k| lines[*k].starts_with('[')).collect();
                if let Some(h) = headers.get(rng.usize(..headers.len().max(1))) {
                    if rng.bool() {
                        lines.remove(*h);
                    } else {
                        let line = lines[*h].clone();
                        lines.insert(*h, line);
                    }
                }
            }
        }
        bytes = (lines.join("\n") + "\n").into_bytes();
    }
    bytes
}

fn split(line: &str) -> (String, String) {
    match line.split_once(" = ") {
        Some((k, v)) => (k.to_string(), v.to_string()),
        None => (line.to_string(), String::new()),
    }
}

/// What `cryowatch check` did with one file.
#[derive(Debug, Clone, PartialEq)]
enum Verdict {
    Valid,
    Invalid,
    /// Exit 2 without a line naming the file.
    Unnamed(String),
    /// Any other exit, a signal, or no answer within 10 s.
    Bad(String),
}

fn check(file: &Path) -> Verdict {
    let mut child = match crate::common::cryowatch()
        .args(["check", "-c"])
        .arg(file)
        .env_remove("CRYOWATCH_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return Verdict::Bad(format!("spawn: {e}")),
    };
    let stderr = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut s) = stderr {
            let _ = std::io::Read::read_to_string(&mut s, &mut text);
        }
        text
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(2)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let stderr = reader.join().unwrap_or_default();
    let name = file.display().to_string();
    match status.map(|s| s.code()) {
        Some(Some(0)) => Verdict::Valid,
        Some(Some(2)) if stderr.lines().any(|l| l.contains(&name)) => Verdict::Invalid,
        Some(Some(2)) => Verdict::Unnamed(stderr.lines().next().unwrap_or_default().to_string()),
        Some(code) => Verdict::Bad(format!("exit {code:?}: {}", stderr.lines().last().unwrap_or_default())),
        None => Verdict::Bad("no answer within 10 s".into()),
    }
}

pub fn run() -> Outcome {
    let mut out = Outcome::new("fuzzed configs");
    let seed: u64 = std::env::var("CRYOWATCH_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| super::now_ms() as u64);
    eprintln!("faults: fuzzed configs seed {seed}");
    let dir = tempfile::tempdir().expect("fuzz dir");
    let keep = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fault-configs");
    let mut files: Vec<PathBuf> = Vec::new();
    let mut rng = fastrand::Rng::with_seed(seed);
    for example in ["cryowatch.example.toml", "demo.toml"] {
        let path = tests_dir().join("../config").join(example);
        let text = std::fs::read_to_string(&path).expect("read an example config");
        for n in 0..PER_EXAMPLE {
            let file = dir
                .path()
                .join(format!("{}-{n:04}.toml", example.trim_end_matches(".toml")));
            std::fs::write(&file, mutate(&text, &mut rng)).expect("write a mutated config");
            files.push(file);
        }
    }
    let started = Instant::now();
    let verdicts: Mutex<Vec<(PathBuf, Verdict)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for part in files.chunks(files.len().div_ceil(2)) {
            let verdicts = &verdicts;
            s.spawn(move || {
                for f in part {
                    let v = check(f);
                    verdicts.lock().unwrap_or_else(|e| e.into_inner()).push((f.clone(), v));
                }
            });
        }
    });
    let checked = started.elapsed();
    let verdicts = verdicts.into_inner().unwrap_or_else(|e| e.into_inner());
    let valid = verdicts.iter().filter(|(_, v)| *v == Verdict::Valid).count();
    let invalid = verdicts.iter().filter(|(_, v)| *v == Verdict::Invalid).count();
    let wrong: Vec<&(PathBuf, Verdict)> = verdicts
        .iter()
        .filter(|(_, v)| matches!(v, Verdict::Bad(_) | Verdict::Unnamed(_)))
        .collect();
    if !wrong.is_empty() {
        let _ = std::fs::create_dir_all(&keep);
        for (f, _) in &wrong {
            if let Some(name) = f.file_name() {
                let _ = std::fs::copy(f, keep.join(name));
            }
        }
    }

    // SIGHUP with invalid versions of the running configuration.
    let broker = Mosquitto::start();
    let mut text = base_config(&broker, CLIENT);
    text.push_str(&json_sensor(SENSOR, "lab/dewar-1/temp", true));
    let site = Site::new(&text);
    let good = std::fs::read(site.config()).expect("read the config");
    let daemon = site.start_daemon();
    super::wait_subscribed(&site, &broker, CLIENT);
    let feed = Feed::start(
        &broker,
        "cw-fault-fuzz-feed",
        Duration::from_millis(20),
        super::readings("lab/dewar-1/temp", |i| -190.0 + (i % 7) as f64 * 0.1),
    );
    let mut hups = 0;
    let mut tries = 0;
    let mut crashes = 0;
    let good_text = String::from_utf8_lossy(&good).into_owned();
    while hups < HUPS && tries < 200 {
        tries += 1;
        let bad = mutate(&good_text, &mut rng);
        let probe = dir.path().join("hup-probe.toml");
        std::fs::write(&probe, &bad).expect("write a mutated config");
        if check(&probe) != Verdict::Invalid {
            continue;
        }
        std::fs::write(site.config(), &bad).expect("install a mutated config");
        daemon.signal("HUP");
        std::thread::sleep(Duration::from_millis(400));
        hups += 1;
    }
    std::fs::write(site.config(), &good).expect("restore the config");
    let mut daemon = daemon;
    if !daemon.running() {
        crashes += 1;
    }
    std::thread::sleep(Duration::from_millis(500));
    let (times, _) = feed.stop();
    let drained = super::wait_stored(&site, SENSOR, &times, Duration::from_secs(20));
    let rejected = super::db(&site)
        .map(|c| super::audit(&c, "config.rejected").len())
        .unwrap_or(0);
    let reloaded = super::db(&site)
        .map(|c| super::audit(&c, "config.reloaded").len())
        .unwrap_or(0);
    let code = super::stop_daemon(daemon);
    let (stored, dup) = super::tally(&times, &super::stored_times(&site, SENSOR));
    out.readings_produced = Some(times.len() as u64);
    out.readings_stored = Some(stored);
    out.readings_duplicated = Some(dup);
    out.crashes = crashes;
    out.detail = format!(
        "seed {seed}: {} mutations of the two example configs checked in {:.1} s ({:.1} ms each on 2 threads): {valid} valid (exit 0), {invalid} invalid (exit 2 naming the file), {} other; {hups} SIGHUPs with invalid configs: audited config.rejected ×{rejected}, reloaded ×{reloaded}, daemon kept running and storing",
        verdicts.len(),
        checked.as_secs_f64(),
        checked.as_secs_f64() * 1000.0 / verdicts.len().max(1) as f64 * 2.0,
        wrong.len()
    );
    let mut problems = Vec::new();
    if !wrong.is_empty() {
        problems.push(format!(
            "{} mutations answered wrongly (kept in target/fault-configs/), e.g. {:?}",
            wrong.len(),
            wrong
                .iter()
                .take(3)
                .map(|(f, v)| (f.file_name(), v))
                .collect::<Vec<_>>()
        ));
    }
    if hups < HUPS {
        problems.push(format!("only {hups} invalid configs found for SIGHUP"));
    }
    if rejected != hups || reloaded != 0 {
        problems.push(format!(
            "{hups} invalid reloads: config.rejected ×{rejected}, config.reloaded ×{reloaded}"
        ));
    }
    if drained.is_none() {
        problems.push("readings not all stored".into());
    }
    super::conclude(&mut out, problems, code, &site);
    out
}
