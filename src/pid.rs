//! Whether a process known by its PID still runs, and is still the program it was: the lab
//! tracks its daemons this way, and pgha finds the SSH masters of a pgha that was killed.

/// When the process started (clock ticks since boot, `/proc/PID/stat` field 22); `None` when
/// no such process runs or it is a zombie. With the PID, it names one process for good: a
/// reused PID has another start time.
pub(crate) fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name, which is in parentheses and may contain spaces.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?;
    if matches!(state, "Z" | "X") {
        return None;
    }
    // `state` is field 3; the start time is field 22.
    fields.nth(18)?.parse().ok()
}

/// Alive means: the process exists, is not a zombie, and its command line contains `identity`.
pub(crate) fn is_alive(pid: u32, identity: &str) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state letter follows the command name in parentheses, which may contain spaces.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    if matches!(state, Some("Z" | "X")) {
        return false;
    }
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
        String::from_utf8_lossy(&cmdline)
            .replace('\0', " ")
            .contains(identity)
    })
}
