//! Where everything of a lab lives, in one place, and the lab's recorded state (`lab.json`):
//! the spec it was created with and any member running another Patroni release.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{LabError, LabSpec};
use crate::patroni::Version;

#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub dir: PathBuf,
}

impl Layout {
    pub(super) fn new(dir: &Path) -> Self {
        Layout {
            dir: dir.to_path_buf(),
        }
    }

    pub(super) fn state_file(&self) -> PathBuf {
        self.dir.join("lab.json")
    }

    pub(super) fn lock_file(&self) -> PathBuf {
        self.dir.join(".lock")
    }

    pub(super) fn inventory(&self) -> PathBuf {
        self.dir.join(crate::inventory::FILE_NAME)
    }

    pub(super) fn secrets(&self) -> PathBuf {
        self.dir.join("secrets")
    }

    pub(super) fn secret(&self, name: &str) -> PathBuf {
        self.secrets().join(name)
    }

    pub(super) fn etcd(&self) -> PathBuf {
        self.dir.join("etcd")
    }

    /// The directory of etcd member `number` (1-based): member 1 keeps `etcd/`, where a
    /// 1-member lab has always kept it; the others get `etcd2/`, `etcd3/`.
    pub(super) fn etcd_member(&self, number: u8) -> PathBuf {
        if number <= 1 {
            self.etcd()
        } else {
            self.dir.join(format!("etcd{number}"))
        }
    }

    pub(super) fn consul(&self) -> PathBuf {
        self.dir.join("consul")
    }

    pub(super) fn ssh(&self) -> PathBuf {
        self.dir.join("ssh")
    }

    pub(super) fn alertmanager(&self) -> PathBuf {
        self.dir.join("alertmanager")
    }

    pub(super) fn tls(&self) -> PathBuf {
        self.dir.join("tls")
    }

    pub(super) fn member(&self, name: &str) -> PathBuf {
        self.dir.join("members").join(name)
    }

    pub(super) fn member_config(&self, name: &str) -> PathBuf {
        self.member(name).join("patroni.yml")
    }

    pub(super) fn member_data(&self, name: &str) -> PathBuf {
        self.member(name).join("data")
    }

    /// A member's own pgBackRest configuration (its `pg1-path`), and its log, lock and spool
    /// directories beside it.
    pub(super) fn member_pgbackrest(&self, name: &str) -> PathBuf {
        self.member(name).join("pgbackrest")
    }

    pub(super) fn member_pgbackrest_config(&self, name: &str) -> PathBuf {
        self.member_pgbackrest(name).join("pgbackrest.conf")
    }

    /// The WAL archive and backups of a lab with a standby cluster, and the configuration the
    /// inventory names for listing them.
    pub(super) fn pgbackrest(&self) -> PathBuf {
        self.dir.join("pgbackrest")
    }

    pub(super) fn pgbackrest_repo(&self) -> PathBuf {
        self.pgbackrest().join("repo")
    }

    pub(super) fn pgbackrest_config(&self) -> PathBuf {
        self.pgbackrest().join("pgbackrest.conf")
    }
}

/// What `lab.json` records.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LabState {
    pub spec: LabSpec,
    /// Members started with another Patroni release than the spec's (`member start --patroni-version`).
    #[serde(default)]
    pub member_versions: BTreeMap<String, Version>,
}

impl LabState {
    pub(super) fn load(layout: &Layout) -> Result<Option<Self>, LabError> {
        let path = layout.state_file();
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|error| LabError::Invalid(format!("{}: {error}", path.display()))),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(LabError::io("read", &path, &error)),
        }
    }

    pub(super) fn save(&self, layout: &Layout) -> Result<(), LabError> {
        let path = layout.state_file();
        let text = serde_json::to_string_pretty(self)
            .map_err(|error| LabError::Invalid(error.to_string()))?;
        std::fs::write(&path, text + "\n").map_err(|error| LabError::io("write", &path, &error))
    }

    pub(super) fn version_of(&self, member: &str) -> Version {
        self.member_versions
            .get(member)
            .copied()
            .unwrap_or(self.spec.patroni_version)
    }
}

/// A member of the lab: its name, address, cluster and whether `up` starts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LabMember {
    pub name: String,
    pub address: Ipv4Addr,
    pub spare: bool,
    pub cluster: LabCluster,
}

/// The lab's two clusters: the primary one (scope `demo` by default), and the optional standby
/// cluster `geo` following it from its WAL archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LabCluster {
    Primary,
    Standby,
}

impl LabCluster {
    /// Its Patroni scope, which is also its name in the lab's inventory.
    pub(crate) fn scope(self, spec: &LabSpec) -> &str {
        match self {
            LabCluster::Primary => &spec.scope,
            LabCluster::Standby => super::STANDBY_SCOPE,
        }
    }
}

/// The name the lab gives its primary cluster's member at `index` (0-based) unless a
/// rehearsal mirrors another cluster's names: `node1`, ….
pub(crate) fn own_member_name(index: usize) -> String {
    format!("node{}", index + 1)
}

/// The name of the standby cluster's member at `index` (0-based): `geo1`, ….
pub(crate) fn standby_member_name(index: usize) -> String {
    format!("{}{}", super::STANDBY_SCOPE, index + 1)
}

impl LabSpec {
    /// The primary cluster's members, spares last.
    pub(crate) fn all_members(&self) -> Vec<LabMember> {
        let first = u32::from(self.first_address);
        (0..self.members + self.spares)
            .map(|index| LabMember {
                name: self
                    .mirror
                    .names
                    .get(usize::from(index))
                    .cloned()
                    .unwrap_or_else(|| own_member_name(usize::from(index))),
                address: Ipv4Addr::from(first + u32::from(index)),
                spare: index >= self.members,
                cluster: LabCluster::Primary,
            })
            .collect()
    }

    /// The standby cluster's members (`geo1`, …), on the addresses after the primary's spares.
    pub(crate) fn standby_cluster_members(&self) -> Vec<LabMember> {
        let first = u32::from(self.first_address) + u32::from(self.members + self.spares);
        (0..self.standby_members)
            .map(|index| LabMember {
                name: standby_member_name(usize::from(index)),
                address: Ipv4Addr::from(first + u32::from(index)),
                spare: false,
                cluster: LabCluster::Standby,
            })
            .collect()
    }

    /// Every member of both clusters: what the lab configures, stops and lists.
    pub(crate) fn every_member(&self) -> Vec<LabMember> {
        let mut members = self.all_members();
        members.extend(self.standby_cluster_members());
        members
    }

    /// The members of one of the lab's clusters.
    pub(crate) fn members_of(&self, cluster: LabCluster) -> Vec<LabMember> {
        match cluster {
            LabCluster::Primary => self.all_members(),
            LabCluster::Standby => self.standby_cluster_members(),
        }
    }

    /// A standby cluster needs the primary's WAL archive.
    pub(crate) fn archives_wal(&self) -> bool {
        self.standby_members > 0
    }

    /// The address etcd and sshd listen on: the one just below the first member.
    pub(crate) fn infrastructure_address(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.first_address) - 1)
    }

    /// The lab's etcd members: member 1 on the infrastructure address, the others on the
    /// addresses below it (127.0.0.10, .9, .8 for a lab at .11). A 1-member lab keeps the names
    /// it always had (daemon `etcd`, etcd name `lab`), so labs created before still restart.
    pub(crate) fn etcd_members(&self) -> Vec<EtcdMember> {
        let infrastructure = u32::from(self.infrastructure_address());
        let count = self.etcd_members.max(1);
        (1..=count)
            .map(|number| {
                let (daemon, name) = if count == 1 {
                    ("etcd".to_string(), "lab".to_string())
                } else {
                    (format!("etcd{number}"), format!("etcd{number}"))
                };
                EtcdMember {
                    number,
                    daemon,
                    name,
                    address: Ipv4Addr::from(infrastructure - u32::from(number - 1)),
                }
            })
            .collect()
    }

    /// Each etcd member's `host:port` for clients, member 1 first.
    pub(crate) fn etcd_client_hosts(&self) -> Vec<String> {
        self.etcd_members()
            .iter()
            .map(|member| format!("{}:{}", member.address, super::files::ETCD_CLIENT_PORT))
            .collect()
    }
}

/// One member of the lab's etcd cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EtcdMember {
    /// 1-based, as `pgha lab dcs stop --member N` names it.
    pub number: u8,
    /// The daemon's name in messages and `pgha lab status`.
    pub daemon: String,
    /// etcd's `--name`, as `--initial-cluster` lists it.
    pub name: String,
    pub address: Ipv4Addr,
}
