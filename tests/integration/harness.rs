//! The test harness: a builder that runs the real `pgha` binary, and real lab clusters shared by
//! the tests. Read-only tests hold the lab's lock shared; tests that break the cluster (kill a
//! member, pause, swap Patroni) hold it exclusively and put the cluster back before releasing
//! it. The locks are files, so they also hold across test processes (cargo nextest).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use pgha::alerts::Alertmanager;
use pgha::inventory::{self, ClusterTarget, Selector};
use pgha::patroni::{PatroniClient, SwitchoverRequest};

/// `Pgha::new().args([...]).run()` runs the binary with a clean environment.
pub(crate) struct Pgha {
    command: Command,
}

impl Pgha {
    pub(crate) fn new() -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_pgha"));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", std::env::var("HOME").unwrap_or_default())
            // No inventory from the developer's working directory or config dir.
            .env("XDG_CONFIG_HOME", "/nonexistent-pgha-test-config")
            .current_dir(std::env::temp_dir())
            .stdin(Stdio::null());
        Pgha { command }
    }

    pub(crate) fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.command.args(args);
        self
    }

    pub(crate) fn arg_path(mut self, path: &Path) -> Self {
        self.command.arg(path);
        self
    }

    /// `--flag=value`, so that a value starting with `-` is a value, not a flag.
    pub(crate) fn arg_flag_value(mut self, flag: &str, value: &str) -> Self {
        self.command.arg(format!("{flag}={value}"));
        self
    }

    pub(crate) fn arg_flag_path(mut self, flag: &str, path: &Path) -> Self {
        self.command.arg(flag).arg(path);
        self
    }

    pub(crate) fn current_dir(mut self, dir: &Path) -> Self {
        self.command.current_dir(dir);
        self
    }

    pub(crate) fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Self {
        self.command.env(key, value);
        self
    }

    pub(crate) fn lab(self, lab: &Lab) -> Self {
        self.env("PGHA_LAB_DIR", &lab.dir)
    }

    pub(crate) fn run(mut self) -> Run {
        let started = Instant::now();
        let output = self.command.output().expect("pgha runs");
        Run {
            output,
            elapsed: started.elapsed(),
        }
    }

    pub(crate) fn spawn(mut self) -> std::process::Child {
        self.command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("pgha starts")
    }
}

pub(crate) struct Run {
    pub output: Output,
    pub elapsed: Duration,
}

impl Run {
    pub(crate) fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    pub(crate) fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    pub(crate) fn code(&self) -> i32 {
        self.output.status.code().unwrap_or(-1)
    }

    /// Asserts the exit code, showing both streams when it differs.
    #[track_caller]
    pub(crate) fn expect_code(self, code: i32) -> Self {
        assert_eq!(
            self.code(),
            code,
            "exit code\n--- stdout:\n{}\n--- stderr:\n{}",
            self.stdout(),
            self.stderr()
        );
        self
    }

    #[track_caller]
    pub(crate) fn success(self) -> Self {
        self.expect_code(0)
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.output.stdout)
            .unwrap_or_else(|error| panic!("stdout is not JSON ({error}):\n{}", self.stdout()))
    }

    /// The error line on stderr, for bad-input tests: exactly one line, starting with `error:`.
    #[track_caller]
    pub(crate) fn one_error_line(&self) -> String {
        let stderr = self.stderr();
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line expected on stderr:\n{stderr}");
        assert!(lines[0].starts_with("error: "), "{stderr}");
        lines[0].to_string()
    }
}

/// Where test labs live (outside the repository: the postgres account must reach them).
pub(crate) fn lab_root() -> PathBuf {
    std::env::var_os("PGHA_TEST_LAB_ROOT")
        .map_or_else(|| PathBuf::from("/var/lib/pgha/test-labs"), PathBuf::from)
}

/// `pgha lab` starts the Consul double from beside the pgha binary. The double is its own crate
/// in the workspace: `cargo build` or `cargo test` at the root builds it there (scripts/test.sh
/// builds the workspace first), `cargo test -p pgha` alone does not.
fn consul_double_built() -> Result<(), String> {
    let double = Path::new(env!("CARGO_BIN_EXE_pgha")).with_file_name("pgha-consul-double");
    if double.is_file() {
        Ok(())
    } else {
        Err(format!(
            "the Consul double is not built at {}: run `cargo build --workspace` first \
             (`cargo test -p pgha` alone does not build it)",
            double.display()
        ))
    }
}

/// A lab cluster for tests: its directory, addresses and members.
pub(crate) struct Lab {
    pub dir: PathBuf,
    pub first_address: &'static str,
    up_args: &'static [&'static str],
    lock_path: PathBuf,
}

pub(crate) struct LabGuard<'a> {
    pub lab: &'a Lab,
    _lock: File,
    exclusive: bool,
}

impl Lab {
    /// The plain 3-member lab on 127.0.0.41-43, started once and shared by every test.
    pub(crate) fn shared() -> &'static Lab {
        static LAB: OnceLock<Result<Lab, String>> = OnceLock::new();
        ready(LAB.get_or_init(|| Lab::start("main", "127.0.0.41", &[])))
    }

    /// A 1-member lab (plus a spare) whose REST API requires TLS client certificates, on
    /// 127.0.0.51-52.
    pub(crate) fn tls() -> &'static Lab {
        static LAB: OnceLock<Result<Lab, String>> = OnceLock::new();
        ready(LAB.get_or_init(|| {
            Lab::start(
                "tls",
                "127.0.0.51",
                &["--members", "1", "--spare", "1", "--tls"],
            )
        }))
    }

    /// A 3-member lab with Consul as its DCS (pgha's Consul double, Patroni registering its
    /// services), on 127.0.0.61-63 with the double on 127.0.0.60:8500.
    pub(crate) fn consul() -> &'static Lab {
        static LAB: OnceLock<Result<Lab, String>> = OnceLock::new();
        ready(LAB.get_or_init(|| {
            consul_double_built()?;
            Lab::start("consul", "127.0.0.61", &["--dcs", "consul"])
        }))
    }

    /// A 2-member lab with a spare (node3, configured, not started) for scale-up, on
    /// 127.0.0.71-73.
    pub(crate) fn scale() -> &'static Lab {
        static LAB: OnceLock<Result<Lab, String>> = OnceLock::new();
        ready(
            LAB.get_or_init(|| {
                Lab::start("scale", "127.0.0.71", &["--members", "2", "--spare", "1"])
            }),
        )
    }

    /// A lab of its own for one test, not shared: started here, wiped by the returned guard
    /// when it drops (also when the test fails). For tests that take the lab apart in ways the
    /// shared labs' guards cannot put back.
    pub(crate) fn dedicated(
        name: &str,
        first_address: &'static str,
        up_args: &'static [&'static str],
    ) -> DedicatedLab {
        let dir = lab_root().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let lab = DedicatedLab(Lab {
            lock_path: lab_root().join(format!("{name}.test-lock")),
            dir,
            first_address,
            up_args,
        });
        if let Err(message) = lab.0.up() {
            panic!("{message}");
        }
        lab
    }

    /// The lab's Consul client and settings, as its inventory names them.
    pub(crate) fn consul_client(
        &self,
    ) -> (pgha::consul::ConsulSettings, pgha::consul::ConsulClient) {
        let (target, _) = self.client();
        let settings = target.consul.expect("a Consul lab");
        let client = pgha::consul::ConsulClient::new(&settings).unwrap();
        (settings, client)
    }

    /// The lab's etcd client and settings, as its inventory names them.
    pub(crate) fn etcd_client(&self) -> (pgha::etcd::EtcdSettings, pgha::etcd::EtcdClient) {
        let (target, _) = self.client();
        let settings = target
            .etcd
            .expect("an etcd lab whose inventory names its etcd");
        let client = pgha::etcd::EtcdClient::new(&settings).unwrap();
        (settings, client)
    }

    /// Starts (or re-checks) a lab once per test process; a failure is remembered so that the
    /// other tests fail at once with the same message instead of each waiting for it again.
    fn start(
        name: &str,
        first_address: &'static str,
        up_args: &'static [&'static str],
    ) -> Result<Lab, String> {
        let dir = lab_root().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let lab = Lab {
            lock_path: lab_root().join(format!("{name}.test-lock")),
            dir,
            first_address,
            up_args,
        };
        // Exclusive while starting: another test process may be restoring the cluster.
        let _guard = lab.lock(true);
        lab.restore_releases();
        let left_by_an_earlier_run = lab.dir.join("lab.json").is_file();
        match lab.up() {
            Err(why) if left_by_an_earlier_run => {
                // A run killed mid-test can leave a member that no `lab up` heals (a replica
                // behind WAL its leader no longer keeps): this process starts a new lab.
                eprintln!(
                    "the {name} lab left by an earlier run is not healthy; starting a new one:\n{why}"
                );
                lab.down_and_wipe()?;
                lab.up()?;
            }
            outcome => outcome?,
        }
        Ok(lab)
    }

    /// `pgha lab down --wipe`: every process ended, every file gone.
    fn down_and_wipe(&self) -> Result<(), String> {
        let run = Pgha::new().args(["lab", "down", "--wipe"]).lab(self).run();
        if run.code() == 0 {
            Ok(())
        } else {
            Err(format!(
                "`pgha lab down --wipe` failed for {}:\n{}",
                self.dir.display(),
                run.stderr()
            ))
        }
    }

    /// `pgha lab up` with this lab's arguments: starts what is missing, waits until healthy.
    pub(crate) fn up(&self) -> Result<(), String> {
        let run = Pgha::new()
            .args([
                "lab",
                "up",
                "--wait",
                "120s",
                "--first-address",
                self.first_address,
            ])
            .args(self.up_args)
            .lab(self)
            .run();
        if run.code() == 0 {
            Ok(())
        } else {
            Err(format!(
                "`pgha lab up` failed for {}:\n{}",
                self.dir.display(),
                run.stderr()
            ))
        }
    }

    /// Puts every member back on the lab's own Patroni release (a test that swapped one may
    /// have been interrupted).
    fn restore_releases(&self) {
        let Ok(text) = std::fs::read_to_string(self.dir.join("lab.json")) else {
            return;
        };
        let state: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let release = state["spec"]["patroni_version"]
            .as_str()
            .unwrap_or("4.1.5")
            .to_string();
        let swapped: Vec<String> = state["member_versions"]
            .as_object()
            .map(|members| members.keys().cloned().collect())
            .unwrap_or_default();
        for member in swapped {
            Pgha::new()
                .args(["lab", "member", "stop", &member])
                .lab(self)
                .run();
            Pgha::new()
                .args([
                    "lab",
                    "member",
                    "start",
                    &member,
                    "--patroni-version",
                    &release,
                ])
                .lab(self)
                .run();
        }
    }

    fn lock(&self, exclusive: bool) -> File {
        let file = File::create(&self.lock_path).unwrap();
        if exclusive {
            file.lock().unwrap();
        } else {
            file.lock_shared().unwrap();
        }
        file
    }

    /// For tests that only read the cluster.
    pub(crate) fn read(&self) -> LabGuard<'_> {
        LabGuard {
            lab: self,
            _lock: self.lock(false),
            exclusive: false,
        }
    }

    /// For tests that change the cluster; the cluster is made healthy again on drop.
    pub(crate) fn exclusive(&self) -> LabGuard<'_> {
        LabGuard {
            lab: self,
            _lock: self.lock(true),
            exclusive: true,
        }
    }

    pub(crate) fn inventory(&self) -> PathBuf {
        self.dir.join("pgha.yml")
    }

    pub(crate) fn rest_password(&self) -> String {
        std::fs::read_to_string(self.dir.join("secrets/rest-password"))
            .unwrap()
            .trim()
            .to_string()
    }

    pub(crate) fn superuser_password(&self) -> String {
        std::fs::read_to_string(self.dir.join("secrets/superuser-password"))
            .unwrap()
            .trim()
            .to_string()
    }

    /// One value from `sql`, run as the superuser on the leader; the statements before the
    /// last `;` are run for their effect first.
    pub(crate) fn leader_sql(&self, sql: &str) -> String {
        let (target, _) = self.client();
        let host = target.member(&self.leader()).unwrap().host.clone();
        let password = self.superuser_password();
        block_on(async {
            let client = connect(&postgres_config(&[host], &password, Duration::from_secs(5)))
                .await
                .expect("the leader takes connections");
            let (effects, query) = sql.rsplit_once(';').unwrap_or(("", sql));
            if !effects.trim().is_empty() {
                client.batch_execute(effects).await.unwrap();
            }
            client
                .query_one(query, &[])
                .await
                .unwrap()
                .get::<_, String>(0)
        })
    }

    pub(crate) fn member_config(&self, member: &str) -> PathBuf {
        self.dir.join("members").join(member).join("patroni.yml")
    }

    pub(crate) fn api_url(&self, member: &str) -> String {
        format!("http://{}:8008", self.address(member))
    }

    /// `pgha reinit` of `member`, its name typed at the gate; it must succeed.
    pub(crate) fn reinit(&self, member: &str) {
        Pgha::new()
            .args(["reinit", "--member", member, "--yes", "--confirm", member])
            .lab(self)
            .run()
            .success();
    }

    /// The loopback address `member` (`nodeN`) lives on.
    pub(crate) fn address(&self, member: &str) -> std::net::Ipv4Addr {
        let index: u8 = member.trim_start_matches("node").parse().unwrap();
        let first: std::net::Ipv4Addr = self.first_address.parse().unwrap();
        let [a, b, c, d] = first.octets();
        std::net::Ipv4Addr::new(a, b, c, d + index - 1)
    }

    /// `pgha status -o json` on this lab.
    pub(crate) fn status_json(&self) -> serde_json::Value {
        Pgha::new()
            .args(["status", "-o", "json"])
            .lab(self)
            .run()
            .success()
            .json()
    }

    /// `pgha status` (the table) on this lab.
    pub(crate) fn status_table(&self) -> String {
        Pgha::new()
            .args(["status"])
            .lab(self)
            .run()
            .success()
            .stdout()
    }

    /// `pgha lab status -o json` on this lab.
    pub(crate) fn lab_status_json(&self) -> serde_json::Value {
        Pgha::new()
            .args(["lab", "status", "-o", "json"])
            .lab(self)
            .run()
            .success()
            .json()
    }

    /// An inventory naming this lab's members by REST URL, under environment `environment`
    /// (cluster `demo`), with `rest` as the lines of its `rest:` block (indented six spaces).
    pub(crate) fn inventory_yaml(&self, environment: &str, rest: &str, members: &[&str]) -> String {
        use std::fmt::Write as _;
        let mut text = format!(
            "environments:\n  {environment}:\n    rest:\n{rest}    clusters:\n      demo:\n        members:\n"
        );
        for name in members {
            let _ = write!(
                text,
                "          - name: {name}\n            host: 127.0.0.1\n            api_url: {}\n",
                self.api_url(name)
            );
        }
        text
    }

    /// The lab's own cluster target and a REST client, for setting up situations.
    pub(crate) fn client(&self) -> (ClusterTarget, PatroniClient) {
        let selector = Selector {
            config: Some(self.inventory()),
            environment: Some("lab".into()),
            ..Selector::default()
        };
        let target = block_on(inventory::resolve(&selector)).unwrap();
        let client = PatroniClient::new(&target.rest).unwrap();
        (target, client)
    }

    /// The lab's Alertmanager, as its inventory names it.
    pub(crate) fn alertmanager(&self) -> Alertmanager {
        let (target, _) = self.client();
        let url = target
            .alertmanager
            .expect("the lab inventory names its Alertmanager")
            .url;
        Alertmanager::new(&url, Duration::from_secs(5)).unwrap()
    }

    /// A silence's state in the lab's Alertmanager: `active`, `expired`, ...
    pub(crate) fn silence_state(&self, id: &str) -> String {
        block_on(self.alertmanager().state(id)).unwrap()
    }

    /// The current leader's name.
    pub(crate) fn leader(&self) -> String {
        let (target, client) = self.client();
        for member in &target.members {
            if let Ok(topology) = block_on(client.cluster(&member.api_url))
                && let Some(leader) = topology.leader()
            {
                return leader.name.clone();
            }
        }
        panic!("no leader in the lab");
    }

    /// A member that is not the leader.
    pub(crate) fn replica(&self) -> String {
        let leader = self.leader();
        ["node1", "node2", "node3"]
            .into_iter()
            .find(|name| *name != leader)
            .unwrap()
            .to_string()
    }

    pub(crate) fn set_paused(&self, paused: bool) {
        let (target, client) = self.client();
        let patch = serde_json::json!({ "pause": paused });
        block_on(client.patch_config(&target.members[0].api_url, &patch)).unwrap();
        wait_until(
            Duration::from_secs(20),
            "every member reports the pause state",
            || {
                target.members.iter().all(|member| {
                    block_on(client.status(&member.api_url))
                        .is_ok_and(|status| status.paused == paused)
                })
            },
        );
    }

    pub(crate) fn switchover(&self, leader: &str, candidate: &str) {
        let (target, client) = self.client();
        let request = SwitchoverRequest {
            leader: leader.into(),
            candidate: Some(candidate.into()),
            scheduled_at: None,
        };
        // Never trust (or retry) a write's answer alone: observe the cluster and decide.
        match block_on(client.switchover(&target.members[0].api_url, &request)) {
            Ok(answer) => assert!(answer.is_success(), "switchover refused: {answer:?}"),
            Err(error) => eprintln!("switchover answer lost ({error}); observing the cluster"),
        }
        wait_until(
            Duration::from_mins(1),
            &format!("{candidate} leads"),
            || self.leader() == candidate,
        );
    }
}

impl Drop for LabGuard<'_> {
    fn drop(&mut self) {
        if !self.exclusive {
            return;
        }
        // Put the cluster back: every member on the lab's release, management resumed, then
        // `lab up` restarts whatever was stopped or killed and waits until replicas stream.
        // Never panic here: a panic during a failing test's unwinding aborts the whole run.
        self.lab.restore_releases();
        let (target, client) = self.lab.client();
        let patch = serde_json::json!({ "pause": false });
        for member in &target.members {
            if block_on(client.patch_config(&member.api_url, &patch)).is_ok() {
                break;
            }
        }
        if let Err(message) = self.lab.up() {
            eprintln!("could not restore the lab: {message}");
        }
    }
}

/// A test's own lab: `pgha lab down --wipe` when it drops.
pub(crate) struct DedicatedLab(Lab);

impl std::ops::Deref for DedicatedLab {
    type Target = Lab;

    fn deref(&self) -> &Lab {
        &self.0
    }
}

impl Drop for DedicatedLab {
    fn drop(&mut self) {
        // Never panic here: a panic during a failing test's unwinding aborts the whole run.
        if let Err(why) = self.0.down_and_wipe() {
            eprintln!("{why}");
        }
    }
}

fn ready(lab: &Result<Lab, String>) -> &Lab {
    match lab {
        Ok(lab) => lab,
        Err(message) => panic!("{message}"),
    }
}

pub(crate) fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

/// Polls `condition` until it holds; panics with `what` after `limit`.
#[track_caller]
pub(crate) fn wait_until(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting until {what}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The entry named `name` in `document[list]` (a status document's `members`, a lab status
/// document's `components`).
#[track_caller]
pub(crate) fn entry(document: &serde_json::Value, list: &str, name: &str) -> serde_json::Value {
    document[list]
        .as_array()
        .and_then(|entries| entries.iter().find(|entry| entry["name"] == name))
        .unwrap_or_else(|| panic!("no {name} in {list}: {document}"))
        .clone()
}

/// A scratch directory for inventories written by tests.
pub(crate) fn scratch() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

pub(crate) fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

/// Runs `command` (a runbook) and SIGKILLs it as soon as its journal in `runs` records the start
/// of step `step`; returns the run id.
pub(crate) fn killed_at_step(command: Pgha, runs: &Path, step: &str) -> String {
    let (run_id, child) = signalled_at_step(command, runs, step, rustix::process::Signal::KILL);
    let output = child.wait_with_output().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&output.status),
        Some(9)
    );
    run_id
}

/// Spawns the run and sends it `signal` (by its PID) as soon as its journal says `step`
/// started: the run's id and the still-unwaited child.
pub(crate) fn signalled_at_step(
    command: Pgha,
    runs: &Path,
    step: &str,
    signal: rustix::process::Signal,
) -> (String, std::process::Child) {
    // Only this run's journal: earlier runs in `runs` passed the same step.
    let earlier: std::collections::BTreeSet<std::ffi::OsString> = std::fs::read_dir(runs)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.file_name())
                .collect()
        })
        .unwrap_or_default();
    let child = command.spawn();
    let wait_step = format!("\"step\":\"{step}\"");
    let deadline = Instant::now() + Duration::from_mins(1);
    let run_id = loop {
        assert!(Instant::now() < deadline, "step {step} never started");
        let started = std::fs::read_dir(runs).ok().and_then(|entries| {
            entries.filter_map(Result::ok).find_map(|entry| {
                if earlier.contains(&entry.file_name()) {
                    return None;
                }
                let text = std::fs::read_to_string(entry.path()).ok()?;
                let waiting = text.lines().any(|line| {
                    line.contains("\"event\":\"step_started\"") && line.contains(&wait_step)
                });
                waiting.then(|| {
                    entry
                        .file_name()
                        .to_string_lossy()
                        .trim_end_matches(".jsonl")
                        .to_string()
                })
            })
        });
        if let Some(run_id) = started {
            break run_id;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let pid = rustix::process::Pid::from_child(&child);
    rustix::process::kill_process(pid, signal).unwrap();
    (run_id, child)
}

/// A client inserting one row every 50 ms through a libpq-style multi-host connection with
/// `target_session_attrs=read-write` (it follows the leader), recording each acknowledged
/// insert: the application a rolling upgrade must not lose writes of.
pub(crate) struct Writer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    count: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    thread: Option<std::thread::JoinHandle<Vec<(i64, Instant)>>>,
    hosts: Vec<String>,
    password: String,
}

/// What a writer saw: the acknowledged ids with when each was acknowledged.
pub(crate) struct Writes {
    pub acknowledged: Vec<(i64, Instant)>,
}

impl Writes {
    /// The longest time between two acknowledged inserts, less the 50 ms between attempts.
    pub(crate) fn longest_gap(&self) -> Duration {
        self.acknowledged
            .windows(2)
            .map(|pair| pair[1].1.duration_since(pair[0].1))
            .max()
            .unwrap_or_default()
            .saturating_sub(WRITE_EVERY)
    }
}

const WRITE_EVERY: Duration = Duration::from_millis(50);

/// The lab's superuser on `hosts` (tried in order), port 5432, waiting `timeout` to connect.
pub(crate) fn postgres_config(
    hosts: &[String],
    password: &str,
    timeout: Duration,
) -> tokio_postgres::Config {
    let mut config = tokio_postgres::Config::new();
    for host in hosts {
        config.host(host);
    }
    config
        .port(5432)
        .user("postgres")
        .password(password)
        .dbname("postgres")
        .connect_timeout(timeout);
    config
}

/// The writer's connection: the first of the hosts that takes writes.
fn writer_config(hosts: &[String], password: &str) -> tokio_postgres::Config {
    let mut config = postgres_config(hosts, password, Duration::from_secs(1));
    config.target_session_attrs(tokio_postgres::config::TargetSessionAttrs::ReadWrite);
    config
}

/// A connected client (its connection driven on the current runtime), or `None`.
pub(crate) async fn connect(config: &tokio_postgres::Config) -> Option<tokio_postgres::Client> {
    let (client, connection) = config.connect(tokio_postgres::NoTls).await.ok()?;
    tokio::spawn(connection);
    Some(client)
}

impl Writer {
    pub(crate) fn start(lab: &Lab) -> Writer {
        let password = lab.superuser_password();
        let (target, _) = lab.client();
        let hosts: Vec<String> = target.members.iter().map(|m| m.host.clone()).collect();
        let config = writer_config(&hosts, &password);
        // A second writer on the same lab continues after the first one's ids.
        let first_id = block_on(async {
            let client = connect(&config).await.expect("the writer connects");
            client
                .batch_execute("CREATE TABLE IF NOT EXISTS pgha_writes (id bigint PRIMARY KEY)")
                .await
                .unwrap();
            client
                .query_one("SELECT coalesce(max(id), 0) + 1 FROM pgha_writes", &[])
                .await
                .unwrap()
                .get::<_, i64>(0)
        });
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (stopping, counting) = (stop.clone(), count.clone());
        let thread = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(write_until(config, first_id, stopping, counting))
        });
        Writer {
            stop,
            count,
            thread: Some(thread),
            hosts,
            password,
        }
    }

    pub(crate) fn acknowledged_so_far(&self) -> usize {
        self.count.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Stops the writer once it has at least `at_least` acknowledged rows (or after a minute),
    /// and returns what it saw.
    pub(crate) fn finish(&mut self, at_least: usize) -> Writes {
        wait_until(Duration::from_mins(1), "enough acknowledged writes", || {
            self.acknowledged_so_far() >= at_least
        });
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let thread = self.thread.take().expect("finished once");
        Writes {
            acknowledged: thread.join().unwrap(),
        }
    }

    /// Stops the writer (see `finish`), says what it saw under `what`, and returns the
    /// acknowledged ids missing from the leader's table: lost writes.
    pub(crate) fn finish_and_count_lost(&mut self, at_least: usize, what: &str) -> Vec<i64> {
        let seen = self.finish(at_least);
        let rows = self.rows();
        let lost: Vec<i64> = seen
            .acknowledged
            .iter()
            .map(|(id, _)| *id)
            .filter(|id| !rows.contains(id))
            .collect();
        eprintln!(
            "{what}: {} acknowledged, {} lost, longest gap {:?}",
            seen.acknowledged.len(),
            lost.len(),
            seen.longest_gap()
        );
        lost
    }

    /// The ids in the table, read from the leader.
    pub(crate) fn rows(&self) -> std::collections::BTreeSet<i64> {
        let config = writer_config(&self.hosts, &self.password);
        block_on(async {
            let client = connect(&config).await.expect("the leader answers");
            client
                .query("SELECT id FROM pgha_writes", &[])
                .await
                .unwrap()
                .iter()
                .map(|row| row.get::<_, i64>(0))
                .collect()
        })
    }
}

/// One insert every 50 ms, reconnecting after any failure; an insert that fails or takes over
/// 2 s is not acknowledged.
async fn write_until(
    config: tokio_postgres::Config,
    first_id: i64,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    count: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> Vec<(i64, Instant)> {
    let mut acknowledged = Vec::new();
    let mut client: Option<tokio_postgres::Client> = None;
    let mut next_id = first_id;
    let mut tick = tokio::time::interval(WRITE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        tick.tick().await;
        if client
            .as_ref()
            .is_none_or(tokio_postgres::Client::is_closed)
        {
            client = connect(&config).await;
        }
        let Some(connected) = &client else { continue };
        let id = next_id;
        next_id += 1;
        let values: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&id];
        let insert = connected.execute("INSERT INTO pgha_writes (id) VALUES ($1)", &values);
        match tokio::time::timeout(Duration::from_secs(2), insert).await {
            Ok(Ok(1)) => {
                acknowledged.push((id, Instant::now()));
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            _ => client = None,
        }
    }
    acknowledged
}

/// A plain put, as `etcdctl put` would do it: pgha itself writes no key but its lock.
pub(crate) fn etcd_put(lab: &Lab, key: &str, value: &str) {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as BASE64;
    let (settings, _) = lab.etcd_client();
    let url = format!("{}/v3/kv/put", settings.endpoints[0]);
    let body = serde_json::json!({ "key": BASE64.encode(key), "value": BASE64.encode(value) });
    let status = block_on(async { reqwest::Client::new().post(&url).json(&body).send().await })
        .unwrap()
        .status();
    assert!(status.is_success(), "POST {url}: {status}");
}

/// The one run in a run store.
pub(crate) fn only_run(runs: &Path) -> String {
    let ids: Vec<String> = std::fs::read_dir(runs)
        .unwrap()
        .filter_map(|entry| {
            entry
                .ok()?
                .file_name()
                .to_str()?
                .strip_suffix(".jsonl")
                .map(str::to_string)
        })
        .collect();
    assert_eq!(ids.len(), 1, "one run expected: {ids:?}");
    ids[0].clone()
}

/// The highest timeline any member reports.
pub(crate) fn timeline(status: &serde_json::Value) -> u64 {
    status["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|member| member["timeline"].as_u64())
        .max()
        .unwrap()
}

/// What must not change under a dry-run or a refused run.
#[derive(Debug, PartialEq)]
pub(crate) struct Fingerprint {
    pub leader: String,
    pub paused: bool,
    pub timelines: usize,
    pub started: Vec<Option<String>>,
    /// The cluster's DCS keys, each with the revision that created it (a key deleted and
    /// written again is another key), and the dynamic configuration's value.
    pub dcs_keys: Vec<(String, i64)>,
    pub dcs_config: String,
}

pub(crate) fn fingerprint(lab: &Lab) -> Fingerprint {
    let (target, client) = lab.client();
    let started = target
        .members
        .iter()
        .map(|member| {
            block_on(client.status(&member.api_url))
                .ok()
                .and_then(|status| status.postmaster_start_time)
        })
        .collect();
    let history = block_on(client.history(&target.members[0].api_url)).unwrap();
    let (settings, etcd) = lab.etcd_client();
    let keys = block_on(etcd.range_prefix(&settings.cluster_prefix(&target.scope))).unwrap();
    let dcs_config = keys
        .iter()
        .find(|kv| kv.key.ends_with("/config"))
        .map(|kv| String::from_utf8_lossy(&kv.value).into_owned())
        .unwrap_or_default();
    Fingerprint {
        leader: lab.leader(),
        paused: lab.status_json()["paused"] == true,
        timelines: history.len(),
        started,
        dcs_keys: keys
            .into_iter()
            .map(|kv| (kv.key, kv.create_revision))
            .collect(),
        dcs_config,
    }
}
