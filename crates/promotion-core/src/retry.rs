//! Retries with exponential backoff and full jitter, honouring `Retry-After`.
//!
//! Full jitter (each delay uniform in `[0, min(max, min * 2^n)]`) drawn from the process's
//! OS-seeded generator: backon's own jitter only adds to each delay, and without its random
//! source it draws the same sequence in every process, so many Lambdas failing together would
//! retry at the same instants.

use crate::registry::RegistryError;
use backon::{ExponentialBuilder, Retryable};
use std::future::Future;
use std::time::Duration;

/// How transient registry failures are retried. Injectable so tests can shrink the delays.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts after the first one.
    pub max_retries: usize,
    /// First delay (before jitter).
    pub min_delay: Duration,
    /// Cap on any delay, `Retry-After` included.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// Five retries from 250 ms up to 20 s: about a minute in the worst case, short enough
    /// for a Lambda, long enough to ride out a throttling burst.
    fn default() -> Self {
        RetryPolicy {
            max_retries: 5,
            min_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(20),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        RetryPolicy {
            max_retries: 0,
            ..Self::default()
        }
    }

    /// Run `op` until it succeeds, fails with a non-retryable error, or retries run out.
    pub async fn run<T, F, Fut>(&self, what: &str, op: F) -> Result<T, RegistryError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, RegistryError>>,
    {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.max_retries);
        let cap = self.max_delay;
        op.retry(backoff)
            .sleep(tokio::time::sleep)
            .when(RegistryError::is_retryable)
            // A registry that says when to come back is believed (within our cap); `None`
            // means the backoff is exhausted and must stay so.
            .adjust(move |e, delay| {
                delay.map(|d| {
                    e.retry_after()
                        .map_or_else(|| full_jitter(d), |ra| ra.min(cap))
                })
            })
            .notify(|e, delay| tracing::debug!(operation = what, error = %e, ?delay, "retrying"))
            .await
    }
}

/// A delay uniform in `[0, bound]`.
fn full_jitter(bound: Duration) -> Duration {
    use rand::Rng as _;
    let nanos = u64::try_from(bound.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rand::rng().random_range(0..=nanos))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn transient(retry_after: Option<Duration>) -> RegistryError {
        RegistryError::Transient {
            what: "x".into(),
            detail: "503".into(),
            retry_after,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_transient_errors_then_succeeds() {
        let calls = AtomicUsize::new(0);
        let out = RetryPolicy::default()
            .run("t", || async {
                if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                    Err(transient(None))
                } else {
                    Ok(7)
                }
            })
            .await;
        assert_eq!(out.unwrap(), 7);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    /// The waits of one run that always fails, as the paused clock saw them.
    async fn waits(policy: RetryPolicy) -> Vec<Duration> {
        let last = std::sync::Mutex::new(tokio::time::Instant::now());
        let seen = std::sync::Mutex::new(Vec::new());
        let _: Result<(), _> = policy
            .run("t", || async {
                #[allow(clippy::unwrap_used)]
                {
                    let now = tokio::time::Instant::now();
                    let mut l = last.lock().unwrap();
                    seen.lock().unwrap().push(now - *l);
                    *l = now;
                }
                Err(transient(None))
            })
            .await;
        #[allow(clippy::unwrap_used)]
        seen.into_inner().unwrap().into_iter().skip(1).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn delays_are_full_jitter_and_differ_between_runs() {
        let policy = RetryPolicy {
            max_retries: 6,
            min_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(8),
        };
        let a = waits(policy).await;
        let b = waits(policy).await;
        assert_eq!(a.len(), 6);
        for (n, d) in a.iter().chain(&b).enumerate() {
            let bound = Duration::from_secs(1 << (n % 6).min(3));
            assert!(*d <= bound, "wait {n}: {d:?} over {bound:?}");
        }
        assert_ne!(
            a, b,
            "two processes failing together must not retry in lockstep"
        );
        // Full jitter reaches below the exponential floor (backon's jitter only adds to it):
        // over 20 runs some first wait is under half its 1 s bound (a miss is 2^-20).
        let mut firsts = Vec::new();
        for _ in 0..20 {
            let one = RetryPolicy {
                max_retries: 1,
                ..policy
            };
            firsts.push(waits(one).await[0]);
        }
        assert!(
            firsts.iter().any(|d| *d < Duration::from_millis(500)),
            "{firsts:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn does_not_retry_permanent_errors() {
        let calls = AtomicUsize::new(0);
        let out: Result<(), _> = RetryPolicy::default()
            .run("t", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(RegistryError::NotFound { what: "m".into() })
            })
            .await;
        assert!(matches!(out, Err(RegistryError::NotFound { .. })));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn honours_retry_after_and_gives_up_after_max_retries() {
        let calls = AtomicUsize::new(0);
        let start = tokio::time::Instant::now();
        let policy = RetryPolicy {
            max_retries: 2,
            min_delay: Duration::from_millis(1),
            max_delay: Duration::from_secs(30),
        };
        let out: Result<(), _> = policy
            .run("t", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(transient(Some(Duration::from_secs(7))))
            })
            .await;
        assert!(out.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        // Two waits of exactly the registry's Retry-After, not the 1 ms backoff.
        assert_eq!(start.elapsed(), Duration::from_secs(14));
    }
}
