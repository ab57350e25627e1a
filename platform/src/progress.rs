//! Progress of long work (rebuilds, replays): a live bar with events/s on a terminal, a plain line every two
//! seconds otherwise (logs, CI).

use std::{
    io::IsTerminal,
    time::{Duration, Instant},
};

use indicatif::{ProgressBar, ProgressStyle};

/// Shows how far a long piece of work is.
#[derive(Debug)]
pub struct Progress {
    label: String,
    bar: Option<ProgressBar>,
    started: Instant,
    last_line: Instant,
}

impl Progress {
    pub fn start(label: impl Into<String>) -> Self {
        let label = label.into();
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix} [{elapsed_precise}] {bar:40.cyan/blue} {human_pos}/{human_len} events \
                     ({per_sec}, eta {eta})",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            );
            bar.set_prefix(label.clone());
            bar
        });
        let started = Instant::now();
        Self { label, bar, started, last_line: started }
    }

    /// `done` of `total` events so far.
    pub fn update(&mut self, done: u64, total: u64) {
        match &self.bar {
            Some(bar) => {
                bar.set_length(total.max(done));
                bar.set_position(done);
            }
            None if self.last_line.elapsed() >= Duration::from_secs(2) => {
                self.last_line = Instant::now();
                eprintln!(
                    "{}: {done}/{total} events ({:.0} events/s)",
                    self.label,
                    rate(done, self.started.elapsed())
                );
            }
            None => {}
        }
    }

    /// Clears the bar; the caller prints the outcome.
    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Progress of work in stages, one after the other: a [`Progress`] per stage, the previous one finished when the
/// next begins.
#[derive(Debug, Default)]
pub struct Stages {
    current: Option<(String, Progress)>,
}

impl Stages {
    /// `done` of `total` in the stage called `label`, starting that stage if it is new.
    pub fn update(&mut self, label: &str, done: u64, total: u64) {
        if self.current.as_ref().is_none_or(|(current, _)| current != label) {
            self.finish();
            self.current = Some((label.to_owned(), Progress::start(label)));
        }
        if let Some((_, progress)) = &mut self.current {
            progress.update(done, total);
        }
    }

    /// Clears the bar of the stage in progress.
    pub fn finish(&mut self) {
        if let Some((_, progress)) = self.current.take() {
            progress.finish();
        }
    }
}

/// Events per second.
pub fn rate(events: u64, elapsed: Duration) -> f64 {
    events as f64 / elapsed.as_secs_f64().max(f64::EPSILON)
}
