//! `pgha lab status`: the lab's processes and addresses, as a table or a document; and the
//! cluster table `lab up` prints when it is done.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::daemons::{
    alertmanager_daemon, consul_daemon, etcd_daemons, member_daemon, postmaster_pid, sshd_daemon,
};
use super::files;
use super::layout::{LabState, Layout};
use super::process::RunAs;
use super::{LabDcs, LabError, LabSpec};
use crate::exit::Exit;
use crate::observe::ClusterView;
use crate::patroni::Version;
use crate::ui::{self, OutputFormat};

#[derive(Debug, Serialize)]
pub(super) struct LabStatusDocument {
    dir: PathBuf,
    spec: LabSpec,
    components: Vec<ComponentStatus>,
}

#[derive(Debug, Serialize)]
pub(super) struct ComponentStatus {
    name: String,
    address: String,
    pid: Option<u32>,
    running: bool,
    patroni_version: Option<Version>,
    postgres_pid: Option<u32>,
    spare: bool,
}

pub(super) fn status(layout: &Layout, format: OutputFormat) -> Result<Exit, LabError> {
    let state = LabState::load(layout)?.ok_or_else(|| LabError::NoLab {
        dir: layout.dir.clone(),
    })?;
    let run_as = RunAs::detect()?;
    let spec = &state.spec;
    let infrastructure = spec.infrastructure_address();
    let infrastructure_component =
        |name: String, address: String, pid: Option<u32>| ComponentStatus {
            name,
            address,
            pid,
            running: false,
            patroni_version: None,
            postgres_pid: None,
            spare: false,
        };
    let mut components: Vec<ComponentStatus> = match spec.dcs {
        LabDcs::Etcd => etcd_daemons(layout, spec)
            .into_iter()
            .map(|(member, daemon)| {
                infrastructure_component(
                    daemon.name.clone(),
                    format!("{}:{}", member.address, files::ETCD_CLIENT_PORT),
                    daemon.running_pid(),
                )
            })
            .collect(),
        LabDcs::Consul => vec![infrastructure_component(
            "consul (double)".into(),
            format!("{infrastructure}:{}", files::CONSUL_PORT),
            consul_daemon(layout, spec)?.running_pid(),
        )],
    };
    components.extend([
        ComponentStatus {
            name: "sshd".into(),
            address: format!(
                "*:{} ({} addresses)",
                files::SSH_PORT,
                files::ssh_addresses(spec).len()
            ),
            pid: sshd_daemon(layout).running_pid(),
            running: false,
            patroni_version: None,
            postgres_pid: None,
            spare: false,
        },
        ComponentStatus {
            name: "alertmanager".into(),
            address: format!("{infrastructure}:{}", files::ALERTMANAGER_PORT),
            pid: alertmanager_daemon(layout, spec).running_pid(),
            running: false,
            patroni_version: None,
            postgres_pid: None,
            spare: false,
        },
    ]);
    for member in spec.every_member() {
        components.push(ComponentStatus {
            address: format!("{}:8008 / :5432", member.address),
            pid: member_daemon(layout, &state, &member, run_as).running_pid(),
            running: false,
            patroni_version: Some(state.version_of(&member.name)),
            postgres_pid: postmaster_pid(&layout.member_data(&member.name)),
            spare: member.spare,
            name: member.name,
        });
    }
    for component in &mut components {
        component.running = component.pid.is_some();
    }
    let document = LabStatusDocument {
        dir: layout.dir.clone(),
        spec: spec.clone(),
        components,
    };
    let text = match format {
        OutputFormat::Table => render_lab_status(&document),
        other => ui::render_document(other, &document)
            .map_err(|error| LabError::io("render", Path::new("stdout"), &error))?,
    };
    ui::print_stdout(&text).map_err(|error| LabError::io("write", Path::new("stdout"), &error))?;
    Ok(Exit::Success)
}

pub(super) fn render_lab_status(document: &LabStatusDocument) -> String {
    let rows = document
        .components
        .iter()
        .map(|component| {
            vec![
                component.name.clone(),
                component.address.clone(),
                component
                    .pid
                    .map_or_else(|| "-".into(), |pid| pid.to_string()),
                if component.running {
                    "running".into()
                } else {
                    "stopped".into()
                },
                component
                    .patroni_version
                    .map(|version| version.to_string())
                    .unwrap_or_default(),
                component
                    .postgres_pid
                    .map(|pid| pid.to_string())
                    .unwrap_or_default(),
                if component.spare {
                    "spare".into()
                } else {
                    String::new()
                },
            ]
        })
        .collect();
    let spec = &document.spec;
    let title = if spec.archives_wal() {
        format!(
            "Lab: {} ({}, standby cluster {})",
            document.dir.display(),
            spec.scope,
            super::STANDBY_SCOPE
        )
    } else {
        format!("Lab: {} ({})", document.dir.display(), spec.scope)
    };
    let mut text = ui::table(
        Some(&title),
        &[
            "Component",
            "Address",
            "PID",
            "State",
            "Patroni",
            "PostgreSQL PID",
            "Note",
        ],
        rows,
        &[2, 5],
    );
    text.push('\n');
    text
}

pub(super) fn print_view_summary(view: &ClusterView) -> Result<(), LabError> {
    let document =
        crate::status::StatusDocument::from_view(view, jiff::Timestamp::now().to_string());
    ui::print_stdout(&crate::status::render_table(&document))
        .map_err(|error| LabError::io("write", Path::new("stdout"), &error))
}
