//! Time as a port: token expiry, allowlist expiry and the gate's poll loop are testable without
//! waiting.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

/// What [`Clock::sleep`] returns.
pub type Sleep<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Tells the time, and waits.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> SystemTime;

    /// Wait `d` (the runtime's timer unless a test clock says otherwise).
    fn sleep(&self, d: Duration) -> Sleep<'_> {
        Box::pin(tokio::time::sleep(d))
    }
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}
