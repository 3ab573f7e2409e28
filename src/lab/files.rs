//! The files a lab is made of: generated passwords, SSH keys, TLS certificates, each member's
//! `patroni.yml`, the sshd configuration and the inventory pgha reads for `--env lab`. Secrets
//! are files with mode 0600; configs embedding them are owned by the daemon account.

use std::fmt::Write as _;
use std::io::Read;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::layout::{LabCluster, LabMember, Layout};
use super::pgbackrest;
use super::process::RunAs;
use super::{LabDcs, LabError, LabSpec};

pub(crate) const REST_USER: &str = "patroni";
pub(crate) const SSH_PORT: u16 = 2222;
pub(crate) const ETCD_CLIENT_PORT: u16 = 2379;
pub(crate) const ETCD_PEER_PORT: u16 = 2380;
pub(crate) const ALERTMANAGER_PORT: u16 = 9093;
pub(crate) const CONSUL_PORT: u16 = 8500;
/// The alert the lab's inventory silences while a replica catches up (seed 000).
pub(crate) const LAG_ALERT: &str = "PostgresReplicationLagHigh";
pub(crate) const POSTGRES_BIN: &str = "/usr/lib/postgresql/15/bin";

/// The lab's generated passwords.
pub(crate) struct Passwords {
    pub rest: String,
    pub superuser: String,
    pub replication: String,
    pub rewind: String,
}

impl Passwords {
    /// Reads the lab's passwords, generating any that do not exist yet.
    pub(super) fn ensure(layout: &Layout) -> Result<Self, LabError> {
        let dir = layout.secrets();
        create_dir(&dir, 0o700)?;
        Ok(Passwords {
            rest: secret(layout, "rest-password")?,
            superuser: secret(layout, "superuser-password")?,
            replication: secret(layout, "replication-password")?,
            rewind: secret(layout, "rewind-password")?,
        })
    }
}

fn secret(layout: &Layout, name: &str) -> Result<String, LabError> {
    let path = layout.secret(name);
    if let Ok(existing) = std::fs::read_to_string(&path) {
        return Ok(existing.trim().to_string());
    }
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut bytes))
        .map_err(|error| LabError::io("read", Path::new("/dev/urandom"), &error))?;
    let value: String = bytes.iter().fold(String::new(), |mut hex, byte| {
        let _ = write!(hex, "{byte:02x}");
        hex
    });
    write_file(&path, &format!("{value}\n"), 0o600)?;
    Ok(value)
}

pub(crate) fn create_dir(path: &Path, mode: u32) -> Result<(), LabError> {
    std::fs::create_dir_all(path).map_err(|error| LabError::io("create", path, &error))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|error| LabError::io("set permissions on", path, &error))
}

pub(crate) fn write_file(path: &Path, content: &str, mode: u32) -> Result<(), LabError> {
    std::fs::write(path, content).map_err(|error| LabError::io("write", path, &error))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|error| LabError::io("set permissions on", path, &error))
}

fn tool(program: &str, args: &[&str], what: &str) -> Result<(), LabError> {
    let output = Command::new(program).args(args).output().map_err(|error| {
        if error.kind() == std::io::ErrorKind::NotFound {
            LabError::Missing {
                what: program.into(),
                hint: "run scripts/install-deps.sh".into(),
            }
        } else {
            LabError::io(what, Path::new(program), &error)
        }
    })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(LabError::ToolFailed {
            what: what.into(),
            output: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        })
    }
}

/// SSH host key and client key for the lab's sshd, created once.
pub(crate) fn ensure_ssh_keys(layout: &Layout) -> Result<(), LabError> {
    let dir = layout.ssh();
    create_dir(&dir, 0o700)?;
    for (file, comment) in [
        ("ssh_host_ed25519_key", "pgha-lab-host"),
        ("id_ed25519", "pgha-lab-client"),
    ] {
        let path = dir.join(file);
        if !path.is_file() {
            let path_text = path.to_string_lossy();
            tool(
                "ssh-keygen",
                &[
                    "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", &path_text,
                ],
                "generate an SSH key",
            )?;
        }
    }
    let client_public = read(&dir.join("id_ed25519.pub"))?;
    write_file(&dir.join("authorized_keys"), &client_public, 0o600)
}

/// Addresses the lab's sshd listens on: every member's address, the infrastructure address and
/// 127.0.0.1 (port 2222 on each), so SSH steps target a member's own host as in production.
pub(crate) fn ssh_addresses(spec: &LabSpec) -> Vec<Ipv4Addr> {
    let mut addresses = vec![Ipv4Addr::LOCALHOST, spec.infrastructure_address()];
    addresses.extend(spec.every_member().iter().map(|member| member.address));
    addresses
}

pub(crate) fn write_sshd_config(layout: &Layout, spec: &LabSpec) -> Result<PathBuf, LabError> {
    let dir = layout.ssh();
    let host_public = read(&dir.join("ssh_host_ed25519_key.pub"))?;
    let host_public = host_public
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    let mut config =
        String::from("# Written by `pgha lab up`: a throwaway sshd for rehearsing SSH steps.\n");
    let mut known_hosts = String::new();
    for address in ssh_addresses(spec) {
        let _ = writeln!(config, "ListenAddress {address}:{SSH_PORT}");
        let _ = writeln!(known_hosts, "[{address}]:{SSH_PORT} {host_public}");
    }
    let _ = write!(
        config,
        "HostKey {host_key}\n\
         AuthorizedKeysFile {authorized}\n\
         PidFile none\n\
         PubkeyAuthentication yes\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         PermitRootLogin prohibit-password\n\
         StrictModes no\n\
         UsePAM no\n\
         PrintMotd no\n\
         AcceptEnv LANG LC_*\n\
         Subsystem sftp internal-sftp\n",
        host_key = dir.join("ssh_host_ed25519_key").display(),
        authorized = dir.join("authorized_keys").display(),
    );
    write_file(&dir.join("known_hosts"), &known_hosts, 0o644)?;
    let path = dir.join("sshd_config");
    write_file(&path, &config, 0o600)?;
    Ok(path)
}

/// A lab CA, one certificate per member (server and client use: Patroni presents it to its
/// peers too) and a client certificate for pgha.
pub(crate) fn ensure_tls(layout: &Layout, spec: &LabSpec, run_as: RunAs) -> Result<(), LabError> {
    let dir = layout.tls();
    create_dir(&dir, 0o755)?;
    if !dir.join("ca.crt").is_file() {
        let (key, certificate) = (dir.join("ca.key"), dir.join("ca.crt"));
        let subject = "/CN=pgha lab CA";
        let mut args = new_key_args(&key);
        args.extend(["-x509", "-out"].map(String::from));
        args.push(certificate.to_string_lossy().into_owned());
        args.extend(
            [
                "-days",
                "3650",
                "-subj",
                subject,
                "-addext",
                "basicConstraints=critical,CA:TRUE",
            ]
            .map(String::from),
        );
        args.extend(["-addext", "keyUsage=critical,keyCertSign,cRLSign"].map(String::from));
        openssl(&args, "create the lab CA")?;
        restrict(&key)?;
    }
    for member in spec.every_member() {
        issue_certificate(&dir, &member.name, Some(member.address), Some(run_as))?;
    }
    issue_certificate(&dir, "pgha", None, None)
}

/// `openssl req` arguments creating a new P-256 key without a passphrase.
fn new_key_args(key: &Path) -> Vec<String> {
    let mut args: Vec<String> = [
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
    ]
    .map(String::from)
    .to_vec();
    args.push(key.to_string_lossy().into_owned());
    args
}

/// A certificate signed by the lab CA, for `name`, valid for `address` when given. The key
/// goes to `owner` (the daemon account) when Patroni must read it.
fn issue_certificate(
    dir: &Path,
    name: &str,
    address: Option<Ipv4Addr>,
    owner: Option<RunAs>,
) -> Result<(), LabError> {
    let certificate = dir.join(format!("{name}.crt"));
    if certificate.is_file() {
        return Ok(());
    }
    let (key, request, extensions) = (
        dir.join(format!("{name}.key")),
        dir.join(format!("{name}.csr")),
        dir.join(format!("{name}.ext")),
    );
    let subject_alt = address.map_or(String::new(), |address| {
        format!("subjectAltName=IP:{address}\n")
    });
    write_file(
        &extensions,
        &format!(
            "{subject_alt}extendedKeyUsage=serverAuth,clientAuth\nkeyUsage=critical,digitalSignature\n"
        ),
        0o644,
    )?;
    let mut args = new_key_args(&key);
    args.extend([
        "-new".into(),
        "-out".into(),
        request.to_string_lossy().into_owned(),
    ]);
    args.extend(["-subj".into(), format!("/CN={name}")]);
    openssl(&args, "create a certificate request")?;
    let text = |path: &Path| path.to_string_lossy().into_owned();
    let sign: Vec<String> = vec![
        "x509".into(),
        "-req".into(),
        "-in".into(),
        text(&request),
        "-CA".into(),
        text(&dir.join("ca.crt")),
        "-CAkey".into(),
        text(&dir.join("ca.key")),
        "-CAcreateserial".into(),
        "-days".into(),
        "3650".into(),
        "-extfile".into(),
        text(&extensions),
        "-out".into(),
        text(&certificate),
    ];
    openssl(&sign, "sign a certificate")?;
    restrict(&key)?;
    match owner {
        Some(owner) => owner.own(&key),
        None => Ok(()),
    }
}

fn openssl(args: &[String], what: &str) -> Result<(), LabError> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    tool("openssl", &args, what)
}

fn restrict(path: &Path) -> Result<(), LabError> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|error| LabError::io("set permissions on", path, &error))
}

/// Alertmanager's configuration: one receiver that drops everything. The lab needs its API
/// (silences), not notifications.
pub(crate) fn write_alertmanager_config(layout: &Layout) -> Result<PathBuf, LabError> {
    let dir = layout.alertmanager();
    create_dir(&dir, 0o700)?;
    let path = dir.join("alertmanager.yml");
    write_file(
        &path,
        "# Written by `pgha lab up`.\nroute:\n  receiver: discard\nreceivers:\n  - name: discard\n",
        0o600,
    )?;
    Ok(path)
}

/// The member's tags: Patroni's four booleans false, unless the spec mirrors another cluster's
/// (keys and scalar values checked by the spec; a value's JSON is YAML).
fn tags(spec: &LabSpec, member: &LabMember) -> String {
    let mut tags: std::collections::BTreeMap<&str, serde_json::Value> =
        ["nofailover", "noloadbalance", "clonefrom", "nosync"]
            .into_iter()
            .map(|key| (key, serde_json::Value::Bool(false)))
            .collect();
    if let Some(mirrored) = spec.mirror.tags.get(&member.name) {
        tags.extend(
            mirrored
                .iter()
                .map(|(key, value)| (key.as_str(), value.clone())),
        );
    }
    let mut text = String::new();
    for (key, value) in &tags {
        let _ = writeln!(text, "  {key}: {value}");
    }
    text
}

/// One member's `patroni.yml`. Timing follows the settings measured stable on this kind of
/// machine: ttl 20, loop_wait 2, retry_timeout 5; a fast checkpoint for base backups. A lab with
/// a standby cluster archives WAL, and its standby members follow that archive.
pub(crate) fn patroni_config(
    layout: &Layout,
    spec: &LabSpec,
    member: &LabMember,
    passwords: &Passwords,
) -> String {
    let member_dir = layout.member(&member.name);
    let tls = layout.tls();
    let address = member.address;
    let mut restapi_tls = String::new();
    let mut ctl = String::new();
    if spec.tls {
        let _ = write!(
            restapi_tls,
            "  certfile: {cert}\n  keyfile: {key}\n  cafile: {ca}\n  verify_client: required\n",
            cert = tls.join(format!("{}.crt", member.name)).display(),
            key = tls.join(format!("{}.key", member.name)).display(),
            ca = tls.join("ca.crt").display(),
        );
        let _ = write!(
            ctl,
            "ctl:\n  certfile: {cert}\n  keyfile: {key}\n  cacert: {ca}\n",
            cert = tls.join(format!("{}.crt", member.name)).display(),
            key = tls.join(format!("{}.key", member.name)).display(),
            ca = tls.join("ca.crt").display(),
        );
    }
    format!(
        "# Written by `pgha lab up`.\n\
scope: {scope}\n\
name: {name}\n\
restapi:\n  listen: {address}:8008\n  connect_address: {address}:8008\n  authentication:\n    username: {rest_user}\n    password: {rest_password}\n{restapi_tls}\
{ctl}\
{dcs}\
bootstrap:\n  dcs:\n    ttl: 20\n    loop_wait: 2\n    retry_timeout: 5\n    maximum_lag_on_failover: 1048576\n{standby_cluster}    postgresql:\n      use_pg_rewind: true\n      use_slots: true\n      parameters:\n        wal_level: replica\n        hot_standby: 'on'\n        wal_log_hints: 'on'\n        max_connections: 50\n        max_wal_senders: 10\n        max_replication_slots: 10\n        wal_keep_size: 256MB\n        shared_buffers: 64MB\n{archive_dcs}  initdb:\n  - encoding: UTF8\n  - data-checksums\n\
postgresql:\n  listen: {address}:5432\n  connect_address: {address}:5432\n  data_dir: {data}\n  bin_dir: {bin}\n  pgpass: {member_dir}/pgpass\n  authentication:\n    superuser:\n      username: postgres\n      password: {superuser}\n    replication:\n      username: replicator\n      password: {replication}\n    rewind:\n      username: rewinder\n      password: {rewind}\n  parameters:\n    unix_socket_directories: {member_dir}\n{archive_command}{replica_methods}  pg_hba:\n  - local all all trust\n  - host replication replicator 127.0.0.0/8 scram-sha-256\n  - host all all 127.0.0.0/8 scram-sha-256\n  basebackup:\n  - checkpoint: fast\n\
tags:\n{tags}",
        scope = member.cluster.scope(spec),
        name = member.name,
        tags = tags(spec, member),
        standby_cluster = standby_cluster_dcs(spec, member),
        archive_dcs = archive_dcs(spec, member),
        archive_command = archive_command(spec, member),
        replica_methods = replica_methods(spec, member),
        rest_user = REST_USER,
        rest_password = passwords.rest,
        dcs = dcs_config(spec),
        data = layout.member_data(&member.name).display(),
        bin = POSTGRES_BIN,
        member_dir = member_dir.display(),
        superuser = passwords.superuser,
        replication = passwords.replication,
        rewind = passwords.rewind,
    )
}

/// `bootstrap.dcs.standby_cluster` of a standby member: archive-only, as a Geo secondary (no
/// host, no streaming from the primary cluster). Its leader is restored from the backup:
/// Patroni keeps only the methods marked `no_leader` when the standby cluster names no host.
fn standby_cluster_dcs(spec: &LabSpec, member: &LabMember) -> String {
    if member.cluster != LabCluster::Standby {
        return String::new();
    }
    format!(
        "    standby_cluster:\n      restore_command: '{}'\n      create_replica_methods:\n      - pgbackrest\n",
        pgbackrest::restore_command(spec)
    )
}

/// The DCS-wide parameters of archiving: the primary archives a segment at least every 10 s
/// while it writes, so the standby cluster trails by seconds; the standby cluster archives
/// nothing and looks for the next segment every second.
fn archive_dcs(spec: &LabSpec, member: &LabMember) -> String {
    match member.cluster {
        LabCluster::Primary if spec.archives_wal() => {
            "        archive_mode: 'on'\n        archive_timeout: 10s\n".into()
        }
        LabCluster::Primary => String::new(),
        LabCluster::Standby => {
            "        archive_mode: 'off'\n        wal_retrieve_retry_interval: 1s\n".into()
        }
    }
}

/// The primary's members' local `archive_command` (pgBackRest finds the member's own
/// configuration through `PGBACKREST_CONFIG`).
fn archive_command(spec: &LabSpec, member: &LabMember) -> String {
    if member.cluster == LabCluster::Primary && spec.archives_wal() {
        format!(
            "    archive_command: '{}'\n",
            pgbackrest::archive_command(spec)
        )
    } else {
        String::new()
    }
}

/// How a standby member is built: restored from the backup (no load on the standby leader),
/// else copied from the standby leader. `no_leader` lets the method run without a leader to
/// copy from (Patroni before 3.0 calls it `no_master`); `keep_data` leaves the directory to
/// `--delta`; `no_params` keeps Patroni's own options off pgBackRest's command line.
fn replica_methods(spec: &LabSpec, member: &LabMember) -> String {
    if member.cluster != LabCluster::Standby {
        return String::new();
    }
    let no_leader = if spec.patroni_version < crate::patroni::Version::new(3, 0, 0) {
        "no_master"
    } else {
        "no_leader"
    };
    format!(
        "  create_replica_methods:\n  - pgbackrest\n  - basebackup\n  pgbackrest:\n    command: {}\n    keep_data: true\n    no_params: true\n    {no_leader}: true\n",
        pgbackrest::restore_replica_command(spec)
    )
}

/// Patroni's DCS section. On etcd, every member's `host:port`, comma-separated: the form
/// Patroni 2.1 to 4.x all accept (a YAML list works too). On Consul, Patroni registers each
/// member as service `<scope>` with its role as tag and an HTTP check on its REST API, as
/// GitLab's clusters do.
fn dcs_config(spec: &LabSpec) -> String {
    let infrastructure = spec.infrastructure_address();
    match spec.dcs {
        LabDcs::Etcd => format!("etcd3:\n  hosts: {}\n", spec.etcd_client_hosts().join(",")),
        LabDcs::Consul => format!(
            "consul:\n  host: {infrastructure}:{CONSUL_PORT}\n  register_service: {}\n",
            !spec.mirror.no_consul_services
        ),
    }
}

/// The inventory for environment `lab`: paths are relative to the lab directory, passwords
/// are files, never inline.
/// `pgha` is the binary the lab's service control runs on the hosts: this very one.
pub(crate) fn inventory(layout: &Layout, spec: &LabSpec, pgha: &Path) -> String {
    let mut text = format!(
        "# Written by `pgha lab up`: the `lab` environment. Regenerated on every `up`.\n\
environments:\n  lab:\n    rest:\n      username: {REST_USER}\n      password_file: secrets/rest-password\n"
    );
    if spec.tls {
        text.push_str("      tls:\n        ca_file: tls/ca.crt\n        cert_file: tls/pgha.crt\n        key_file: tls/pgha.key\n");
    }
    let user = if rustix::process::getuid().is_root() {
        "root".to_string()
    } else {
        std::env::var("USER").unwrap_or_else(|_| "root".into())
    };
    let infrastructure = spec.infrastructure_address();
    for line in [
        "    postgres:".to_string(),
        "      user: postgres".to_string(),
        "      password_file: secrets/superuser-password".to_string(),
        "      sslmode: disable".to_string(),
        "    alertmanager:".to_string(),
        format!("      url: http://{infrastructure}:{ALERTMANAGER_PORT}"),
        "      matchers:".to_string(),
        format!("        alertname: {LAG_ALERT}"),
        "        fqdn: \"{host}\"".to_string(),
        "    service:".to_string(),
        "      kind: lab".to_string(),
        format!("      pgha: {}", pgha.display()),
        format!("      dir: {}", layout.dir.display()),
        "    dcs:".to_string(),
        format!("      kind: {}", spec.dcs.as_str()),
        "      hosts:".to_string(),
    ] {
        text.push_str(&line);
        text.push('\n');
    }
    let dcs_hosts = match spec.dcs {
        LabDcs::Etcd => spec.etcd_client_hosts(),
        LabDcs::Consul => vec![format!("{infrastructure}:{CONSUL_PORT}")],
    };
    for host in dcs_hosts {
        let _ = writeln!(text, "      - {host}");
    }
    for line in [
        "    ssh:".to_string(),
        format!("      user: {user}"),
        format!("      port: {SSH_PORT}"),
        "      identity_file: ssh/id_ed25519".to_string(),
        "      known_hosts: ssh/known_hosts".to_string(),
    ] {
        text.push_str(&line);
        text.push('\n');
    }
    if spec.archives_wal() {
        text.push_str(&standby_inventory_sections(layout, spec));
    }
    text.push_str("    clusters:\n");
    cluster_inventory(&mut text, layout, spec, LabCluster::Primary);
    if spec.archives_wal() {
        cluster_inventory(&mut text, layout, spec, LabCluster::Standby);
    }
    text
}

/// What a lab with a standby cluster adds to its environment: the backups pgBackRest keeps
/// (what `geo-resetup` restores from and checks the age of), and the primary cluster as the
/// default, so `--env lab` alone still means the cluster it always meant.
fn standby_inventory_sections(layout: &Layout, spec: &LabSpec) -> String {
    format!(
        "    backup:\n      tool: pgbackrest\n      stanza: {scope}\n      config: {config}\n      max_age: 24h\n    default_cluster: {scope}\n",
        scope = spec.scope,
        config = layout.pgbackrest_config().display(),
    )
}

/// One cluster of the `lab` environment; the standby cluster says it is one.
fn cluster_inventory(text: &mut String, layout: &Layout, spec: &LabSpec, cluster: LabCluster) {
    let scope = cluster.scope(spec);
    let _ = writeln!(text, "      {scope}:\n        scope: {scope}");
    if cluster == LabCluster::Standby {
        let _ = writeln!(
            text,
            "        standby: true\n        follows: {}",
            LabCluster::Primary.scope(spec)
        );
    }
    text.push_str("        members:\n");
    for member in spec.members_of(cluster) {
        let _ = writeln!(
            text,
            "        - name: {}\n          host: {}\n          data_dir: {}\n          patroni_config: {}\n          log_file: {}",
            member.name,
            member.address,
            layout.member_data(&member.name).display(),
            layout.member_config(&member.name).display(),
            // PostgreSQL logs to its standard error, which Patroni's log takes in.
            layout.member(&member.name).join("patroni.log").display()
        );
    }
}

fn read(path: &Path) -> Result<String, LabError> {
    std::fs::read_to_string(path).map_err(|error| LabError::io("read", path, &error))
}
