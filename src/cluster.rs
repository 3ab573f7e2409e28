//! One cluster, reached: from the operator's selection (an inventory, `--api`,
//! `--patroni-config`) to the resolved target and the clients every command uses — REST, and
//! Consul where it is the DCS — and, for runbooks, the live world the executor acts on (SQL,
//! SSH, the secrets to mask in command output). Built here and nowhere else.

use crate::consul::ConsulClient;
use crate::error::Error;
use crate::etcd::EtcdClient;
use crate::exec::LiveCluster;
use crate::inventory::{self, ClusterTarget, Selector};
use crate::observe::{self, ClusterView, ObserveError};
use crate::patroni::PatroniClient;
use crate::postgres::Sql;
use crate::remote::{Masker, Ssh};

/// The target and the clients that read it.
pub struct Connection {
    pub target: ClusterTarget,
    pub client: PatroniClient,
    /// The agent, when Consul is the DCS.
    pub consul: Option<ConsulClient>,
    /// The etcd cluster, when etcd is the DCS and pgha knows where it is.
    pub etcd: Option<EtcdClient>,
}

impl Connection {
    pub async fn open(selector: &Selector) -> Result<Self, Error> {
        let target = inventory::resolve(selector).await?;
        let client = PatroniClient::new(&target.rest)?;
        Self::with_client(target, client)
    }

    /// The connections of several targets (`status --all`): one HTTP client for all those with
    /// the same TLS settings and connect timeout, each with its own credentials.
    pub fn open_many(targets: Vec<ClusterTarget>) -> Vec<Result<Self, Error>> {
        let mut built: Vec<(
            crate::patroni::TlsSettings,
            std::time::Duration,
            reqwest::Client,
        )> = Vec::new();
        targets
            .into_iter()
            .map(|target| {
                let rest = &target.rest;
                let same = built
                    .iter()
                    .find(|(tls, connect, _)| *tls == rest.tls && *connect == rest.connect_timeout);
                let client = if let Some((_, _, http)) = same {
                    PatroniClient::with_http(rest, http.clone())
                } else {
                    let client = PatroniClient::new(rest)?;
                    built.push((rest.tls.clone(), rest.connect_timeout, client.http()));
                    client
                };
                Self::with_client(target, client)
            })
            .collect()
    }

    fn with_client(target: ClusterTarget, client: PatroniClient) -> Result<Self, Error> {
        let consul = consul_client(&target, &client)?;
        let etcd = etcd_client(&target, &client)?;
        Ok(Connection {
            target,
            client,
            consul,
            etcd,
        })
    }

    pub async fn observe(&self) -> Result<ClusterView, ObserveError> {
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

    /// The world a runbook acts on: this connection, plus SQL and SSH where the inventory says.
    pub fn into_live(self) -> Result<LiveCluster, Error> {
        let Connection {
            target,
            client,
            consul,
            etcd,
        } = self;
        let ssh = Ssh::new(
            target.ssh.clone(),
            target
                .rest
                .connect_timeout
                .max(std::time::Duration::from_secs(5)),
        )
        .map_err(|error| Error::BadInput(error.to_string()))?;
        Ok(LiveCluster {
            sql: target.postgres.clone().map(Sql::new),
            ssh,
            consul,
            etcd,
            masker: masker(&target),
            client,
            target,
        })
    }
}

/// The Consul client, when Consul is the cluster's DCS. It shares the REST client's HTTP setup
/// when the TLS settings match: a second client loads the trust store again.
fn consul_client(
    target: &ClusterTarget,
    patroni: &PatroniClient,
) -> Result<Option<ConsulClient>, Error> {
    let Some(settings) = &target.consul else {
        return Ok(None);
    };
    let same_transport =
        settings.tls == target.rest.tls && settings.connect_timeout == target.rest.connect_timeout;
    Ok(Some(if same_transport {
        ConsulClient::with_http(settings, patroni.http())?
    } else {
        ConsulClient::new(settings)?
    }))
}

/// The etcd client, when etcd is the cluster's DCS; like Consul's, over the REST client's HTTP
/// setup when the TLS settings match.
fn etcd_client(
    target: &ClusterTarget,
    patroni: &PatroniClient,
) -> Result<Option<EtcdClient>, Error> {
    let Some(settings) = &target.etcd else {
        return Ok(None);
    };
    let same_transport =
        settings.tls == target.rest.tls && settings.connect_timeout == target.rest.connect_timeout;
    Ok(Some(if same_transport {
        EtcdClient::with_http(settings, patroni.http())?
    } else {
        EtcdClient::new(settings)?
    }))
}

/// Every secret of the target, masked wherever command output is shown or journalled.
fn masker(target: &ClusterTarget) -> Masker {
    Masker::new(
        [
            target
                .rest
                .auth
                .as_ref()
                .map(|auth| auth.password.expose().to_string()),
            target
                .postgres
                .as_ref()
                .and_then(|pg| pg.password.as_ref())
                .map(|password| password.expose().to_string()),
            target
                .consul
                .as_ref()
                .and_then(|consul| consul.token.as_ref())
                .map(|token| token.expose().to_string()),
            target
                .etcd
                .as_ref()
                .and_then(|etcd| etcd.password.as_ref())
                .map(|password| password.expose().to_string()),
            target
                .alertmanager
                .as_ref()
                .and_then(|alertmanager| alertmanager.auth.as_ref())
                .map(|auth| auth.secret().expose().to_string()),
        ]
        .into_iter()
        .flatten(),
    )
}
