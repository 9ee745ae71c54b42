//! Progress on a terminal, silence elsewhere.

use crate::output::{Failure, failed};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use promotion_core::copy::{BlobOutcome, CopyObserver};
use promotion_core::error::Classify;
use promotion_core::{Digest, ImageRef};
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Instant;

/// One bar for the bytes of a copy. Blobs that need no streaming count as done at once, so
/// the bar ends full whether a copy streamed everything or nothing.
pub struct Bar(ProgressBar);

impl Bar {
    /// A hidden bar unless stderr is a terminal.
    pub fn new(message: &str) -> Self {
        let target = if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(0), target);
        if let Ok(style) = ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(message.to_owned());
        Bar(bar)
    }

    /// Remove the bar.
    pub fn finish(&self) {
        self.0.finish_and_clear();
    }
}

impl CopyObserver for Bar {
    fn planned(&self, _blobs: usize, bytes: u64) {
        self.0.inc_length(bytes);
    }
    fn streamed(&self, bytes: u64) {
        self.0.inc(bytes);
    }
    fn blob_done(&self, _digest: &Digest, size: u64, outcome: BlobOutcome) {
        if outcome != BlobOutcome::Streamed {
            self.0.inc(size);
        }
    }
}

/// Run the copy-like `operation` from `src` to `dst` with a bar. A failure is logged at debug
/// (the error line is the canonical line then), with the time since `started` when given.
pub async fn transfer<T, E, F>(
    operation: &'static str,
    src: &ImageRef,
    dst: &ImageRef,
    started: Option<Instant>,
    run: impl FnOnce(Arc<Bar>) -> F,
) -> Result<T, Failure>
where
    F: Future<Output = Result<T, E>>,
    E: Classify + std::fmt::Display,
{
    let bar = Arc::new(Bar::new(&format!("{src} → {dst}")));
    let result = run(bar.clone()).await;
    bar.finish();
    result.map_err(|e| {
        let duration_ms = started.map(|s| s.elapsed().as_millis() as u64);
        failed!(e, { operation, source = %src, destination = %dst, }, { duration_ms, });
        Failure::from(e)
    })
}

/// The summary's blobs line of a copy-like report (`copy`, `annotate`):
/// `  blobs      3 streamed (1.5 MiB), 0 mounted, 2 already present`.
macro_rules! blobs_line {
    ($r:expr) => {
        format!(
            "  blobs      {} streamed ({}), {} mounted, {} already present",
            $r.counts.blobs_streamed,
            $crate::progress::human_bytes($r.counts.bytes_streamed),
            $r.counts.blobs_mounted,
            $r.counts.blobs_skipped
        )
    };
}
pub(crate) use blobs_line;

/// `1.5 MiB`.
pub fn human_bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}
