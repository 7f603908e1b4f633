//! Reconnect backoff with jitter, used by every connection loop.

use std::time::Duration;

/// Exponential backoff: `initial`, doubling up to `max`, each delay jittered by ±20 % so
/// devices and brokers restarted together are not hammered in step.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max,
            next: initial,
        }
    }

    /// The delay before the next attempt; each call lengthens the following one.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        let factor = 0.8 + fastrand::f64() * 0.4;
        base.mul_f64(factor)
    }

    /// After a success the next failure starts from `initial` again.
    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_within_the_jitter() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(8));
        let bases = [1.0, 2.0, 4.0, 8.0, 8.0];
        for base in bases {
            let d = b.next_delay().as_secs_f64();
            assert!(
                d >= base * 0.8 - 1e-9 && d <= base * 1.2 + 1e-9,
                "{d} not within 20% of {base}"
            );
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_secs_f64(1.2));
    }
}
