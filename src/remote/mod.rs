//! Running commands on members' hosts: through the system OpenSSH (`~/.ssh/config`, ProxyJump,
//! the agent and known_hosts work as in the operator's terminal; host keys always checked
//! strictly), or locally (`kubectl`, the lab). pgha starts one ssh master per host with the
//! destination after `--`, refusing any host ssh could read as an option before ssh starts, and
//! sends commands through it with the `openssh` crate's native multiplexing. Both transports
//! send the exact line `HostCommand::shell_line` renders. Nothing here retries.

mod command;
mod service;

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use command::{HostCommand, Script, UnsafeValue, checked_name, checked_path, quote};
pub use service::{ServiceAction, ServiceControl, ServiceError, Transport, Upgrade};

use crate::exit::Exit;

/// How to reach members' hosts over SSH (an environment's `ssh:` section).
#[derive(Debug, Clone, Serialize)]
pub struct SshSettings {
    pub user: Option<String>,
    pub port: Option<u16>,
    pub jump_host: Option<String>,
    pub identity_file: Option<PathBuf>,
    pub known_hosts: Option<PathBuf>,
    pub sudo: bool,
}

/// What a command printed and how it ended. A non-zero exit is not an error here: the step
/// that ran it decides what the status means.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandOutput {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl CommandOutput {
    pub fn success(&self) -> bool {
        self.status == 0
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum RemoteError {
    #[error(
        "{host}: the SSH host key does not match known_hosts: refusing to connect (verify the host, then update known_hosts)"
    )]
    HostKey { host: String },
    #[error("{host}: cannot connect over SSH: {reason}")]
    Connect { host: String, reason: String },
    #[error("{host}: `{command}` did not finish within {}: its outcome is unknown", humantime::format_duration(*after))]
    Timeout {
        host: String,
        command: String,
        after: Duration,
    },
    #[error("{host}: the connection dropped while `{command}` ran: its outcome is unknown")]
    Dropped { host: String, command: String },
    /// The executor's check of a plan's command: the member or its host is not the inventory's.
    #[error("refusing to run a command for {member} on {host}: {reason}")]
    NotATarget {
        member: String,
        host: String,
        reason: String,
    },
    /// A destination ssh would misread (an option, a shell word): refused before ssh starts.
    #[error("refusing to start ssh: {reason}")]
    Destination { host: String, reason: String },
    #[error("cannot run `{command}` on {host}: {reason}")]
    Spawn {
        host: String,
        command: String,
        reason: String,
    },
}

impl RemoteError {
    pub fn exit(&self) -> Exit {
        match self {
            RemoteError::HostKey { .. }
            | RemoteError::NotATarget { .. }
            | RemoteError::Destination { .. } => Exit::BadInput,
            _ => Exit::Unreachable,
        }
    }

    /// True when the command may have run: its effect must be observed, not assumed.
    pub fn outcome_unknown(&self) -> bool {
        matches!(
            self,
            RemoteError::Timeout { .. } | RemoteError::Dropped { .. }
        )
    }
}

/// Runs commands on hosts. One call per invocation; never retried.
#[allow(async_fn_in_trait)]
pub trait Remote {
    /// Runs `command` with `input` on its stdin (none: stdin is empty). Input is how data that
    /// must not show in a process list or a command line (a configuration file) reaches a host.
    async fn run_with_input(
        &self,
        host: &str,
        command: &HostCommand,
        input: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<CommandOutput, RemoteError>;

    async fn run(
        &self,
        host: &str,
        command: &HostCommand,
        timeout: Duration,
    ) -> Result<CommandOutput, RemoteError> {
        self.run_with_input(host, command, None, timeout).await
    }
}

/// SSH through the system's OpenSSH client, one multiplexed master connection per host and run.
pub struct Ssh {
    /// Declared before `control_directory`, so dropped first: a master is asked to stop
    /// through its socket, which must still exist (else the master outlives pgha).
    masters: tokio::sync::Mutex<HashMap<String, Arc<Master>>>,
    settings: Option<SshSettings>,
    connect_timeout: Duration,
    control_directory: tempfile::TempDir,
    /// The ssh client: `ssh` from PATH (tests put a recorder in its place).
    program: PathBuf,
}

/// A master connection pgha started, and the directory holding its socket and log.
struct Master {
    session: openssh::Session,
    socket: PathBuf,
    _directory: tempfile::TempDir,
}

impl Drop for Master {
    fn drop(&mut self) {
        // openssh leaves a master it did not start running when its session is dropped: ask
        // it to stop, as openssh does for its own. A master already gone has nothing to stop.
        let _ = openssh_mux_client::shutdown_mux_master(&self.socket);
    }
}

/// The file in a control directory naming the pgha process that made it.
const OWNER_FILE: &str = "owner";

/// Stops the master connections left in `pgha-ssh-*` control directories under `parent` by
/// pgha processes that no longer run (killed before they could stop them), and removes those
/// directories. Best effort: a directory it cannot read is left alone.
fn reap_orphaned_masters(parent: &Path, own: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let directory = entry.path();
        let is_control = entry
            .file_name()
            .to_str()
            .is_some_and(|name| name.starts_with("pgha-ssh-"));
        if !is_control || directory == own {
            continue;
        }
        let Some(owner) = std::fs::read_to_string(directory.join(OWNER_FILE)).ok() else {
            continue;
        };
        // The owner is named by PID and start time: a reused PID is another process, and the
        // owner may be any program using pgha's library (a test binary), not only `pgha`.
        let recorded = owner.split_whitespace().collect::<Vec<_>>();
        let running = match recorded[..] {
            [pid, started] => {
                pid.parse().ok().and_then(crate::pid::start_time) == started.parse().ok()
            }
            _ => continue,
        };
        if running {
            continue;
        }
        for master in std::fs::read_dir(&directory)
            .into_iter()
            .flatten()
            .flatten()
        {
            let _ = openssh_mux_client::shutdown_mux_master(master.path().join("socket"));
        }
        let _ = std::fs::remove_dir_all(&directory);
    }
}

impl Ssh {
    pub fn new(
        settings: Option<SshSettings>,
        connect_timeout: Duration,
    ) -> Result<Self, RemoteError> {
        // A private directory for the control sockets, removed with this value.
        let control_directory = tempfile::Builder::new()
            .prefix("pgha-ssh-")
            .tempdir()
            .map_err(|error| RemoteError::Spawn {
                host: "localhost".into(),
                command: "ssh".into(),
                reason: format!("cannot create a control directory: {error}"),
            })?;
        // Who owns it: a later pgha stops the masters of one that was killed (SIGKILL leaves
        // `ControlPersist` masters running for good).
        let own = std::process::id();
        let _ = std::fs::write(
            control_directory.path().join(OWNER_FILE),
            format!("{own} {}", crate::pid::start_time(own).unwrap_or_default()),
        );
        if let Some(parent) = control_directory.path().parent() {
            reap_orphaned_masters(parent, control_directory.path());
        }
        Ok(Ssh {
            masters: tokio::sync::Mutex::new(HashMap::new()),
            settings,
            connect_timeout,
            control_directory,
            program: PathBuf::from("ssh"),
        })
    }

    /// The same, running `program` instead of `ssh`.
    #[cfg(test)]
    fn with_program(mut self, program: PathBuf) -> Self {
        self.program = program;
        self
    }

    /// How many master connections are open (one per host used in this run).
    pub async fn open_connections(&self) -> usize {
        self.masters.lock().await.len()
    }

    /// ssh's arguments for a master connection to `host`: the options openssh's own builder
    /// gives (host keys checked strictly, never a prompt), then `--` and the destination, so
    /// that nothing in a host name can be read as an option. openssh puts the destination
    /// last but without `--`, which is why pgha starts the master itself.
    fn master_arguments(&self, host: &str, socket: &Path, log: &Path) -> Vec<OsString> {
        let mut arguments: Vec<OsString> =
            vec!["-E".into(), log.into(), "-S".into(), socket.into()];
        arguments.extend(
            [
                "-M",
                "-f",
                "-N",
                "-o",
                "ControlPersist=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                // Never accept an unknown or changed host key silently.
                "StrictHostKeyChecking=yes",
            ]
            .map(OsString::from),
        );
        let mut option = |name: &str, value: OsString| {
            arguments.push(name.into());
            arguments.push(value);
        };
        option(
            "-o",
            format!("ConnectTimeout={}", self.connect_timeout.as_secs()).into(),
        );
        option("-o", "ServerAliveInterval=5".into());
        if let Some(settings) = &self.settings {
            if let Some(port) = settings.port {
                option("-p", port.to_string().into());
            }
            if let Some(user) = &settings.user {
                option("-l", user.into());
            }
            if let Some(identity) = &settings.identity_file {
                // The named key only, not every key the agent offers.
                option("-o", "IdentitiesOnly=yes".into());
                option("-i", identity.into());
            }
            if let Some(jump) = &settings.jump_host {
                option("-J", jump.into());
            }
            if let Some(known_hosts) = &settings.known_hosts {
                let mut value = OsString::from("UserKnownHostsFile=");
                value.push(known_hosts);
                option("-o", value);
            }
        }
        arguments.push("--".into());
        arguments.push(host.into());
        arguments
    }

    /// Starts a master connection to `host` (ssh authenticates, then goes to the background)
    /// and attaches to it.
    async fn launch_master(&self, host: &str) -> Result<Master, RemoteError> {
        let spawn_error = |reason: String| RemoteError::Spawn {
            host: host.into(),
            command: "ssh".into(),
            reason,
        };
        let directory = tempfile::Builder::new()
            .prefix("master-")
            .tempdir_in(self.control_directory.path())
            .map_err(|error| spawn_error(format!("cannot create a control directory: {error}")))?;
        let socket = directory.path().join("socket");
        let log = directory.path().join("log");
        let status = tokio::process::Command::new(&self.program)
            .args(self.master_arguments(host, &socket, &log))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            // A handshake cut off by the step's deadline does not linger.
            .kill_on_drop(true)
            // The terminal's Ctrl-C is pgha's to handle, not ssh's.
            .process_group(0)
            .status()
            .await
            .map_err(|error| spawn_error(error.to_string()))?;
        if !status.success() {
            let said = std::fs::read_to_string(&log).unwrap_or_default();
            let said = if said.trim().is_empty() {
                format!("ssh {status}")
            } else {
                said
            };
            return Err(connect_failure(host, &said));
        }
        Ok(Master {
            session: openssh::Session::resume_mux(
                socket.clone().into_boxed_path(),
                Some(log.into_boxed_path()),
            ),
            socket,
            _directory: directory,
        })
    }

    async fn master(&self, host: &str) -> Result<Arc<Master>, RemoteError> {
        let mut masters = self.masters.lock().await;
        if let Some(master) = masters.get(host)
            && master.session.check().await.is_ok()
        {
            return Ok(Arc::clone(master));
        }
        let master = Arc::new(self.launch_master(host).await?);
        masters.insert(host.to_string(), Arc::clone(&master));
        Ok(master)
    }
}

fn connect_error(host: &str, error: &openssh::Error) -> RemoteError {
    connect_failure(host, &crate::ui::root_cause(error))
}

/// What ssh said when it could not connect: a host key problem (bad input), or its last line.
fn connect_failure(host: &str, said: &str) -> RemoteError {
    if said.contains("Host key verification failed")
        || said.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
    {
        RemoteError::HostKey { host: host.into() }
    } else {
        RemoteError::Connect {
            host: host.into(),
            reason: said
                .lines()
                .map(str::trim)
                .rfind(|line| !line.is_empty())
                .unwrap_or("")
                .to_string(),
        }
    }
}

impl Remote for Ssh {
    async fn run_with_input(
        &self,
        host: &str,
        command: &HostCommand,
        input: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<CommandOutput, RemoteError> {
        // Before anything starts: a destination ssh would read as an option never reaches it,
        // whoever built the plan (the inventory refuses such hosts when it is read).
        crate::names::check_host(host).map_err(|reason| RemoteError::Destination {
            host: host.into(),
            reason,
        })?;
        let line = command.shell_line();
        // The deadline covers connecting too: a host that hangs during the handshake cannot
        // stretch a step past what its plan says (ssh's ConnectTimeout bounds the TCP connect).
        let exchange = async {
            let master = self.master(host).await?;
            Ok::<_, RemoteError>(exchange(&master.session, &line, input).await)
        };
        let output = match tokio::time::timeout(timeout, exchange).await {
            Ok(Err(error)) => return Err(error),
            Ok(Ok(output)) => Ok(output),
            Err(elapsed) => Err(elapsed),
        };
        match output {
            Err(_) => Err(RemoteError::Timeout {
                host: host.into(),
                command: line,
                after: timeout,
            }),
            Ok(Err(openssh::Error::RemoteProcessTerminated | openssh::Error::Disconnected)) => {
                // The master may be gone: the next command reconnects.
                self.masters.lock().await.remove(host);
                Err(RemoteError::Dropped {
                    host: host.into(),
                    command: line,
                })
            }
            // openssh turns the remote shell's 127 into an error: the command ran, and failed.
            Ok(Err(openssh::Error::Remote(error))) => Ok(CommandOutput {
                status: 127,
                stdout: String::new(),
                stderr: error.to_string(),
            }),
            Ok(Err(error)) => Err(connect_error(host, &error)),
            Ok(Ok(output)) => Ok(CommandOutput {
                status: output.status.code().unwrap_or(-1),
                stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            }),
        }
    }
}

/// One command over an open session, `input` written to its stdin and closed before its
/// output is read (inputs are small: a configuration file, not a stream).
async fn exchange(
    session: &openssh::Session,
    line: &str,
    input: Option<&[u8]>,
) -> Result<std::process::Output, openssh::Error> {
    let mut command = session.raw_command(line);
    let Some(input) = input else {
        return command.output().await;
    };
    let mut child = command
        .stdin(openssh::Stdio::piped())
        .stdout(openssh::Stdio::piped())
        .stderr(openssh::Stdio::piped())
        .spawn()
        .await?;
    if let Some(mut stdin) = child.stdin().take() {
        use tokio::io::AsyncWriteExt as _;
        let written = async {
            stdin.write_all(input).await?;
            stdin.shutdown().await
        };
        written
            .await
            .or_else(unread)
            .map_err(openssh::Error::ChildIo)?;
    }
    child.wait_with_output().await
}

/// A command may end without reading its input (a script that refuses first): the broken pipe
/// is no error of pgha's; its exit status says what happened.
fn unread(error: std::io::Error) -> std::io::Result<()> {
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        Ok(())
    } else {
        Err(error)
    }
}

/// Commands on the operator's machine, through `sh -c` with the same line SSH would send.
pub struct Local;

impl Remote for Local {
    async fn run_with_input(
        &self,
        host: &str,
        command: &HostCommand,
        input: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<CommandOutput, RemoteError> {
        let line = command.shell_line();
        let child = async {
            let mut child = tokio::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(&line)
                .stdin(if input.is_some() {
                    std::process::Stdio::piped()
                } else {
                    std::process::Stdio::null()
                })
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .kill_on_drop(true)
                // The terminal's Ctrl-C stops pgha after this command, not the command.
                .process_group(0)
                .spawn()?;
            if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
                use tokio::io::AsyncWriteExt as _;
                stdin.write_all(input).await.or_else(unread)?;
            }
            child.wait_with_output().await
        };
        match tokio::time::timeout(timeout, child).await {
            Err(_) => Err(RemoteError::Timeout {
                host: host.into(),
                command: line,
                after: timeout,
            }),
            Ok(Err(error)) => Err(RemoteError::Spawn {
                host: host.into(),
                command: line,
                reason: error.to_string(),
            }),
            Ok(Ok(output)) => Ok(CommandOutput {
                status: output.status.code().unwrap_or(-1),
                stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            }),
        }
    }
}

/// Replaces known secret values in command output before it is journaled or shown.
#[derive(Debug, Clone, Default)]
pub struct Masker {
    secrets: Vec<String>,
}

impl Masker {
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        Masker {
            // Short values would mask ordinary words: only real secrets are worth masking.
            secrets: secrets
                .into_iter()
                .filter(|secret| secret.len() >= 4)
                .collect(),
        }
    }

    pub fn mask(&self, text: &str) -> String {
        self.secrets.iter().fold(text.to_string(), |text, secret| {
            text.replace(secret.as_str(), "***")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A control directory whose owner is gone (killed) is cleaned up by the next pgha; one whose
    /// owner runs — whatever the program, a test binary too — this pgha's own, and anything not
    /// a control directory are left alone.
    #[test]
    fn control_directories_of_dead_pgha_processes_are_reaped() {
        let parent = tempfile::tempdir().unwrap();
        let control = |name: &str, owner: u32, started: u64| {
            let directory = parent.path().join(name);
            std::fs::create_dir_all(directory.join("master-x")).unwrap();
            std::fs::write(directory.join(OWNER_FILE), format!("{owner} {started}")).unwrap();
            directory
        };
        let mut finished = std::process::Command::new("true").spawn().unwrap();
        let dead = finished.id();
        finished.wait().unwrap();
        let reaped = control("pgha-ssh-dead", dead, 1);
        // PID 1 runs, but it started at another time: the owner's PID was reused.
        let init_started = crate::pid::start_time(1).unwrap();
        let reused = control("pgha-ssh-reused", 1, init_started + 1);
        let me = std::process::id();
        let running = control("pgha-ssh-running", me, crate::pid::start_time(me).unwrap());
        let own = control("pgha-ssh-own", dead, 1);
        let unrelated = control("other-dir", dead, 1);
        reap_orphaned_masters(parent.path(), &own);
        assert!(!reaped.exists() && !reused.exists());
        assert!(running.exists() && own.exists() && unrelated.exists());
    }

    #[tokio::test]
    async fn local_commands_run_the_rendered_line() {
        let command = HostCommand::new("printf")
            .arg("%s|%s")
            .arg("a b")
            .arg("it's");
        let output = Local
            .run("localhost", &command, Duration::from_secs(5))
            .await
            .unwrap();
        assert!(output.success());
        assert_eq!(output.stdout, "a b|it's");
    }

    #[tokio::test]
    async fn input_reaches_the_command_on_its_stdin() {
        let command = HostCommand::new("cat");
        let output = Local
            .run_with_input(
                "localhost",
                &command,
                Some(b"it's $(private)\n"),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        assert_eq!(output.stdout, "it's $(private)\n");
    }

    #[tokio::test]
    async fn a_command_that_ends_without_reading_its_input_reports_its_exit() {
        let command = HostCommand::new("sh")
            .arg("-c")
            .arg("echo refused >&2; exit 3");
        // Far more than a pipe holds: the write meets the closed pipe every time.
        let input = vec![b'x'; 1 << 20];
        let output = Local
            .run_with_input("localhost", &command, Some(&input), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!((output.status, output.stderr.as_str()), (3, "refused\n"));
    }

    #[tokio::test]
    async fn a_non_zero_exit_is_an_output_not_an_error() {
        let command = HostCommand::new("sh")
            .arg("-c")
            .arg("echo nope >&2; exit 3");
        let output = Local
            .run("localhost", &command, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(output.status, 3);
        assert_eq!(output.stderr, "nope\n");
    }

    #[tokio::test]
    async fn a_slow_command_times_out_with_an_unknown_outcome() {
        let command = HostCommand::new("sleep").arg("5");
        let error = Local
            .run("localhost", &command, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(error.outcome_unknown());
        assert_eq!(
            error.to_string(),
            "localhost: `sleep 5` did not finish within 200ms: its outcome is unknown"
        );
    }

    /// Defect 9, at the last step before ssh: a destination that ssh would read as an option
    /// (`-oProxyCommand=…` runs a command on the operator's machine) is refused as bad input,
    /// whoever built the plan.
    #[tokio::test]
    async fn a_host_ssh_would_read_as_an_option_is_refused() {
        let ssh = Ssh::new(None, Duration::from_secs(2)).unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let canary = scratch.path().join("x");
        let hostile = format!("-oProxyCommand=touch {}", canary.display());
        let error = ssh
            .run(&hostile, &HostCommand::new("true"), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert_eq!(error.exit(), Exit::BadInput, "{error}");
        assert_eq!(
            error.to_string(),
            format!(
                "refusing to start ssh: {hostile:?} starts with '-': ssh would read it as an option"
            )
        );
        assert!(!canary.exists());
        assert_eq!(ssh.open_connections().await, 0);
    }

    /// An `ssh` that records its arguments and fails the way ssh does: its message in the log
    /// file named by `-E`, exit status 255.
    fn recording_ssh(directory: &Path) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let program = directory.join("ssh");
        std::fs::write(
            &program,
            "#!/bin/sh\n\
             printf '%s\\n' \"$@\" > \"$(dirname \"$0\")/arguments\"\n\
             printf 'ssh: connect to host db1.example port 2222: Connection refused\\r\\n' > \"$2\"\n\
             exit 255\n",
        )
        .unwrap();
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        program
    }

    fn settings() -> SshSettings {
        SshSettings {
            user: Some("ops".into()),
            port: Some(2222),
            jump_host: Some("admin@bastion.example:22".into()),
            identity_file: Some("/keys/id".into()),
            known_hosts: Some("/keys/known_hosts".into()),
            sudo: false,
        }
    }

    /// Defect 9: no host reaches ssh where it could be read as an option. A hostile one is
    /// refused before any process starts; a valid one comes last, after `--`.
    #[tokio::test]
    async fn the_destination_reaches_ssh_only_after_a_double_dash() {
        let scratch = tempfile::tempdir().unwrap();
        let recorded = scratch.path().join("arguments");
        let ssh = Ssh::new(Some(settings()), Duration::from_secs(3))
            .unwrap()
            .with_program(recording_ssh(scratch.path()));
        for hostile in [
            "-oProxyCommand=touch /tmp/x",
            "-oProxyCommand=touch${IFS}/tmp/x",
            "-J",
            "db1 -oProxyCommand=x",
            "ssh://-oProxyCommand=x",
        ] {
            let error = ssh
                .run(hostile, &HostCommand::new("true"), Duration::from_secs(5))
                .await
                .unwrap_err();
            assert!(
                matches!(error, RemoteError::Destination { .. }),
                "{hostile}: {error}"
            );
            assert!(!recorded.exists(), "{hostile}: ssh started");
        }
        let error = ssh
            .run(
                "db1.example",
                &HostCommand::new("true"),
                Duration::from_secs(5),
            )
            .await
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "db1.example: cannot connect over SSH: ssh: connect to host db1.example port 2222: Connection refused"
        );
        let arguments = std::fs::read_to_string(&recorded).unwrap();
        let arguments: Vec<&str> = arguments.lines().collect();
        assert_eq!(arguments[arguments.len() - 2..], ["--", "db1.example"]);
        let options = arguments[4..arguments.len() - 2].join(" ");
        assert_eq!(
            options,
            "-M -f -N -o ControlPersist=yes -o BatchMode=yes -o StrictHostKeyChecking=yes \
             -o ConnectTimeout=3 -o ServerAliveInterval=5 -p 2222 -l ops \
             -o IdentitiesOnly=yes -i /keys/id -J admin@bastion.example:22 \
             -o UserKnownHostsFile=/keys/known_hosts"
        );
        assert_eq!(ssh.open_connections().await, 0);
    }

    #[test]
    fn secrets_are_masked_in_output() {
        let masker = Masker::new(["hunter22".to_string(), "ab".to_string()]);
        assert_eq!(masker.mask("password=hunter22; ab"), "password=***; ab");
    }
}
