//! Waiting for the scan: one schedule and one poll loop for everything that waits on the gate.
//!
//! The scan-gate Lambda polls once per invocation and lets the state machine's Wait state do the
//! sleeping; `promote gate` and `promote run` sleep in-process. All three decide with
//! [`Schedule::after`] when to poll again and when to give up, so a policy's `max_wait_seconds`
//! means the same everywhere; the in-process callers sleep in [`repeat`], on the [`Clock`] port.

use crate::clock::Clock;
use std::future::Future;
use std::time::Duration;

/// How often to poll and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Seconds between polls.
    pub poll_seconds: u64,
    /// After this many seconds of waiting, a still-pending poll gives up.
    pub max_wait_seconds: u64,
}

/// What to do after a poll that was still pending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Poll again after this long.
    Wait(Duration),
    /// The next wait would pass the maximum: give up, having waited this long.
    GiveUp {
        /// Seconds waited so far.
        waited_seconds: u64,
    },
}

impl Schedule {
    /// After a pending poll that followed `earlier_polls` others (each followed by one wait).
    pub fn after(&self, earlier_polls: u32) -> Next {
        let waited = u64::from(earlier_polls) * self.poll_seconds;
        if waited + self.poll_seconds > self.max_wait_seconds {
            Next::GiveUp {
                waited_seconds: waited,
            }
        } else {
            Next::Wait(Duration::from_secs(self.poll_seconds))
        }
    }
}

/// One poll's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Poll<T> {
    /// Decided.
    Ready(T),
    /// Not yet: poll again after `wait`.
    Pending {
        /// How long to sleep first.
        wait: Duration,
    },
}

/// Call `poll` until it is ready or fails, sleeping on `clock` between calls. Giving up is the
/// poll's decision (through [`Schedule::after`]), so the loop itself never runs unbounded
/// unless its poll never gives up.
pub async fn repeat<T, E, F, Fut>(clock: &dyn Clock, mut poll: F) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Poll<T>, E>>,
{
    loop {
        match poll().await? {
            Poll::Ready(t) => return Ok(t),
            Poll::Pending { wait } => clock.sleep(wait).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::SystemTime;

    #[test]
    fn the_schedule_waits_until_the_next_wait_would_pass_the_maximum() {
        let s = Schedule {
            poll_seconds: 30,
            max_wait_seconds: 90,
        };
        let wait = Next::Wait(Duration::from_secs(30));
        assert_eq!([s.after(0), s.after(1), s.after(2)], [wait; 3]);
        assert_eq!(s.after(3), Next::GiveUp { waited_seconds: 90 });
        let none = Schedule {
            poll_seconds: 15,
            max_wait_seconds: 0,
        };
        assert_eq!(none.after(0), Next::GiveUp { waited_seconds: 0 });
    }

    /// A clock that records sleeps instead of sleeping.
    #[derive(Default)]
    struct Recording(Mutex<Vec<Duration>>);

    impl Clock for Recording {
        fn now(&self) -> SystemTime {
            SystemTime::UNIX_EPOCH
        }
        fn sleep(&self, d: Duration) -> crate::clock::Sleep<'_> {
            self.0.lock().unwrap_or_else(|e| e.into_inner()).push(d);
            Box::pin(async {})
        }
    }

    #[tokio::test]
    async fn repeat_sleeps_on_the_clock_between_pending_polls() {
        let clock = Recording::default();
        let mut n = 0;
        let out: Result<u32, String> = repeat(&clock, || {
            n += 1;
            let r = if n < 3 {
                Poll::Pending {
                    wait: Duration::from_secs(u64::from(n)),
                }
            } else {
                Poll::Ready(n)
            };
            async move { Ok(r) }
        })
        .await;
        assert_eq!(out, Ok(3));
        let sleeps = clock.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        assert_eq!(sleeps, [Duration::from_secs(1), Duration::from_secs(2)]);
        let failed: Result<u32, &str> = repeat(&clock, || async { Err("boom") }).await;
        assert_eq!(failed, Err("boom"));
    }
}
