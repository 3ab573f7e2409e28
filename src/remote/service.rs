//! Service control: how an environment stops, starts, enables and restarts Patroni on a member,
//! and runs a command as the database's OS user. Runbooks only say "stop Patroni on M"; the
//! environment's template decides the command and where it runs (over SSH on the member's host,
//! or locally for `kubectl`). Every value in a command is validated here.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{HostCommand, Script, UnsafeValue, checked_name, checked_path};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ServiceControl {
    /// `systemctl … <unit>` on the member's host, over SSH.
    Systemd {
        unit: String,
        sudo: bool,
        db_user: String,
        /// The command installing a Patroni release, one word per item, `{version}` replaced.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        upgrade: Vec<String>,
    },
    /// `kubectl` on the operator's machine: a member is a pod; restarting it is deleting it.
    Kubernetes {
        namespace: String,
        /// The pod's name, with `{member}` replaced by the member's name.
        pod: String,
        context: Option<String>,
        db_user: String,
    },
    /// The local lab: `pgha lab member …` on the member's host, through the lab's own sshd.
    Lab {
        pgha: PathBuf,
        dir: PathBuf,
        db_user: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceAction {
    Stop,
    Start,
    Enable,
    Disable,
    Restart,
}

impl ServiceAction {
    pub fn word(self) -> &'static str {
        match self {
            ServiceAction::Stop => "stop",
            ServiceAction::Start => "start",
            ServiceAction::Enable => "enable",
            ServiceAction::Disable => "disable",
            ServiceAction::Restart => "restart",
        }
    }
}

/// Where a command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// Over SSH, on the member's host.
    Ssh,
    /// On the operator's machine.
    Local,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Unsafe(#[from] UnsafeValue),
    #[error("{kind} service control cannot {action} Patroni: {reason}")]
    Unsupported {
        kind: &'static str,
        action: &'static str,
        reason: &'static str,
    },
}

impl ServiceControl {
    pub fn kind(&self) -> &'static str {
        match self {
            ServiceControl::Systemd { .. } => "systemd",
            ServiceControl::Kubernetes { .. } => "kubernetes",
            ServiceControl::Lab { .. } => "lab",
        }
    }

    /// The command that does `action` to Patroni on `member`, and where it runs.
    pub fn command(
        &self,
        action: ServiceAction,
        member: &str,
    ) -> Result<(Transport, HostCommand), ServiceError> {
        let member = checked_name("member", member)?;
        match self {
            ServiceControl::Systemd { unit, sudo, .. } => {
                let unit = checked_name("systemd unit", unit)?;
                Ok((
                    Transport::Ssh,
                    HostCommand::new("systemctl")
                        .args([action.word().to_string(), unit])
                        .sudo(*sudo),
                ))
            }
            ServiceControl::Kubernetes {
                namespace,
                pod,
                context,
                ..
            } => {
                let pod = pod_name(pod, &member)?;
                let kubectl = kubectl(namespace, context.as_deref())?;
                match action {
                    // The StatefulSet recreates the pod: this is how a pod is rebuilt.
                    ServiceAction::Restart => Ok((
                        Transport::Local,
                        kubectl.args(["delete", "pod", pod.as_str(), "--wait=false"]),
                    )),
                    ServiceAction::Stop
                    | ServiceAction::Start
                    | ServiceAction::Enable
                    | ServiceAction::Disable => Err(ServiceError::Unsupported {
                        kind: "kubernetes",
                        action: action.word(),
                        reason: "a pod's Patroni runs as long as the pod does; restart (delete) the pod instead",
                    }),
                }
            }
            ServiceControl::Lab { pgha, dir, .. } => {
                let pgha = checked_path("pgha binary", &pgha.to_string_lossy())?;
                let dir = checked_path("lab directory", &dir.to_string_lossy())?;
                let lab = HostCommand::new(&pgha).args(["lab", "--dir", dir.as_str(), "member"]);
                match action {
                    ServiceAction::Stop | ServiceAction::Start => {
                        Ok((Transport::Ssh, lab.args([action.word(), member.as_str()])))
                    }
                    ServiceAction::Restart => Ok((
                        Transport::Ssh,
                        Script::new(&[
                            "set -e; pgha=$1; dir=$2; member=$3",
                            r#""$pgha" lab --dir "$dir" member stop "$member""#,
                            r#""$pgha" lab --dir "$dir" member start "$member""#,
                        ])
                        .values([pgha, dir, member])
                        .command(),
                    )),
                    // The lab has no boot-time enablement: nothing to do, said explicitly.
                    ServiceAction::Enable | ServiceAction::Disable => {
                        Ok((Transport::Ssh, HostCommand::new("true")))
                    }
                }
            }
        }
    }

    /// How `member` moves to Patroni `version` once its Patroni is stopped: the commands pgha
    /// runs (install, then start on the new release), or the work only a human can do.
    pub fn upgrade(&self, member: &str, version: &str) -> Result<Upgrade, ServiceError> {
        let member = checked_name("member", member)?;
        let version = checked_name("Patroni version", version)?;
        match self {
            ServiceControl::Systemd {
                unit,
                sudo,
                upgrade,
                ..
            } => {
                let Some((program, args)) = upgrade.split_first() else {
                    return Err(ServiceError::Unsupported {
                        kind: "systemd",
                        action: "upgrade",
                        reason: "the inventory's service: section has no `upgrade` command (e.g. [apt-get, install, -y, \"patroni={version}*\"])",
                    });
                };
                let program = if program.starts_with('/') {
                    checked_path("upgrade program", program)?
                } else {
                    checked_name("upgrade program", program)?
                };
                let install = HostCommand::new(&program)
                    .args(args.iter().map(|word| word.replace("{version}", &version)))
                    .sudo(*sudo);
                let unit = checked_name("systemd unit", unit)?;
                let start = HostCommand::new("systemctl")
                    .args(["start".to_string(), unit])
                    .sudo(*sudo);
                Ok(Upgrade::Commands(vec![
                    (Transport::Ssh, install),
                    (Transport::Ssh, start),
                ]))
            }
            ServiceControl::Kubernetes { pod, .. } => {
                let pod = pod_name(pod, &member)?;
                Ok(Upgrade::ByHand(vec![
                    format!(
                        "the pod template's image runs Patroni {version}, and the StatefulSet does not roll pods by itself (updateStrategy OnDelete)"
                    ),
                    format!(
                        "delete pod {pod} (`kubectl delete pod {pod}`): it comes back on the new image"
                    ),
                ]))
            }
            ServiceControl::Lab { pgha, dir, .. } => {
                let pgha = checked_path("pgha binary", &pgha.to_string_lossy())?;
                let dir = checked_path("lab directory", &dir.to_string_lossy())?;
                // The lab's releases are virtualenvs: starting on one is the upgrade.
                let start = HostCommand::new(&pgha).args([
                    "lab",
                    "--dir",
                    dir.as_str(),
                    "member",
                    "start",
                    member.as_str(),
                    "--patroni-version",
                    version.as_str(),
                ]);
                Ok(Upgrade::Commands(vec![(Transport::Ssh, start)]))
            }
        }
    }

    /// A command that succeeds when Patroni is installed for `member` (its systemd unit, its lab
    /// configuration); `None` on Kubernetes, where the pod is the installation.
    pub fn installed(
        &self,
        member: &str,
    ) -> Result<Option<(Transport, HostCommand)>, ServiceError> {
        let member = checked_name("member", member)?;
        match self {
            ServiceControl::Systemd { unit, sudo, .. } => {
                let unit = checked_name("systemd unit", unit)?;
                Ok(Some((
                    Transport::Ssh,
                    HostCommand::new("systemctl")
                        .args(["cat".to_string(), unit])
                        .sudo(*sudo),
                )))
            }
            ServiceControl::Kubernetes { .. } => Ok(None),
            ServiceControl::Lab { dir, .. } => {
                let dir = checked_path("lab directory", &dir.to_string_lossy())?;
                Ok(Some((
                    Transport::Ssh,
                    HostCommand::new("test")
                        .arg("-f")
                        .arg(format!("{dir}/members/{member}/patroni.yml")),
                )))
            }
        }
    }

    /// `program args…` run as the database's OS user on `member`'s host (or in its pod).
    pub fn as_db_user(
        &self,
        member: &str,
        command: HostCommand,
    ) -> Result<(Transport, HostCommand), ServiceError> {
        let member = checked_name("member", member)?;
        match self {
            ServiceControl::Systemd { db_user, .. } => {
                let user = checked_name("OS user", db_user)?;
                Ok((Transport::Ssh, command.as_user(Some(user))))
            }
            // The lab logs in as root, and minimal hosts have no sudo: util-linux's runuser.
            ServiceControl::Lab { db_user, .. } => {
                let user = checked_name("OS user", db_user)?;
                let switched = HostCommand::new("runuser")
                    .args(["-u".to_string(), user, "--".to_string(), command.program])
                    .args(command.args);
                Ok((Transport::Ssh, switched))
            }
            ServiceControl::Kubernetes {
                namespace,
                pod,
                context,
                ..
            } => {
                let pod = pod_name(pod, &member)?;
                let mut exec =
                    kubectl(namespace, context.as_deref())?.args(["exec", pod.as_str(), "--"]);
                exec = exec.arg(command.program).args(command.args);
                Ok((Transport::Local, exec))
            }
        }
    }
}

/// How a member moves to another Patroni release, with its Patroni stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upgrade {
    /// Run in order: install the release where the platform needs it, then start Patroni on it.
    Commands(Vec<(Transport, HostCommand)>),
    /// What a human does (Kubernetes: the image), confirmed by hand.
    ByHand(Vec<String>),
}

fn kubectl(namespace: &str, context: Option<&str>) -> Result<HostCommand, ServiceError> {
    let mut command = HostCommand::new("kubectl");
    if let Some(context) = context {
        command = command.args([
            "--context".to_string(),
            checked_name("kubectl context", context)?,
        ]);
    }
    Ok(command.args(["-n".to_string(), checked_name("namespace", namespace)?]))
}

fn pod_name(template: &str, member: &str) -> Result<String, ServiceError> {
    Ok(checked_name("pod", &template.replace("{member}", member))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(control: &ServiceControl, action: ServiceAction) -> String {
        let (transport, command) = control.command(action, "node2").unwrap();
        format!("{transport:?}: {command}")
    }

    #[test]
    fn systemd_runs_systemctl_on_the_host() {
        let control = ServiceControl::Systemd {
            unit: "patroni".into(),
            sudo: true,
            db_user: "postgres".into(),
            upgrade: Vec::new(),
        };
        assert_eq!(
            render(&control, ServiceAction::Stop),
            "Ssh: sudo -n systemctl stop patroni"
        );
        assert_eq!(
            render(&control, ServiceAction::Enable),
            "Ssh: sudo -n systemctl enable patroni"
        );
        let (_, command) = control
            .as_db_user("node2", HostCommand::new("pg_isready"))
            .unwrap();
        assert_eq!(command.shell_line(), "sudo -n -u postgres pg_isready");
    }

    #[test]
    fn kubernetes_rebuilds_pods_from_the_operators_machine() {
        let control = ServiceControl::Kubernetes {
            namespace: "databases".into(),
            pod: "main-db-{member}".into(),
            context: Some("prod".into()),
            db_user: "postgres".into(),
        };
        assert_eq!(
            render(&control, ServiceAction::Restart),
            "Local: kubectl --context prod -n databases delete pod main-db-node2 --wait=false"
        );
        assert!(matches!(
            control.command(ServiceAction::Stop, "node2"),
            Err(ServiceError::Unsupported { .. })
        ));
        let (transport, command) = control
            .as_db_user("node2", HostCommand::new("psql").arg("-c").arg("select 1"))
            .unwrap();
        assert_eq!(transport, Transport::Local);
        assert_eq!(
            command.shell_line(),
            "kubectl --context prod -n databases exec main-db-node2 -- psql -c 'select 1'"
        );
    }

    #[test]
    fn the_lab_controls_members_through_its_own_sshd() {
        let control = ServiceControl::Lab {
            pgha: "/usr/local/bin/pgha".into(),
            dir: "/var/lib/pgha/lab".into(),
            db_user: "postgres".into(),
        };
        assert_eq!(
            render(&control, ServiceAction::Stop),
            "Ssh: /usr/local/bin/pgha lab --dir /var/lib/pgha/lab member stop node2"
        );
        assert_eq!(render(&control, ServiceAction::Enable), "Ssh: true");
        let (_, command) = control
            .as_db_user("node2", HostCommand::new("ls").arg("/data dir"))
            .unwrap();
        assert_eq!(
            command.shell_line(),
            "runuser -u postgres -- ls '/data dir'"
        );
    }

    #[test]
    fn hostile_values_never_reach_a_command() {
        let control = ServiceControl::Systemd {
            unit: "patroni; reboot".into(),
            sudo: true,
            db_user: "postgres".into(),
            upgrade: Vec::new(),
        };
        assert!(matches!(
            control.command(ServiceAction::Stop, "node2"),
            Err(ServiceError::Unsafe(_))
        ));
        let control = ServiceControl::Systemd {
            unit: "patroni".into(),
            sudo: true,
            db_user: "postgres".into(),
            upgrade: Vec::new(),
        };
        for member in ["node2 && id", "$(id)", "-f"] {
            assert!(
                control.command(ServiceAction::Stop, member).is_err(),
                "{member:?}"
            );
        }
        let pods = ServiceControl::Kubernetes {
            namespace: "db".into(),
            pod: "{member}".into(),
            context: None,
            db_user: "postgres".into(),
        };
        assert!(pods.command(ServiceAction::Restart, "x;y").is_err());
    }
}
