//! Progress on a terminal, silence elsewhere.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use promotion_core::Digest;
use promotion_core::copy::{BlobOutcome, CopyObserver};
use std::io::IsTerminal;

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

/// `1.5 MiB`.
pub fn human_bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}
