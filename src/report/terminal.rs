//! The terminal's view of a run: executor events rendered on stderr — progress bars on a
//! terminal (bytes of a base backup, or a spinner with the deadline), plain lines elsewhere
//! (CI logs, pipes), each state change once. Events quote the cluster and hosts (Patroni's
//! answers, command output, observed states): every line and bar message is made printable.

use std::io::Write;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{Depth, depth, line};
use crate::exec::{Event, EventSink};
use crate::ui::printable;

pub struct TerminalSink {
    tty: bool,
    /// Where lines go while no bar is drawn: stderr, or a buffer in tests.
    out: Box<dyn Write>,
    bar: Option<ProgressBar>,
    bar_has_length: bool,
    last_plain_progress: Option<Instant>,
}

impl TerminalSink {
    pub fn new(tty: bool) -> Self {
        Self::writing_to(tty, Box::new(std::io::stderr()))
    }

    fn writing_to(tty: bool, out: Box<dyn Write>) -> Self {
        TerminalSink {
            tty,
            out,
            bar: None,
            bar_has_length: false,
            last_plain_progress: None,
        }
    }

    /// One line, above the bar when one is drawn. A line that cannot be written is lost: the
    /// journal, not the terminal, is the run's record.
    fn line(&mut self, text: &str) {
        let text = printable(text);
        match &self.bar {
            Some(bar) => bar.println(text),
            None => {
                let _ = writeln!(self.out, "{text}");
            }
        }
    }

    fn finish_bar(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        self.bar_has_length = false;
    }

    fn progress(
        &mut self,
        detail: &str,
        elapsed_ms: u64,
        timeout_ms: u64,
        done: Option<u64>,
        total: Option<u64>,
    ) {
        if !self.tty {
            // Plain output: state changes are printed as they happen; bytes copied every 2 s;
            // otherwise a heartbeat every 10 s.
            let every = if done.is_some() {
                Duration::from_secs(2)
            } else {
                Duration::from_secs(10)
            };
            let due = self
                .last_plain_progress
                .is_none_or(|last| last.elapsed() >= every);
            if due {
                self.last_plain_progress = Some(Instant::now());
                self.line(&format!(
                    "      … {}s of {}s: {detail}",
                    elapsed_ms / 1000,
                    timeout_ms / 1000
                ));
            }
            return;
        }
        let bar = self.bar.get_or_insert_with(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("      {spinner} [{elapsed_precise}] {wide_msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        if let (Some(done), Some(total)) = (done, total) {
            if !self.bar_has_length {
                bar.set_style(
                    ProgressStyle::with_template("      [{elapsed_precise}] {bar:30} {bytes}/{total_bytes} ({eta}) {wide_msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                self.bar_has_length = true;
            }
            bar.set_length(total);
            bar.set_position(done.min(total));
        }
        let deadline = format!(
            "deadline in {}s",
            timeout_ms.saturating_sub(elapsed_ms) / 1000
        );
        bar.set_message(printable(&format!("{detail} ({deadline})")).into_owned());
    }
}

impl EventSink for TerminalSink {
    fn emit(&mut self, event: &Event) {
        match event {
            Event::Observed { observed, .. } if self.tty => {
                if let Some(bar) = &self.bar {
                    bar.set_message(printable(observed).into_owned());
                }
            }
            Event::Progress {
                detail,
                elapsed_ms,
                timeout_ms,
                done_bytes,
                total_bytes,
                ..
            } => self.progress(detail, *elapsed_ms, *timeout_ms, *done_bytes, *total_bytes),
            _ => {
                if matches!(
                    event,
                    Event::StepStarted { .. }
                        | Event::StepSucceeded { .. }
                        | Event::StepFailed { .. }
                        | Event::RunFinished { .. }
                ) {
                    self.finish_bar();
                }
                let indent = match depth(event) {
                    Depth::Run => "pgha: ",
                    Depth::Step => "  ",
                    Depth::WithinStep => "      ",
                };
                self.line(&format!("{indent}{}", line(event)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::io::Write;
    use std::rc::Rc;

    use super::TerminalSink;
    use crate::exec::{Event, EventSink};

    /// A stderr the test can read back.
    #[derive(Clone, Default)]
    struct Captured(Rc<RefCell<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.borrow_mut().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn plain_lines_quote_the_cluster_without_control_characters() {
        let captured = Captured::default();
        let mut sink = TerminalSink::writing_to(false, Box::new(captured.clone()));
        let step = || "switchover".to_string();
        sink.emit(&Event::ActionAnswered {
            step: step(),
            status: 200,
            message: "Successfully switched over to \"node9\x1b[2J\x1b[1A\rforged\"".into(),
        });
        sink.emit(&Event::CommandRan {
            step: step(),
            command: "systemctl restart patroni".into(),
            status: 1,
            stdout: String::new(),
            stderr: "starting\nfailed\x1b]0;pwned\x07: disk\u{9b}2J full\r\n".into(),
        });
        sink.emit(&Event::Observed {
            step: step(),
            observed: "node9\x1b[31m is running\x08\x08".into(),
        });
        sink.emit(&Event::StepFailed {
            step: step(),
            reason: "node9\x1b[2J refused the call: HTTP 412 \x07no".into(),
        });
        let printed = String::from_utf8(captured.0.borrow().clone()).unwrap();
        let controls: Vec<char> = printed
            .chars()
            .filter(|character| character.is_control() && *character != '\n')
            .collect();
        assert_eq!(controls, Vec::<char>::new(), "{printed}");
        for shown in [
            "Patroni answered HTTP 200: Successfully switched over to \"node9forged\"",
            "systemctl restart patroni: exit 1 (failed: disk full)",
            "      switchover: node9 is running\n",
            "switchover FAILED: node9 refused the call: HTTP 412 no",
        ] {
            assert!(printed.contains(shown), "{shown:?} in\n{printed}");
        }
    }
}
