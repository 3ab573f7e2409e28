//! Whether a process known by its PID still runs, and is still the program it was: the lab
//! tracks its daemons this way, and pgha finds the SSH masters of a pgha that was killed.

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
