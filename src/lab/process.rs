//! Lab daemons as processes: start one detached (own process group, output to its own log file,
//! never to our stdout, so a pipe reading pgha never hangs), remember its PID in a file, and later
//! find it again only by that PID — after checking `/proc/PID/cmdline` still names the same
//! program and config, because PIDs are reused. Nothing here looks a process up by name.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};

use super::LabError;

/// The OS account lab daemons run as: `postgres` when pgha runs as root (PostgreSQL refuses
/// root), else the current user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RunAs {
    pub uid: u32,
    pub gid: u32,
    pub is_root_caller: bool,
}

impl RunAs {
    pub(super) fn detect() -> Result<Self, LabError> {
        if !rustix::process::getuid().is_root() {
            return Ok(RunAs {
                uid: rustix::process::getuid().as_raw(),
                gid: rustix::process::getgid().as_raw(),
                is_root_caller: false,
            });
        }
        let id = |flag: &str| -> Result<u32, LabError> {
            let output = Command::new("id")
                .args([flag, "postgres"])
                .output()
                .map_err(|error| LabError::io("run `id postgres`", Path::new("id"), &error))?;
            String::from_utf8_lossy(&output.stdout)
                .trim()
                .parse()
                .map_err(|_| LabError::Missing {
                    what: "the postgres OS user".into(),
                    hint: "install PostgreSQL 15 with scripts/install-deps.sh".into(),
                })
        };
        Ok(RunAs {
            uid: id("-u")?,
            gid: id("-g")?,
            is_root_caller: true,
        })
    }

    /// Gives a path to the daemon account (only meaningful when running as root).
    pub(super) fn own(&self, path: &Path) -> Result<(), LabError> {
        if self.is_root_caller {
            std::os::unix::fs::chown(path, Some(self.uid), Some(self.gid))
                .map_err(|error| LabError::io("change the owner of", path, &error))?;
        }
        Ok(())
    }
}

/// A daemon the lab manages: what to run and where its PID file and log live.
#[derive(Debug, Clone)]
pub(crate) struct Daemon {
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub pid_file: PathBuf,
    pub log_file: PathBuf,
    pub working_dir: PathBuf,
    /// A string the process's command line must contain for a PID to count as this daemon.
    pub identity: String,
    /// Run as this account instead of the caller (set for PostgreSQL-related daemons).
    pub run_as: Option<RunAs>,
    pub env: Vec<(String, String)>,
}

impl Daemon {
    /// The daemon's PID if it runs; a stale PID file (dead, zombie or reused PID) counts as
    /// not running.
    pub(super) fn running_pid(&self) -> Option<u32> {
        let pid: u32 = std::fs::read_to_string(&self.pid_file)
            .ok()?
            .trim()
            .parse()
            .ok()?;
        is_alive(pid, &self.identity).then_some(pid)
    }

    pub(super) fn start(&self) -> Result<u32, LabError> {
        if let Some(pid) = self.running_pid() {
            return Ok(pid);
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_file)
            .map_err(|error| LabError::io("open the log file", &self.log_file, &error))?;
        if let Some(run_as) = self.run_as {
            run_as.own(&self.log_file)?;
        }
        let errors = log
            .try_clone()
            .map_err(|error| LabError::io("open the log file", &self.log_file, &error))?;
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .current_dir(&self.working_dir)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("LANG", "C.UTF-8")
            .env("LC_ALL", "C.UTF-8")
            .envs(self.env.iter().map(|(key, value)| (key, value)))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(errors))
            // Its own process group: Ctrl-C in the operator's terminal must not reach the lab.
            .process_group(0);
        if let Some(run_as) = self.run_as.filter(|run_as| run_as.is_root_caller) {
            // std drops supplementary groups when it changes the uid from root.
            command.uid(run_as.uid).gid(run_as.gid);
        }
        let child = command.spawn().map_err(|error| {
            LabError::io(&format!("start {}", self.name), &self.program, &error)
        })?;
        // The spawned program execs (a script's interpreter keeps the PID), so this PID is the
        // daemon's own: no wrapper in between whose PID would miss the signal later.
        let pid = child.id();
        std::fs::write(&self.pid_file, format!("{pid}\n"))
            .map_err(|error| LabError::io("write the PID file", &self.pid_file, &error))?;
        // spawn() returns when the child's exec closes its close-on-exec pipe, which is before
        // the kernel publishes the new command line: give /proc a moment to show who it is.
        let deadline = Instant::now() + Duration::from_secs(2);
        while !is_alive(pid, &self.identity) {
            if Instant::now() >= deadline || !std::path::Path::new(&format!("/proc/{pid}")).exists()
            {
                return Err(LabError::StartFailed {
                    component: self.name.clone(),
                    log_tail: self.log_tail(20),
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        // Reap it ourselves if it dies while we are still running, so it never lingers as a zombie.
        std::thread::spawn(move || {
            let mut child = child;
            let _ = child.wait();
        });
        Ok(pid)
    }

    /// SIGTERM, then wait up to `grace` for the process to exit. Returns false if it still runs.
    pub(super) fn stop(&self, grace: Duration) -> Result<bool, LabError> {
        let Some(pid) = self.running_pid() else {
            return Ok(true);
        };
        signal(pid, Signal::TERM)?;
        Ok(wait_for_exit(pid, &self.identity, grace))
    }

    /// SIGKILL, like a crash.
    pub(super) fn kill(&self) -> Result<bool, LabError> {
        let Some(pid) = self.running_pid() else {
            return Ok(false);
        };
        signal(pid, Signal::KILL)?;
        Ok(wait_for_exit(pid, &self.identity, Duration::from_secs(5)))
    }

    /// The last lines of the daemon's log, for error messages.
    pub(super) fn log_tail(&self, lines: usize) -> String {
        tail(&self.log_file, lines)
    }
}

pub(crate) fn signal(pid: u32, signal: Signal) -> Result<(), LabError> {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| LabError::Invalid(format!("not a process id: {pid}")))?;
    match rustix::process::kill_process(pid, signal) {
        Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
        Err(error) => Err(LabError::Invalid(format!(
            "cannot signal process {}: {error}",
            pid.as_raw_pid()
        ))),
    }
}

pub(crate) use crate::pid::is_alive;

pub(crate) fn wait_for_exit(pid: u32, identity: &str, grace: Duration) -> bool {
    let deadline = Instant::now() + grace;
    while is_alive(pid, identity) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

/// The last `lines` lines of a file, read from its end (logs can be large).
pub(crate) fn tail(path: &Path, lines: usize) -> String {
    const WINDOW: u64 = 16 * 1024;
    let Ok(mut file) = File::open(path) else {
        return format!("(no log at {})", path.display());
    };
    let length = file.metadata().map_or(0, |metadata| metadata.len());
    let _ = file.seek(SeekFrom::Start(length.saturating_sub(WINDOW)));
    let mut text = String::new();
    let mut bytes = Vec::new();
    if file.read_to_end(&mut bytes).is_ok() {
        text = String::from_utf8_lossy(&bytes).into_owned();
    }
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_process_is_alive_and_a_wrong_identity_is_not() {
        let pid = std::process::id();
        assert!(is_alive(pid, ""));
        assert!(!is_alive(pid, "definitely-not-in-our-command-line-\u{1}"));
        assert!(!is_alive(u32::MAX - 1, ""));
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, "a\nb\nc\nd\n").unwrap();
        assert_eq!(tail(&path, 2), "c\nd");
        assert!(tail(&dir.path().join("missing"), 2).starts_with("(no log"));
    }
}
