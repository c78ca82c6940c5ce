//! Progress of one recipe: an indicatif spinner (then a byte bar while importing) on a
//! terminal, plain lines on stderr otherwise, so CI logs still say what took the time.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

pub(crate) struct Step {
    pb: ProgressBar,
    /// indicatif hides itself when stderr is not a terminal; then we print plain lines.
    plain: bool,
}

impl Step {
    pub(crate) fn new(recipe: &str) -> Step {
        let pb = ProgressBar::new_spinner();
        pb.set_style(
            ProgressStyle::with_template("{spinner} {prefix:.bold} {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        pb.set_prefix(recipe.to_string());
        let plain = pb.is_hidden();
        if !plain {
            pb.enable_steady_tick(Duration::from_millis(120));
        }
        Step { pb, plain }
    }

    /// Transient detail (the latest mmdebstrap line); terminal only.
    pub(crate) fn set_message(&self, msg: &str) {
        self.pb.set_message(msg.to_string());
    }

    /// A line worth keeping in the log.
    pub(crate) fn say(&self, line: &str) {
        if self.plain {
            eprintln!("{line}");
        } else {
            self.pb.println(line);
        }
    }

    /// Switches to a byte bar for streaming `total` bytes.
    pub(crate) fn start_bytes(&self, total: u64, msg: &str) {
        self.pb.set_style(
            ProgressStyle::with_template(
                "{spinner} {prefix:.bold} {msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        // reset() also restarts the clock, so the rate is not averaged over the build.
        self.pb.reset();
        self.pb.set_length(total);
        self.pb.set_message(msg.to_string());
    }

    /// A handle for counting bytes from inside a body stream.
    pub(crate) fn counter(&self) -> ProgressBar {
        self.pb.clone()
    }

    pub(crate) fn finish(&self) {
        self.pb.finish_and_clear();
    }
}

impl Drop for Step {
    fn drop(&mut self) {
        // An error path must not leave a spinner ticking over the error message.
        if !self.pb.is_finished() {
            self.pb.finish_and_clear();
        }
    }
}
