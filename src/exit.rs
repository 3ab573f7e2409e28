//! The process exit codes pgha promises. They are part of the interface: scripts and CI jobs
//! branch on them, so a code never changes meaning once released.

/// Why pgha stopped. `as_code` gives the number the process exits with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything asked for was done.
    Success,
    /// The command ran but did not achieve its goal (a step failed, the lab did not come up).
    Failed,
    /// What the user gave us is wrong: flags, inventory, names, credentials, certificates.
    /// Nothing was executed.
    BadInput,
    /// The cluster (or a system it depends on) could not be reached. Nothing was executed.
    Unreachable,
    /// A pre-check refused to let a runbook start. Nothing was executed.
    PrecheckRefused,
    /// The operator aborted (declined a gate, pressed Ctrl-C).
    Aborted,
    /// Another run holds the cluster's lock.
    LockHeld,
    /// `status --fail-on`: the cluster has a warning at or above the given severity.
    Unhealthy,
}

impl Exit {
    pub const fn as_code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failed => 1,
            Exit::BadInput => 2,
            Exit::Unreachable => 3,
            Exit::PrecheckRefused => 4,
            Exit::Aborted => 5,
            Exit::LockHeld => 6,
            Exit::Unhealthy => 7,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Exit;

    #[test]
    fn codes_are_stable() {
        let codes: Vec<u8> = [
            Exit::Success,
            Exit::Failed,
            Exit::BadInput,
            Exit::Unreachable,
            Exit::PrecheckRefused,
            Exit::Aborted,
            Exit::LockHeld,
            Exit::Unhealthy,
        ]
        .iter()
        .map(|exit| exit.as_code())
        .collect();
        assert_eq!(codes, vec![0, 1, 2, 3, 4, 5, 6, 7]);
    }
}
