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

/// A member of the lab: its name, address and whether `up` starts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LabMember {
    pub name: String,
    pub address: Ipv4Addr,
    pub spare: bool,
}

impl LabSpec {
    pub(crate) fn all_members(&self) -> Vec<LabMember> {
        let first = u32::from(self.first_address);
        (0..self.members + self.spares)
            .map(|index| LabMember {
                name: format!("node{}", index + 1),
                address: Ipv4Addr::from(first + u32::from(index)),
                spare: index >= self.members,
            })
            .collect()
    }

    /// The address etcd and sshd listen on: the one just below the first member.
    pub(crate) fn infrastructure_address(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.first_address) - 1)
    }
}
