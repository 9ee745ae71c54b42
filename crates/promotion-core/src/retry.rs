//! Retries with exponential backoff and full jitter, honouring `Retry-After`, within a total
//! time budget.
//!
//! One layer retries, never two nested: the registry client retries its single requests
//! (manifests, HEADs, mounts, tag and referrer listings); a blob transfer (GET and upload) is
//! attempted once by the client and retried whole by the copy engine. The budget bounds the
//! retrying: no attempt starts once it has passed (nor a wait that would end after it), so an
//! operation ends within `budget` plus one attempt, whatever the registry answers
//! (`promotion_registry::HttpConfig` bounds an attempt: first byte, minimum throughput).
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
    /// No retry starts (and no wait is begun that would end) later than this after the first
    /// attempt started.
    pub budget: Duration,
}

impl Default for RetryPolicy {
    /// Up to five retries from 250 ms, each wait at most 10 s, none starting after 25 s: long
    /// enough to ride out a throttling burst, short enough that a registry that always fails
    /// ends an operation within 30 s (`budget` plus one quick answer).
    fn default() -> Self {
        RetryPolicy {
            max_retries: 5,
            min_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(10),
            budget: Duration::from_secs(25),
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
        let budget = self.budget;
        let started = tokio::time::Instant::now();
        let attempts = std::sync::atomic::AtomicUsize::new(0);
        let mut op = op;
        let counted = || {
            attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            op()
        };
        let out = counted
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(RegistryError::is_retryable)
            // A registry that says when to come back is believed (within our cap); `None`
            // means the backoff is exhausted and must stay so; a wait that would end after the
            // budget ends the retrying instead.
            .adjust(move |e, delay| {
                delay
                    .map(|d| {
                        e.retry_after()
                            .map_or_else(|| full_jitter(d), |ra| ra.min(cap))
                    })
                    .filter(|d| started.elapsed() + *d <= budget)
            })
            .notify(|e, delay| tracing::debug!(operation = what, error = %e, ?delay, "retrying"))
            .await;
        // One line says it all: what failed, why, and that retrying did not help.
        let n = attempts.load(std::sync::atomic::Ordering::Relaxed);
        out.map_err(|mut e| {
            if n > 1
                && let RegistryError::Transient { detail, .. } = &mut e
            {
                detail.push_str(&format!(
                    " (gave up after {n} attempts in {:.1} s)",
                    started.elapsed().as_secs_f64()
                ));
            }
            e
        })
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
            budget: Duration::from_secs(3600),
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
            budget: Duration::from_secs(3600),
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

    #[tokio::test(start_paused = true)]
    async fn no_retry_starts_after_the_budget() {
        let calls = AtomicUsize::new(0);
        let start = tokio::time::Instant::now();
        let policy = RetryPolicy {
            max_retries: 100,
            min_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            budget: Duration::from_secs(25),
        };
        // Every attempt takes 8 s and then fails; Retry-After asks for 5 s each time.
        let out: Result<(), _> = policy
            .run("t", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(8)).await;
                Err(transient(Some(Duration::from_secs(5))))
            })
            .await;
        assert!(out.is_err());
        // Attempts start at 0, 13 s; a third would start at 26 s, after the budget.
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(start.elapsed(), Duration::from_secs(21));
    }

    #[test]
    fn the_default_budget_ends_an_always_failing_operation_within_30_s() {
        let p = RetryPolicy::default();
        // The waits before the budget cuts them: each at most min * 2^n, capped.
        let bound: Duration = (0..p.max_retries)
            .map(|n| (p.min_delay * 2u32.pow(n as u32)).min(p.max_delay))
            .sum();
        assert!(bound <= p.budget, "{bound:?}");
        // The last attempt starts within the budget; a registry that answers (500, 429) at once
        // ends the operation within 30 s even when it asks for the longest Retry-After.
        assert!(p.budget + Duration::from_secs(5) <= Duration::from_secs(30));
        assert!(p.max_delay < p.budget);
    }
}
