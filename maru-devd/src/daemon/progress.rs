//! Shows the progress of long devdax work (formatting a range, recovering a pool with its
//! data verified): a log line every few seconds ("recovering pool p: 512/2048 index
//! records, 1.2 GiB verified at 0.6 GiB/s"), an `indicatif` bar instead when stderr is a
//! terminal, and, while the daemon starts under systemd, `EXTEND_TIMEOUT_USEC` as the work
//! advances so a long verification is not killed for taking long.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use maru_fs::devdax::{Progress, ProgressHook, Step, Work};

use super::notify;
use crate::logging::{self, Style};
use crate::units::human;

/// How often a progress line is logged (without a terminal).
const LINE_EVERY: Duration = Duration::from_secs(2);
/// How often systemd is asked for more start time while the work advances.
const EXTEND_EVERY: Duration = Duration::from_secs(10);

/// One pool's long work, as shown to the operator.
struct Shown {
    pool: String,
    /// A bar on the terminal; `None`: log lines.
    bar: Option<ProgressBar>,
    state: Mutex<State>,
}

/// What [`Shown`] remembers between steps.
struct State {
    /// When the current work started.
    started: Instant,
    /// When a line was last logged.
    last_line: Instant,
    /// When systemd was last asked for more time.
    last_extend: Instant,
}

/// A progress hook for pool `pool` (a devdax pool being opened or formatted).
pub fn hook(pool: &str) -> ProgressHook {
    let terminal = std::io::stderr().is_terminal() && logging::style() != Style::Journal;
    let bar = terminal.then(|| {
        let bar = ProgressBar::hidden();
        let style = ProgressStyle::with_template("{msg} [{bar:30}] {percent}% ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style.progress_chars("=> "));
        bar
    });
    let now = Instant::now();
    ProgressHook(Arc::new(Shown {
        pool: pool.to_string(),
        bar,
        state: Mutex::new(State {
            started: now,
            last_line: now,
            last_extend: now,
        }),
    }))
}

/// The line for `step` of pool `pool`, `elapsed` into the work.
fn line(pool: &str, step: &Step, elapsed: Duration) -> String {
    let rate = |bytes: u64| {
        let secs = elapsed.as_secs_f64();
        if secs > 0.0 {
            format!("{}/s", human((bytes as f64 / secs) as u64))
        } else {
            "-".to_string()
        }
    };
    match step.work {
        Work::Format => format!(
            "formatting pool {pool}: {} of {} of index cleared",
            human(step.done),
            human(step.total)
        ),
        Work::Recover if step.bytes > 0 => format!(
            "verifying pool {pool}: {}/{} index records, {} verified at {}",
            step.done,
            step.total,
            human(step.bytes),
            rate(step.bytes)
        ),
        Work::Recover => format!(
            "recovering pool {pool}: {}/{} index records",
            step.done, step.total
        ),
    }
}

impl Progress for Shown {
    fn report(&self, step: Step) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if step.done == 0 {
            st.started = now;
            st.last_line = now;
            if let Some(bar) = &self.bar {
                bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                bar.reset();
                bar.set_length(step.total.max(1));
            }
        }
        let text = line(&self.pool, &step, now - st.started);
        let end = step.done >= step.total;
        if now - st.last_extend >= EXTEND_EVERY {
            st.last_extend = now;
            notify::extend_timeout(super::START_EXTENSION);
        }
        match &self.bar {
            Some(bar) => {
                bar.set_message(text.clone());
                bar.set_position(step.done);
                if end {
                    bar.finish_and_clear();
                    log::info!("{text}");
                }
            }
            None if end && now - st.started >= LINE_EVERY => log::info!("{text}"),
            None if step.done > 0 && now - st.last_line >= LINE_EVERY => {
                st.last_line = now;
                log::info!("{text}");
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_say_what_how_far_and_how_fast() {
        let step = Step {
            work: Work::Recover,
            done: 512,
            total: 2048,
            bytes: 3 << 30,
        };
        assert_eq!(
            line("p", &step, Duration::from_secs(2)),
            format!(
                "verifying pool p: 512/2048 index records, {} verified at {}/s",
                human(3 << 30),
                human(3 << 29)
            )
        );
        let step = Step { bytes: 0, ..step };
        assert_eq!(
            line("p", &step, Duration::from_secs(2)),
            "recovering pool p: 512/2048 index records"
        );
    }
}
