//! What stands between `POST /login` and the password check.
//!
//! Each check runs Argon2 with 19 MiB of memory, so sign-ins are bounded three ways:
//!
//! - **At once**: at most [`CHECKS_AT_ONCE`] checks run; [`WAITING_AT_MOST`] more wait
//!   their turn, and the rest are answered 503 with `Retry-After` at once.
//! - **Per user name and per client address**: after a failure the next try must wait,
//!   twice as long after each further failure (`Strikes`); earlier tries are
//!   answered 429 with `Retry-After` without a check.
//! - **Lockout**: [`LOCK_AFTER`] failures in a row lock the user name for [`LOCK_FOR`];
//!   a locked name's sign-ins are refused without a check, whatever the password.
//!
//! Every refusal (wrong password, throttled, locked) is counted over
//! [`SECURITY_WINDOW`]; the count is written as readings of the monitor's sensor
//! `cryowatch.security`, whose rule raises and pages a warning past its threshold.
//! The policy ([`Tracker`]) takes `now` and does no I/O.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::monitor::{SECURITY_THRESHOLD, SECURITY_WINDOW};
use crate::model::{TimestampMs, millis};
use crate::pipeline::CommitHandle;
use crate::pipeline::commit::Batch;
use crate::telemetry::Telemetry;

/// Password checks running at once (each holds ~19 MiB while it runs).
pub const CHECKS_AT_ONCE: usize = 2;
/// Sign-ins waiting for a check; more are answered 503 at once.
pub const WAITING_AT_MOST: usize = 8;
/// Longest wait for a check before a 503.
const WAIT_FOR_CHECK: Duration = Duration::from_secs(10);
/// Failures in a row that lock a user name.
pub const LOCK_AFTER: u32 = 5;
/// How long a user name stays locked.
pub const LOCK_FOR: Duration = Duration::from_secs(15 * 60);
/// Failures from one address before its tries are slowed down (typing mistakes of
/// several people behind one address).
const FREE_PER_CLIENT: u32 = 3;
/// Longest wait between two tries.
const MAX_WAIT: Duration = Duration::from_secs(60);
/// Strikes older than this are forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// Most user names or addresses remembered (each a few dozen bytes).
const REMEMBERED: usize = 10_000;

/// One user name's or address's recent failures.
#[derive(Debug, Clone, Copy, Default)]
struct Strikes {
    /// Failures in a row.
    failures: u32,
    last: TimestampMs,
    locked_until: Option<TimestampMs>,
}

impl Strikes {
    /// When the next try may come after `failures` beyond the `free` ones: 1 s, 2 s,
    /// 4 s, ... at most [`MAX_WAIT`] after the last failure.
    fn next_try(&self, free: u32) -> TimestampMs {
        let Some(beyond) = self.failures.checked_sub(free).filter(|n| *n > 0) else {
            return self.last;
        };
        let wait = 1_000i64.saturating_mul(1i64 << (beyond - 1).min(20));
        self.last + wait.min(millis(MAX_WAIT))
    }
}

/// Whether a sign-in may go on to the password check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Check,
    /// The user name is locked until then.
    Locked {
        until: TimestampMs,
    },
    /// Too soon after the last failure of this user name or address; try again then.
    Throttled {
        until: TimestampMs,
        by: &'static str,
    },
}

/// What a failure led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// This failure locked the user name (until then).
    pub locked: Option<TimestampMs>,
}

/// The policy: strikes per user name and per address, and refusals in the window.
#[derive(Debug, Default)]
pub struct Tracker {
    users: HashMap<String, Strikes>,
    clients: HashMap<IpAddr, Strikes>,
    /// Times of the refusals in the window, oldest first (at most one per refusal, and
    /// pruned to the window).
    refused: VecDeque<TimestampMs>,
}

fn forget<K: std::hash::Hash + Eq + Clone>(map: &mut HashMap<K, Strikes>, now: TimestampMs) {
    if map.len() < REMEMBERED {
        return;
    }
    let old = now - millis(FORGET_AFTER);
    map.retain(|_, s| s.last > old || s.locked_until.is_some_and(|u| u > now));
    // Still full (a flood of fresh names): forget the ones not locked.
    if map.len() >= REMEMBERED {
        map.retain(|_, s| s.locked_until.is_some_and(|u| u > now));
    }
}

impl Tracker {
    /// May `user` from `client` try a password now?
    pub fn verdict(&self, user: &str, client: Option<IpAddr>, now: TimestampMs) -> Verdict {
        let fresh = |s: &Strikes| now - s.last < millis(FORGET_AFTER);
        if let Some(s) = self.users.get(user) {
            if let Some(until) = s.locked_until.filter(|u| *u > now) {
                return Verdict::Locked { until };
            }
            let next = s.next_try(1);
            if fresh(s) && next > now {
                return Verdict::Throttled {
                    until: next,
                    by: "user",
                };
            }
        }
        if let Some(s) = client.and_then(|c| self.clients.get(&c)) {
            let next = s.next_try(FREE_PER_CLIENT);
            if fresh(s) && next > now {
                return Verdict::Throttled {
                    until: next,
                    by: "client",
                };
            }
        }
        Verdict::Check
    }

    /// A wrong password for `user` from `client`.
    pub fn failed(&mut self, user: &str, client: Option<IpAddr>, now: TimestampMs) -> Failure {
        self.refused(now);
        forget(&mut self.users, now);
        let s = self.users.entry(user.to_string()).or_default();
        if now - s.last >= millis(FORGET_AFTER) || s.locked_until.is_some_and(|u| u <= now) {
            *s = Strikes::default();
        }
        s.failures += 1;
        s.last = now;
        let mut locked = None;
        if s.failures >= LOCK_AFTER {
            let until = now + millis(LOCK_FOR);
            s.locked_until = Some(until);
            s.failures = 0;
            locked = Some(until);
        }
        if let Some(c) = client {
            forget(&mut self.clients, now);
            let s = self.clients.entry(c).or_default();
            if now - s.last >= millis(FORGET_AFTER) {
                *s = Strikes::default();
            }
            s.failures += 1;
            s.last = now;
        }
        Failure { locked }
    }

    /// A good password: the user name's failures are forgotten (the address's are not,
    /// so one known account does not reset the address's other guesses).
    pub fn succeeded(&mut self, user: &str) {
        self.users.remove(user);
    }

    /// Counts a refusal (wrong password, throttled, locked, or no room to check).
    pub fn refused(&mut self, now: TimestampMs) {
        self.refused.push_back(now);
        self.prune(now);
    }

    fn prune(&mut self, now: TimestampMs) {
        let start = now - millis(SECURITY_WINDOW);
        while self.refused.front().is_some_and(|t| *t <= start) {
            self.refused.pop_front();
        }
        // A flood counts far past any threshold; remembering more tells nothing.
        while self.refused.len() > REMEMBERED {
            self.refused.pop_front();
        }
    }

    /// Refusals in the window ending `now`.
    pub fn refused_recently(&mut self, now: TimestampMs) -> usize {
        self.prune(now);
        self.refused.len()
    }
}

/// No room to check a password now: the sign-in is answered 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

/// Where the guard writes its readings: the store writer, the sensor's index, and the
/// daemon's telemetry, which counts them among the monitor's readings.
struct Feed {
    handle: CommitHandle,
    sensor: usize,
    telemetry: Option<Arc<Telemetry>>,
}

/// The sign-in guard the API shares.
pub struct Guard {
    checks: Arc<Semaphore>,
    waiting: AtomicUsize,
    tracker: Mutex<Tracker>,
    /// Where refusals are reported, in the daemon.
    feed: std::sync::OnceLock<Feed>,
    /// When the count was last written, and what it was.
    written: Mutex<Option<(TimestampMs, usize)>>,
}

impl Default for Guard {
    fn default() -> Self {
        Guard {
            checks: Arc::new(Semaphore::new(CHECKS_AT_ONCE)),
            waiting: AtomicUsize::new(0),
            tracker: Mutex::new(Tracker::default()),
            feed: std::sync::OnceLock::new(),
            written: Mutex::new(None),
        }
    }
}

/// How often the count of refusals is written while it changes (and while it is not
/// zero, so the warning clears when the window has passed).
pub const REPORT_EVERY: Duration = Duration::from_secs(5);

impl Guard {
    /// Runs `f` on the policy.
    pub fn with<T>(&self, f: impl FnOnce(&mut Tracker) -> T) -> T {
        f(&mut self.tracker.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Writes the count of refusals as readings of `sensor` through `handle`.
    pub fn report_to(&self, handle: CommitHandle, sensor: usize, telemetry: Option<Arc<Telemetry>>) {
        let _ = self.feed.set(Feed {
            handle,
            sensor,
            telemetry,
        });
    }

    /// Writes the count of refusals now when it crossed the threshold, or when it
    /// changed and [`REPORT_EVERY`] has passed since the last reading (`tick`: called
    /// periodically, writes a changed or non-zero count).
    pub async fn report(&self, now: TimestampMs, tick: bool) {
        let Some(Feed {
            handle,
            sensor,
            telemetry,
        }) = self.feed.get()
        else {
            return;
        };
        let count = self.with(|t| t.refused_recently(now));
        let due = {
            let mut w = self.written.lock().unwrap_or_else(PoisonError::into_inner);
            let threshold = SECURITY_THRESHOLD as usize;
            let due = match *w {
                None => count > 0 || tick,
                Some((at, last)) => {
                    let crossed = (last <= threshold) != (count <= threshold);
                    let changed = last != count;
                    crossed || (changed && (tick || now - at >= millis(REPORT_EVERY))) || (tick && count > 0)
                }
            };
            if due {
                *w = Some((now, count));
            }
            due
        };
        if due {
            let readings = vec![crate::model::Reading::good(*sensor, now, count as f64)];
            if let Some(t) = telemetry {
                t.count_readings(crate::telemetry::Source::Monitor, &readings);
            }
            if handle.send(Batch::new(readings)).await.is_err() {
                tracing::debug!("sign-in guard: the store writer has stopped");
            }
        }
    }

    /// A turn to check a password: at once when one of [`CHECKS_AT_ONCE`] is free,
    /// after waiting when fewer than [`WAITING_AT_MOST`] wait, else [`Busy`].
    pub async fn turn(&self) -> Result<OwnedSemaphorePermit, Busy> {
        if let Ok(p) = self.checks.clone().try_acquire_owned() {
            return Ok(p);
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= WAITING_AT_MOST {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(Busy);
        }
        let got = tokio::time::timeout(WAIT_FOR_CHECK, self.checks.clone().acquire_owned()).await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        match got {
            Ok(Ok(p)) => Ok(p),
            _ => Err(Busy),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));

    #[test]
    fn a_user_name_waits_longer_after_each_failure_then_is_locked() {
        let mut t = Tracker::default();
        let mut now = 1_000_000;
        assert_eq!(t.verdict("ana", None, now), Verdict::Check);
        let mut waits = Vec::new();
        for _ in 1..LOCK_AFTER {
            assert_eq!(t.failed("ana", None, now), Failure { locked: None });
            match t.verdict("ana", None, now) {
                Verdict::Throttled { until, by: "user" } => {
                    waits.push(until - now);
                    now = until;
                }
                Verdict::Check => {
                    waits.push(0);
                }
                other => panic!("expected throttled, found {other:?}"),
            }
            assert_eq!(t.verdict("ana", None, now), Verdict::Check);
        }
        assert_eq!(waits, vec![0, 1_000, 2_000, 4_000]);
        let f = t.failed("ana", None, now);
        assert_eq!(f.locked, Some(now + millis(LOCK_FOR)));
        assert_eq!(
            t.verdict("ana", None, now + 60_000),
            Verdict::Locked {
                until: now + millis(LOCK_FOR)
            }
        );
        // Another name is not affected; the lock ends after its time.
        assert_eq!(t.verdict("bob", None, now), Verdict::Check);
        assert_eq!(t.verdict("ana", None, now + millis(LOCK_FOR)), Verdict::Check);
    }

    #[test]
    fn an_address_guessing_many_names_is_slowed_down() {
        let mut t = Tracker::default();
        let now = 5_000_000;
        for i in 0..FREE_PER_CLIENT {
            assert_eq!(t.verdict(&format!("u{i}"), ME, now), Verdict::Check);
            t.failed(&format!("u{i}"), ME, now);
        }
        assert_eq!(t.verdict("fresh", ME, now), Verdict::Check, "a few mistakes are free");
        t.failed("fresh", ME, now);
        assert_eq!(
            t.verdict("another", ME, now),
            Verdict::Throttled {
                until: now + 1_000,
                by: "client"
            }
        );
        assert_eq!(t.verdict("another", None, now), Verdict::Check, "another address");
    }

    #[test]
    fn a_good_password_forgets_the_names_failures() {
        let mut t = Tracker::default();
        t.failed("ana", None, 0);
        t.failed("ana", None, 10_000);
        t.succeeded("ana");
        assert_eq!(t.verdict("ana", None, 10_000), Verdict::Check);
    }

    #[test]
    fn refusals_are_counted_over_the_window() {
        let mut t = Tracker::default();
        for i in 0..30 {
            t.refused(i * 1_000);
        }
        assert_eq!(t.refused_recently(30_000), 30);
        assert_eq!(t.refused_recently(millis(SECURITY_WINDOW) + 10_000), 19);
        assert_eq!(t.refused_recently(millis(SECURITY_WINDOW) * 2), 0);
    }

    #[test]
    fn a_flood_of_fresh_names_is_forgotten_not_kept() {
        let mut t = Tracker::default();
        for i in 0..(REMEMBERED * 3) {
            t.failed(&format!("n{i}"), None, 1_000);
        }
        assert!(t.users.len() <= REMEMBERED, "{}", t.users.len());
        assert!(t.refused.len() <= REMEMBERED);
    }

    #[tokio::test]
    async fn only_a_few_checks_run_and_a_few_wait() {
        let g = Arc::new(Guard::default());
        let mut held = Vec::new();
        for _ in 0..CHECKS_AT_ONCE {
            held.push(g.turn().await.expect("a free turn"));
        }
        let mut waiters = Vec::new();
        for _ in 0..WAITING_AT_MOST {
            let g = g.clone();
            waiters.push(tokio::spawn(async move { g.turn().await.map(drop) }));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(g.turn().await.map(drop), Err(Busy), "no room left to wait");
        drop(held);
        for w in waiters {
            assert_eq!(w.await.expect("join"), Ok(()));
        }
    }
}
