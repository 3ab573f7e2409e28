//! The real world for the executor: the cluster's members through the Patroni client,
//! PostgreSQL where the inventory says how to reach it, hosts over SSH (only the inventory's, at
//! the hosts it gives, whatever the plan says), Consul, and the Alertmanager a plan names, with
//! the credentials the inventory gives it (plans hold URLs only).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::{Actuator, Observer};
use crate::alerts::{AlertError, Alertmanager};
use crate::consul::{ConsulClient, ConsulError};
use crate::etcd::EtcdError;
use crate::inventory::ClusterTarget;
use crate::observe::{self, ClusterView, ObserveError};
use crate::patroni::{
    ActionResponse, FailoverRequest, PatroniClient, PatroniError, ReinitializeRequest,
    RestartRequest, SwitchoverRequest,
};
use crate::plan::render::CheckedPrecheck;
use crate::plan::{
    Action, ConsulAction, EtcdAction, PatroniAction, PatroniCall, Plan, RemoteAction,
    SilenceAction, SqlAction, SqlStatement, Verdict,
};
use crate::postgres::{BackupProgress, Sql, SqlError};
use crate::remote::{CommandOutput, Local, Masker, Remote, RemoteError, Ssh, Transport};

const ALERTMANAGER_TIMEOUT: Duration = Duration::from_secs(10);

pub struct LiveCluster {
    pub target: ClusterTarget,
    pub client: PatroniClient,
    pub sql: Option<Sql>,
    pub ssh: Ssh,
    /// The agent, when Consul is the DCS.
    pub consul: Option<ConsulClient>,
    /// The etcd cluster, when etcd is the DCS and the inventory says where.
    pub etcd: Option<crate::etcd::EtcdClient>,
    /// The secrets of this target, masked in command output.
    pub masker: Masker,
}

impl Observer for LiveCluster {
    async fn observe(&self) -> Result<ClusterView, ObserveError> {
        observe::observe(
            &self.target,
            &self.client,
            observe::DcsClients {
                consul: self.consul.as_ref(),
                etcd: self.etcd.as_ref(),
            },
        )
        .await
    }

    async fn backup_progress(&self, host: &str) -> Option<BackupProgress> {
        // Progress is a nicety: without SQL access the wait still shows the member's state.
        if !self.target.lists_host(host) {
            return None;
        }
        self.sql
            .as_ref()?
            .basebackup_progress(host)
            .await
            .ok()
            .flatten()
    }

    async fn silence_state(&self, url: &str, id: &str) -> Option<String> {
        let alertmanager = self.alertmanager(url).ok()?;
        alertmanager.state(id).await.ok()
    }

    async fn member_config(&self, api_url: &str) -> Option<serde_json::Value> {
        self.client.config(api_url).await.ok()
    }

    async fn access(&self, plan: &Plan, view: &ClusterView) -> Vec<CheckedPrecheck> {
        let mut probes: Vec<CheckedPrecheck> = self.credentials(view).await.into_iter().collect();
        for url in silenced_through(plan) {
            let verdict = match self.alertmanager(&url) {
                Ok(alertmanager) => match alertmanager.version().await {
                    Ok(version) => Verdict {
                        passed: true,
                        observed: format!("Alertmanager {version} answers"),
                    },
                    Err(error) => Verdict {
                        passed: false,
                        observed: error.to_string(),
                    },
                },
                Err(error) => Verdict {
                    passed: false,
                    observed: error.to_string(),
                },
            };
            probes.push(CheckedPrecheck::probe(
                format!("Alertmanager at {url} answers"),
                verdict,
            ));
        }
        probes
    }
}

/// The Alertmanagers the plan creates silences in, each once.
fn silenced_through(plan: &Plan) -> BTreeSet<String> {
    plan.steps
        .iter()
        .filter_map(|step| match &step.action {
            Action::Silence(SilenceAction::Create { url, .. }) => Some(url.clone()),
            _ => None,
        })
        .collect()
}

impl LiveCluster {
    /// A client for the Alertmanager at `url` (from the plan), with the credentials the
    /// inventory gives that URL: plans and journals never hold them.
    fn alertmanager(&self, url: &str) -> Result<Alertmanager, AlertError> {
        Ok(Alertmanager::new(url, ALERTMANAGER_TIMEOUT)?
            .with_auth(self.target.alertmanager_auth(url)))
    }

    /// A plan is data (resumed from a journal, planned against an older inventory): before a
    /// command leaves, its member must be one the inventory lists and its host the one the
    /// inventory gives that member — for local service control too, which acts on the member.
    fn check_remote_target(&self, action: &RemoteAction) -> Result<(), RemoteError> {
        let refuse = |reason: String| RemoteError::NotATarget {
            member: action.member.clone(),
            host: action.host.clone(),
            reason,
        };
        let host = self
            .target
            .remote_host(&action.member)
            .map_err(|error| refuse(error.to_string()))?;
        if host != action.host {
            return Err(refuse(format!(
                "{} gives {} the host {host}: plan the run again from the inventory",
                self.target.origin, action.member
            )));
        }
        Ok(())
    }

    /// Whether the REST credentials are accepted; `None` when none are configured.
    async fn credentials(&self, view: &ClusterView) -> Option<CheckedPrecheck> {
        self.target.rest.auth.as_ref()?;
        let member = view.members.iter().find(|member| member.is_reachable())?;
        let verdict = match self.client.verify_credentials(&member.api_url).await {
            Ok(()) => Verdict {
                passed: true,
                observed: format!("{} accepted them", member.name),
            },
            Err(error @ (PatroniError::Unauthorized { .. } | PatroniError::Forbidden { .. })) => {
                Verdict {
                    passed: false,
                    observed: error.to_string(),
                }
            }
            Err(error) => Verdict {
                passed: false,
                observed: format!("could not check: {error}"),
            },
        };
        Some(CheckedPrecheck::probe(
            "the REST credentials are accepted",
            verdict,
        ))
    }
}

impl Actuator for LiveCluster {
    async fn patroni(&self, action: &PatroniAction) -> Result<ActionResponse, PatroniError> {
        let url = action.api_url.as_str();
        // A plan is data: whatever it says, the credentials go only to a member pgha was given.
        if !self.target.lists_api(url) {
            return Err(PatroniError::Unlisted { url: url.into() });
        }
        match &action.call {
            PatroniCall::Reinitialize { force, from_leader } => {
                self.client
                    .reinitialize(
                        url,
                        &ReinitializeRequest {
                            force: *force,
                            from_leader: *from_leader,
                        },
                    )
                    .await
            }
            PatroniCall::Switchover {
                leader,
                candidate,
                scheduled_at,
            } => {
                let request = SwitchoverRequest {
                    leader: leader.clone(),
                    candidate: candidate.clone(),
                    scheduled_at: scheduled_at.clone(),
                };
                self.client.switchover(url, &request).await
            }
            PatroniCall::Failover { candidate } => {
                let request = FailoverRequest {
                    candidate: candidate.clone(),
                };
                self.client.failover(url, &request).await
            }
            PatroniCall::PatchConfig { patch } => {
                self.client
                    .patch_config(url, patch)
                    .await
                    .map(|_| ActionResponse {
                        status: 200,
                        message: "dynamic configuration updated".into(),
                    })
            }
            PatroniCall::Reload => self.client.reload(url).await,
            PatroniCall::CancelSwitchover | PatroniCall::CancelRestart => {
                self.client.cancel(url, action.call.path()).await
            }
            PatroniCall::Restart { restart_pending } => {
                let request = RestartRequest {
                    restart_pending: *restart_pending,
                    ..RestartRequest::default()
                };
                self.client.restart(url, &request).await
            }
        }
    }

    async fn sql(&self, action: &SqlAction) -> Result<(), SqlError> {
        if !self.target.lists_host(&action.host) {
            return Err(SqlError::Unlisted {
                host: action.host.clone(),
            });
        }
        let Some(sql) = &self.sql else {
            return Err(SqlError::Connect {
                host: action.host.clone(),
                port: 5432,
                reason: "the inventory has no `postgres:` section".into(),
            });
        };
        match action.statement {
            SqlStatement::Checkpoint => sql.checkpoint(&action.host).await,
            SqlStatement::NoTransactionOlderThan { seconds } => {
                sql.no_transaction_older_than(&action.host, Duration::from_secs(seconds))
                    .await
            }
            SqlStatement::InactiveSlotsRetainAtMost { bytes } => {
                sql.inactive_slots_retain_at_most(&action.host, bytes).await
            }
        }
    }

    async fn consul(&self, action: &ConsulAction) -> Result<(), ConsulError> {
        let consul = self.consul.as_ref().ok_or_else(|| {
            ConsulError::Setup(format!(
                "cluster {} has no Consul agent in the inventory (dcs.kind: consul)",
                self.target.cluster
            ))
        })?;
        match action {
            ConsulAction::DeleteTree { prefix, .. } => consul.delete_tree(prefix).await,
            ConsulAction::SetConfig {
                key, index, value, ..
            } => {
                if consul
                    .compare_and_put(key, *index, value.as_bytes())
                    .await?
                {
                    Ok(())
                } else {
                    Err(ConsulError::Changed {
                        key: key.clone(),
                        read: *index,
                    })
                }
            }
        }
    }

    async fn etcd(&self, action: &EtcdAction) -> Result<(), EtcdError> {
        let etcd = self.etcd.as_ref().ok_or_else(|| {
            EtcdError::Setup(format!(
                "cluster {} has no etcd endpoints in the inventory (dcs.kind: etcd)",
                self.target.cluster
            ))
        })?;
        match action {
            EtcdAction::DeleteTree { prefix, .. } => etcd.delete_tree(prefix).await.map(|_| ()),
            EtcdAction::SetConfig {
                key,
                mod_revision,
                value,
                ..
            } => {
                if etcd
                    .compare_and_put(key, *mod_revision, value.as_bytes())
                    .await?
                {
                    Ok(())
                } else {
                    Err(EtcdError::Changed {
                        key: key.clone(),
                        read: *mod_revision,
                    })
                }
            }
        }
    }

    async fn remote(&self, action: &RemoteAction) -> Result<CommandOutput, RemoteError> {
        self.check_remote_target(action)?;
        let output = match action.transport {
            Transport::Ssh => {
                self.ssh
                    .run(&action.host, &action.command, action.timeout)
                    .await?
            }
            Transport::Local => {
                Local
                    .run(&action.host, &action.command, action.timeout)
                    .await?
            }
        };
        Ok(CommandOutput {
            status: output.status,
            stdout: self.masker.mask(&output.stdout),
            stderr: self.masker.mask(&output.stderr),
        })
    }

    async fn remote_private(
        &self,
        action: &RemoteAction,
        input: Option<&[u8]>,
    ) -> Result<CommandOutput, RemoteError> {
        match action.transport {
            Transport::Ssh => {
                self.ssh
                    .run_with_input(&action.host, &action.command, input, action.timeout)
                    .await
            }
            Transport::Local => {
                Local
                    .run_with_input(&action.host, &action.command, input, action.timeout)
                    .await
            }
        }
    }

    async fn create_silence(
        &self,
        url: &str,
        labels: &BTreeMap<String, String>,
        duration: Duration,
        comment: &str,
    ) -> Result<String, AlertError> {
        self.alertmanager(url)?
            .create(labels, duration, "pgha", comment)
            .await
    }

    async fn expire_silence(&self, url: &str, id: &str) -> Result<(), AlertError> {
        self.alertmanager(url)?.expire(id).await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::observe::testing::target;
    use crate::patroni::RestSettings;
    use crate::remote::HostCommand;

    fn live(target: ClusterTarget) -> LiveCluster {
        LiveCluster {
            ssh: Ssh::new(target.ssh.clone(), Duration::from_secs(5)).unwrap(),
            client: PatroniClient::new(&RestSettings::default()).unwrap(),
            target,
            sql: None,
            consul: None,
            etcd: None,
            masker: Masker::default(),
        }
    }

    fn touching(member: &str, host: &str, canary: &std::path::Path) -> RemoteAction {
        RemoteAction {
            member: member.into(),
            host: host.into(),
            transport: Transport::Local,
            command: HostCommand::new("touch").arg(canary.display().to_string()),
            timeout: Duration::from_secs(5),
        }
    }

    /// Defect 9, behind the planner: whatever a plan says (one resumed from a journal, one
    /// planned against an older inventory), a command goes only to an inventory member, at the
    /// host the inventory gives it — through SSH or local service control alike.
    #[tokio::test]
    async fn commands_go_only_to_members_the_inventory_lists_at_its_hosts() {
        let world = live(target(&["node1", "node2"]));
        let scratch = tempfile::tempdir().unwrap();
        let canary = scratch.path().join("ran");
        for (member, host) in [("node9", "10.66.0.9"), ("node1", "10.66.0.9")] {
            let error = world
                .remote(&touching(member, host, &canary))
                .await
                .expect_err(member);
            assert_eq!(error.exit(), crate::exit::Exit::BadInput, "{error}");
            assert!(!canary.exists(), "{member} at {host}: the command ran");
        }
        world
            .remote(&touching("node1", "127.0.0.31", &canary))
            .await
            .unwrap();
        assert!(canary.exists());
    }

    /// Whatever a plan says, REST writes and SQL go only to members pgha was given: no
    /// request leaves for another address (none listens there, so a sent one would fail to
    /// connect instead).
    #[tokio::test]
    async fn credentials_go_only_to_members_pgha_was_given() {
        let world = live(target(&["node1", "node2"]));
        let reload = |api_url: &str| PatroniAction {
            member: "node9".into(),
            api_url: api_url.into(),
            call: PatroniCall::Reload,
        };
        let error = world
            .patroni(&reload("http://127.0.0.99:8008"))
            .await
            .unwrap_err();
        assert!(matches!(error, PatroniError::Unlisted { .. }), "{error}");
        assert_eq!(error.exit(), crate::exit::Exit::BadInput);
        let error = world
            .sql(&SqlAction {
                member: "node9".into(),
                host: "127.0.0.99".into(),
                statement: SqlStatement::Checkpoint,
            })
            .await
            .unwrap_err();
        assert!(matches!(error, SqlError::Unlisted { .. }), "{error}");
        assert_eq!(world.backup_progress("127.0.0.99").await, None);
    }
}
