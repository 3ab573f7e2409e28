//! Telling a recovery that cannot go on from a slow one, by what PostgreSQL's log says. A
//! member whose recovery waits for a WAL segment that `restore_command` cannot fetch (missing
//! from the archive, a wrong stanza) stays `starting` forever, and one restored only in part
//! stays `stopped`: Patroni says no more through its API, and a wait
//! would end only at its deadline — hours, for a restore. The log says more: PostgreSQL repeats
//! `waiting for WAL to become available at <LSN>`, and a few lines are fatal on their own. This
//! module reads a log's tail and keeps what one read must be compared with the next.

use std::time::Duration;

use tokio::time::Instant;

use crate::patroni::MemberState;

/// Lines that mean recovery cannot go on, whatever comes next.
const FATAL: &[(&str, &str)] = &[
    (
        "specified neither primary_conninfo nor restore_command",
        "PostgreSQL has no WAL source: neither primary_conninfo nor restore_command is set (a restored patroni.dynamic.json without standby_cluster?)",
    ),
    (
        "does this stanza exist",
        "the backup tool cannot find its stanza: restore_command names a wrong stanza or configuration",
    ),
    (
        "no backup set found",
        "the backup tool finds no backup: a wrong stanza or repository",
    ),
    (
        "could not locate required checkpoint record",
        "the backup's checkpoint record is not in the restored WAL",
    ),
    // Patroni's own line, where its log is the one read (it then leaves PostgreSQL stopped).
    (
        "data dir for the cluster is not empty, but system ID is invalid",
        "the data directory holds files but no database (a restore cut short?): Patroni will not start PostgreSQL on it",
    ),
];

/// Lines a log repeats while nothing happens: not worth showing.
const ROUTINE: &[&str] = &[
    "INFO: no action",
    "INFO: Lock owner",
    "the database system is starting up",
    "not healthy enough for leader race",
    "rejecting connections",
];

/// How many of the log's last lines a fatal line must be among to count.
const FATAL_RECENT: usize = 10;

/// How many of the log's last lines go into a diagnosis.
const SHOWN: usize = 6;

/// What one read of a log's tail says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LogReading {
    /// Why recovery cannot go on, from a line that says so on its own.
    pub fatal: Option<String>,
    /// The WAL position recovery last said it waits for.
    pub waiting_at: Option<String>,
    /// The last lines worth showing.
    pub tail: Vec<String>,
}

pub(crate) fn read_log(text: &str) -> LogReading {
    let lines: Vec<&str> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    // Only the newest lines: a condition that lasts is logged again at every attempt, and an
    // older line may be from an attempt that since went by (a rebuild run again).
    let fatal = lines.iter().rev().take(FATAL_RECENT).find_map(|line| {
        FATAL
            .iter()
            .find(|(signature, _)| line.contains(signature))
            .map(|(_, why)| (*why).to_string())
    });
    let waiting_at = lines.iter().rev().find_map(|line| {
        line.split_once("waiting for WAL to become available at ")
            .map(|(_, at)| at.trim().to_string())
    });
    let worth: Vec<String> = lines
        .iter()
        .filter(|line| !written_by_patroni(line))
        .filter(|line| !ROUTINE.iter().any(|routine| line.contains(routine)))
        .map(|line| line.trim_end().to_string())
        .collect();
    LogReading {
        fatal,
        waiting_at,
        tail: worth[worth.len().saturating_sub(SHOWN)..].to_vec(),
    }
}

/// Patroni's own lines (`2026-12-03 12:30:28,668 INFO: …`: a comma before the milliseconds)
/// where its log also takes PostgreSQL's: they tell what Patroni tries, not why recovery stops.
fn written_by_patroni(line: &str) -> bool {
    let bytes = line.as_bytes();
    bytes.len() > 24
        && bytes[..4].iter().all(u8::is_ascii_digit)
        && bytes[19] == b','
        && bytes[20..23].iter().all(u8::is_ascii_digit)
}

/// One watched member's history during a wait.
#[derive(Debug, Default)]
pub(crate) struct Watched {
    /// Since when the member has been `starting` (or `stopped`), as observed, and which.
    since: Option<Instant>,
    state: Option<MemberState>,
    /// The last read of its log, and when.
    last: Option<(Instant, LogReading)>,
}

impl Watched {
    /// Notes whether the member is `starting` (or `stopped`: `state`) now, or neither (`None`);
    /// true when its log is due for a read.
    pub(crate) fn due(
        &mut self,
        state: Option<MemberState>,
        after: Duration,
        now: Instant,
    ) -> bool {
        if state.is_none() {
            *self = Watched::default();
            return false;
        }
        self.state = state;
        let since = *self.since.get_or_insert(now);
        let read_at = self.last.as_ref().map_or(since, |(at, _)| *at);
        now.duration_since(read_at) >= after
    }

    /// Judges a new read of the log against the last one: `Some(why)` when recovery cannot go
    /// on. A read that failed (`None`) counts as a read, so the log is not asked for at every
    /// poll, and decides nothing.
    pub(crate) fn judge(
        &mut self,
        member: &str,
        reading: Option<LogReading>,
        now: Instant,
    ) -> Option<String> {
        let Some(reading) = reading else {
            self.last = Some((now, LogReading::default()));
            return None;
        };
        let for_how_long = self
            .since
            .map_or(0, |since| now.duration_since(since).as_secs());
        let why = if let Some(fatal) = &reading.fatal {
            Some(fatal.clone())
        } else {
            let before = self
                .last
                .as_ref()
                .and_then(|(_, last)| last.waiting_at.as_ref());
            match (before, &reading.waiting_at) {
                (Some(before), Some(now_at)) if before == now_at => Some(format!(
                    "recovery waits for WAL at {now_at} in two reads of its log: the WAL it needs is not where restore_command looks (a segment missing from the archive, or a wrong stanza)"
                )),
                _ => None,
            }
        };
        let diagnosis = why.map(|why| {
            format!(
                "{member} has been `{}` for {for_how_long} s and cannot go on: {why}. Its log's last lines: {}",
                self.state.as_ref().map_or("", MemberState::as_str),
                reading
                    .tail
                    .iter()
                    .map(|line| format!("«{}»", line.trim()))
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        });
        self.last = Some((now, reading));
        diagnosis
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A standby leader restored from a backup whose own WAL segment is missing (the
    /// rehearsal's F5), as it is in Patroni's log.
    const MISSING_SEGMENT: &str = "\
2026-12-03 12:03:45,601 INFO: Lock owner: geo1; I am geo1
2026-12-03 12:03:45,673 INFO: no action. I am (geo1), the standby leader with the lock
2026-12-03 12:03:45,856 INFO: establishing a new patroni heartbeat connection to postgres
127.0.0.14:5432 - rejecting connections
2026-12-03 12:03:46.100 UTC [19300] FATAL:  the database system is starting up
2026-12-03 12:03:46.657 UTC [19228] LOG:  waiting for WAL to become available at 0/4000028
2026-12-03 12:03:47.648 UTC [19228] LOG:  waiting for WAL to become available at 0/4000028
";

    #[test]
    fn the_last_waiting_position_and_the_lines_worth_showing_are_read() {
        let reading = read_log(MISSING_SEGMENT);
        assert_eq!(reading.waiting_at.as_deref(), Some("0/4000028"));
        assert_eq!(reading.fatal, None);
        assert_eq!(
            reading.tail.len(),
            2,
            "Patroni's own lines left out: {:?}",
            reading.tail
        );
        assert!(
            reading
                .tail
                .iter()
                .all(|line| line.contains("waiting for WAL"))
        );
    }

    #[test]
    fn the_same_waiting_position_in_two_reads_is_stuck_a_moving_one_is_not() {
        let start = Instant::now();
        let after = Duration::from_secs(30);
        let mut watched = Watched::default();
        assert!(
            !watched.due(Some(MemberState::Starting), after, start),
            "just started"
        );
        let first = start + after;
        assert!(watched.due(Some(MemberState::Starting), after, first));
        assert_eq!(
            watched.judge("geo1", Some(read_log(MISSING_SEGMENT)), first),
            None
        );
        assert!(!watched.due(
            Some(MemberState::Starting),
            after,
            first + Duration::from_secs(29)
        ));
        // Recovery moved on meanwhile: not stuck.
        let second = first + after;
        assert!(watched.due(Some(MemberState::Starting), after, second));
        let moved = MISSING_SEGMENT.replace("0/4000028", "0/5000000");
        assert_eq!(watched.judge("geo1", Some(read_log(&moved)), second), None);
        // Then it stays there.
        let third = second + after;
        let why = watched
            .judge("geo1", Some(read_log(&moved)), third)
            .expect("stuck");
        assert!(
            why.starts_with("geo1 has been `starting` for 90 s"),
            "{why}"
        );
        assert!(why.contains("waits for WAL at 0/5000000"), "{why}");
        assert!(why.contains("«2026-12-03 12:03:47.648 UTC [19228] LOG:  waiting for WAL to become available at 0/5000000»"), "{why}");
    }

    #[test]
    fn a_fatal_line_decides_at_the_first_read_and_leaving_starting_resets() {
        let now = Instant::now();
        let mut watched = Watched::default();
        watched.due(Some(MemberState::Starting), Duration::ZERO, now);
        let wrong_stanza = "P00  ERROR: [037]: archive-get command requires option: pg1-path\n       HINT: does this stanza exist?\n";
        let why = watched
            .judge("geo2", Some(read_log(wrong_stanza)), now)
            .expect("fatal");
        assert!(why.contains("wrong stanza"), "{why}");
        assert!(why.contains("HINT: does this stanza exist?"), "{why}");
        // Out of `starting`, the history is forgotten.
        assert!(!watched.due(None, Duration::ZERO, now));
        assert_eq!(watched.since, None);
        assert!(watched.last.is_none());
        // A read that failed decides nothing, but counts as a read.
        watched.due(Some(MemberState::Starting), Duration::from_secs(5), now);
        assert_eq!(watched.judge("geo2", None, now), None);
        assert!(!watched.due(
            Some(MemberState::Starting),
            Duration::from_secs(5),
            now + Duration::from_secs(4)
        ));
    }

    /// Found by a rehearsal: a member restored only in part (its restore's SSH session
    /// dropped) stays `stopped`, and Patroni says why in its own log.
    #[test]
    fn a_partial_restore_is_fatal_for_a_stopped_member() {
        let now = Instant::now();
        let mut watched = Watched::default();
        assert!(watched.due(Some(MemberState::Stopped), Duration::ZERO, now));
        let log = "2026-12-04 03:50:53,819 INFO: data dir for the cluster is not empty, but system ID is invalid; consider doing reinitialize\n";
        let why = watched
            .judge("geo2", Some(read_log(log)), now)
            .expect("fatal");
        assert!(why.starts_with("geo2 has been `stopped` for 0 s"), "{why}");
        assert!(why.contains("a restore cut short?"), "{why}");
    }

    #[test]
    fn a_fatal_line_counts_only_among_the_newest() {
        use std::fmt::Write as _;
        let mut log = String::from(
            "2026-12-04 03:50:53,819 INFO: data dir for the cluster is not empty, but system ID is invalid; consider doing reinitialize\n",
        );
        for second in 0..FATAL_RECENT {
            let _ = writeln!(
                log,
                "2026-12-04 03:52:{second:02},000 INFO: no action. I am (geo2), a secondary, and following a standby leader (geo1)"
            );
        }
        assert_eq!(read_log(&log).fatal, None, "a line from an attempt gone by");
    }
}
