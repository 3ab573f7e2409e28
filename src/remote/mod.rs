//! Running commands on members' hosts: through the system OpenSSH (the `openssh` crate with its
//! native multiplexing, so `~/.ssh/config`, ProxyJump, the agent and known_hosts work as in the
//! operator's terminal; host keys always checked strictly), or locally (`kubectl`, the lab).
//! Both send the exact line `HostCommand::shell_line` renders. Nothing here retries.

mod command;
mod service;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use command::{HostCommand, Script, UnsafeValue, checked_name, checked_path, quote};
pub use service::{ServiceAction, ServiceControl, ServiceError, Transport};

use crate::exit::Exit;
use crate::inventory::SshSettings;

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
            RemoteError::HostKey { .. } | RemoteError::NotATarget { .. } => Exit::BadInput,
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
    async fn run(
        &self,
        host: &str,
        command: &HostCommand,
        timeout: Duration,
    ) -> Result<CommandOutput, RemoteError>;
}

/// SSH through the system's OpenSSH client, one multiplexed master connection per host and run.
pub struct Ssh {
    settings: Option<SshSettings>,
    connect_timeout: Duration,
    control_directory: tempfile::TempDir,
    sessions: tokio::sync::Mutex<HashMap<String, Arc<openssh::Session>>>,
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
        Ok(Ssh {
            settings,
            connect_timeout,
            control_directory,
            sessions: tokio::sync::Mutex::new(HashMap::new()),
        })
    }

    fn builder(&self) -> openssh::SessionBuilder {
        let mut builder = openssh::SessionBuilder::default();
        builder
            // Never accept an unknown or changed host key silently.
            .known_hosts_check(openssh::KnownHosts::Strict)
            .connect_timeout(self.connect_timeout)
            .server_alive_interval(Duration::from_secs(5))
            .control_directory(self.control_directory.path());
        if let Some(settings) = &self.settings {
            if let Some(user) = &settings.user {
                builder.user(user.clone());
            }
            if let Some(port) = settings.port {
                builder.port(port);
            }
            if let Some(identity) = &settings.identity_file {
                builder.keyfile(identity);
            }
            if let Some(known_hosts) = &settings.known_hosts {
                builder.user_known_hosts_file(known_hosts);
            }
            if let Some(jump) = &settings.jump_host {
                builder.jump_hosts([jump.as_str()]);
            }
        }
        builder
    }

    /// How many master connections are open (one per host used in this run).
    pub async fn open_connections(&self) -> usize {
        self.sessions.lock().await.len()
    }

    async fn session(&self, host: &str) -> Result<Arc<openssh::Session>, RemoteError> {
        let mut sessions = self.sessions.lock().await;
        if let Some(session) = sessions.get(host)
            && session.check().await.is_ok()
        {
            return Ok(Arc::clone(session));
        }
        let session = self
            .builder()
            .connect_mux(host)
            .await
            .map_err(|error| connect_error(host, &error))?;
        let session = Arc::new(session);
        sessions.insert(host.to_string(), Arc::clone(&session));
        Ok(session)
    }
}

fn connect_error(host: &str, error: &openssh::Error) -> RemoteError {
    let reason = crate::patroni::root_cause(error);
    if reason.contains("Host key verification failed")
        || reason.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
    {
        RemoteError::HostKey { host: host.into() }
    } else {
        RemoteError::Connect {
            host: host.into(),
            reason: reason
                .lines()
                .map(str::trim)
                .rfind(|line| !line.is_empty())
                .unwrap_or("")
                .to_string(),
        }
    }
}

impl Remote for Ssh {
    async fn run(
        &self,
        host: &str,
        command: &HostCommand,
        timeout: Duration,
    ) -> Result<CommandOutput, RemoteError> {
        let line = command.shell_line();
        // The deadline covers connecting too: a host that hangs during the handshake cannot
        // stretch a step past what its plan says (ssh's ConnectTimeout bounds the TCP connect).
        let exchange = async {
            let session = self.session(host).await?;
            Ok::<_, RemoteError>(session.raw_command(&line).output().await)
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
                self.sessions.lock().await.remove(host);
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

/// Commands on the operator's machine, through `sh -c` with the same line SSH would send.
pub struct Local;

impl Remote for Local {
    async fn run(
        &self,
        host: &str,
        command: &HostCommand,
        timeout: Duration,
    ) -> Result<CommandOutput, RemoteError> {
        let line = command.shell_line();
        let child = tokio::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(&line)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
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

    #[test]
    fn secrets_are_masked_in_output() {
        let masker = Masker::new(["hunter22".to_string(), "ab".to_string()]);
        assert_eq!(masker.mask("password=hunter22; ab"), "password=***; ab");
    }
}
