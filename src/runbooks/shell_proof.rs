//! Proof that every composed host command is inert to hostile values: each step builder and
//! service template is run, as the exact line pgha would send, in real `sh` and `bash`, with
//! values full of `$()`, backticks, quotes, backslashes, spaces, globs and leading dashes. Only
//! the privilege wrappers (`sudo`, `runuser`, `kubectl exec`) and the tools pgha drives
//! (`systemctl`, `pgbackrest`, `wal-g`, the lab's `pgha`) are stand-ins: the wrappers run the
//! rest of their arguments as given, the tools record the arguments they received. The scripts
//! do their real work (copy, compare, wipe, mkdir, df) on a scratch directory whose paths hold
//! the hostile values; a canary file proves nothing else ran.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use proptest::prelude::*;

use super::steps::{BackupTool, Host};
use crate::inventory::{BackupPolicy, ClusterTarget, SshSettings};
use crate::observe::ClusterView;
use crate::observe::testing::view_led_by;
use crate::plan::{Action, Step, TagAction};
use crate::remote::{HostCommand, ServiceAction, ServiceControl, Upgrade};

/// Words that would run, split or expand if a value ever became shell syntax. `CANARY` is
/// replaced by the scratch directory's canary path.
const HOSTILE: &[&str] = &[
    "$(touch${IFS}CANARY)",
    "`touch CANARY`",
    ";touch CANARY;",
    "&& touch CANARY",
    "\"",
    "'",
    "\\",
    "\\'",
    " ",
    "\t",
    "*",
    "?",
    "[a]",
    "-rf",
    "--help",
    "$HOME",
    "${IFS}",
    "$1",
    "$@",
    "~",
    "#",
    "!",
    "%s",
    "|",
    ">x",
    "ü",
    "a",
];

const SHELLS: &[&str] = &["/bin/sh", "/bin/bash"];

/// A scratch directory with stand-in tools on a private PATH.
struct Scratch {
    dir: tempfile::TempDir,
    record: PathBuf,
    path: String,
}

impl Scratch {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let record = dir.path().join("argv");
        let tools = [
            // Run the rest as given: the user switch is not what is being proven.
            (
                "sudo",
                "[ \"$1\" = -n ] && shift\n[ \"$1\" = -u ] && shift 2\nexec \"$@\"",
            ),
            (
                "runuser",
                "[ \"$1\" = -u ] && shift 2\n[ \"$1\" = -- ] && shift\nexec \"$@\"",
            ),
            (
                "kubectl",
                "printf '%s\\0' kubectl \"$@\" >> \"$PGHA_RECORD\"; printf '\\036' >> \"$PGHA_RECORD\"\n\
                 while [ $# -gt 0 ] && [ \"$1\" != -- ]; do shift; done\n\
                 [ $# -gt 0 ] || exit 0\nshift\nexec \"$@\"",
            ),
            ("systemctl", RECORDER),
            ("apt-get", RECORDER),
            ("pgbackrest", RECORDER),
            ("wal-g", RECORDER),
            ("wal-e", RECORDER),
            ("envdir", RECORDER),
        ];
        for (name, body) in tools {
            executable(&bin.join(name), body);
        }
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Scratch { dir, record, path }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn canary(&self) -> PathBuf {
        self.root().join("canary")
    }

    /// A path under the scratch directory spelt with hostile words.
    fn hostile_path(&self, words: &str, leaf: &str) -> String {
        let words = words.replace("CANARY", &self.canary().to_string_lossy());
        format!("{}/{words}/{leaf}", self.root().display())
    }

    /// Runs the command's exact line in `shell`, as SSH would hand it to the login shell.
    fn run(&self, shell: &str, command: &HostCommand) -> Output {
        let _ = std::fs::remove_file(&self.record);
        std::process::Command::new(shell)
            .arg("-c")
            .arg(command.shell_line())
            .env("PATH", &self.path)
            .env("PGHA_RECORD", &self.record)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    }

    /// The same, with `input` on the command's stdin.
    fn run_with_input(&self, shell: &str, command: &HostCommand, input: &str) -> Output {
        use std::io::Write as _;
        let mut child = std::process::Command::new(shell)
            .arg("-c")
            .arg(command.shell_line())
            .env("PATH", &self.path)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // A script that refuses first never reads its input: the pipe may be closed.
        let written = child.stdin.take().unwrap().write_all(input.as_bytes());
        if let Err(error) = written {
            assert_eq!(error.kind(), std::io::ErrorKind::BrokenPipe, "{error}");
        }
        child.wait_with_output().unwrap()
    }

    /// What the stand-in tools received: one argument vector per call (each argument ends
    /// with NUL, each call with the record separator 0x1e).
    fn recorded(&self) -> Vec<Vec<String>> {
        let text = std::fs::read(&self.record).unwrap_or_default();
        text.split(|byte| *byte == 0x1e)
            .filter(|call| !call.is_empty())
            .map(|call| {
                call.split(|byte| *byte == 0)
                    .filter(|word| !word.is_empty())
                    .map(|word| String::from_utf8_lossy(word).into_owned())
                    .collect()
            })
            .collect()
    }
}

/// Records `$0` (its base name for the stand-ins on PATH, the full path otherwise) and its
/// arguments.
const RECORDER: &str = "name=$0\ncase $name in */bin/*) name=${name##*/};; esac\n\
                        printf '%s\\0' \"$name\" \"$@\" >> \"$PGHA_RECORD\"; printf '\\036' >> \"$PGHA_RECORD\"";

fn executable(path: &Path, body: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn line_of(step: &Step) -> &HostCommand {
    match &step.action {
        Action::Remote(action) => &action.command,
        other => panic!("a command, not {other:?}"),
    }
}

/// The three ways a command reaches a host as the database's user.
fn controls(scratch: &Scratch, words: &str) -> Vec<ServiceControl> {
    vec![
        ServiceControl::Systemd {
            unit: "patroni".into(),
            sudo: true,
            db_user: "postgres".into(),
            // An inventory's upgrade command carrying the hostile words as one of its words.
            upgrade: vec![
                "apt-get".into(),
                "install".into(),
                words.replace("CANARY", &scratch.canary().to_string_lossy()),
                "patroni={version}*".into(),
            ],
        },
        ServiceControl::Lab {
            pgha: scratch.hostile_path(words, "pgha tool").into(),
            dir: scratch.hostile_path(words, "lab").into(),
            db_user: "postgres".into(),
        },
        ServiceControl::Kubernetes {
            namespace: "db".into(),
            pod: "pg-{member}".into(),
            context: Some("prod".into()),
            db_user: "postgres".into(),
        },
    ]
}

fn cluster(control: ServiceControl, data_dir: &str) -> (ClusterTarget, ClusterView) {
    let (mut target, view) = view_led_by("4.1.5", "node3", Some(1));
    for member in &mut target.members {
        member.data_dir = Some(data_dir.to_string());
        member.log_file = Some(format!("{data_dir}/log/postgresql-*.log"));
    }
    target.service = Some(control);
    target.ssh = Some(SshSettings {
        user: None,
        port: None,
        jump_host: None,
        identity_file: None,
        known_hosts: None,
        sudo: true,
    });
    (target, view)
}

#[track_caller]
fn succeeded(output: &Output) -> String {
    assert!(
        output.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn write(path: &str, content: &str) {
    std::fs::create_dir_all(Path::new(path).parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

fn read_file(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{path:?}: {error}"))
}

fn id(flag: &str) -> String {
    let output = std::process::Command::new("id").arg(flag).output().unwrap();
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// The PostgreSQL log: the newest file matching a name pattern, in a literal directory.
fn prove_log_read(scratch: &Scratch, host: &Host<'_>, shell: &str, data_dir: &str) {
    let older = format!("{data_dir}/log/postgresql-Mon.log");
    write(&older, "an older day\n");
    let touched = std::process::Command::new("touch")
        .args(["-d", "2020-01-01", "--", &older])
        .status()
        .unwrap();
    assert!(touched.success());
    write(
        &format!("{data_dir}/log/postgresql-Tue.log"),
        "LOG:  waiting for WAL to become available at 0/4000028\n",
    );
    let watch = host.stuck_watch(Duration::from_secs(30)).unwrap().unwrap();
    let read = scratch.run(shell, &watch.read.command);
    std::fs::remove_file(format!("{data_dir}/log/postgresql-Tue.log")).unwrap();
    std::fs::remove_file(&older).unwrap();
    let none = scratch.run(shell, &watch.read.command);
    assert_eq!(none.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&none.stderr),
        format!("no file matches {data_dir}/log/postgresql-*.log\n")
    );
    assert_eq!(
        succeeded(&read),
        "LOG:  waiting for WAL to become available at 0/4000028\n"
    );
}

/// Every host step, on one control and one shell, with `words` in every path it takes.
fn prove_host_steps(scratch: &Scratch, control: ServiceControl, shell: &str, words: &str) {
    let data_dir = scratch.hostile_path(words, "data");
    let (target, view) = cluster(control, &data_dir);
    let host = Host::new(&target, &view, "node1").unwrap();

    // Disk: the directory does not exist yet; the script walks up to its filesystem.
    let said = succeeded(&scratch.run(shell, line_of(&host.free_space_at_least(1).unwrap())));
    let (available, rest) = said.split_once(' ').unwrap();
    assert!(available.parse::<u64>().is_ok(), "{said:?}");
    assert_eq!(
        rest,
        format!("bytes available on the filesystem of {data_dir}, 1 needed\n")
    );
    let too_much = scratch.run(shell, line_of(&host.free_space_at_least(u64::MAX).unwrap()));
    assert!(!too_much.status.success(), "{} bytes free?", u64::MAX);
    // The doctor's read of the same filesystem: its size, then what is available.
    let usage = succeeded(&scratch.run(shell, &host.disk_usage_read().unwrap().command));
    let numbers: Vec<u64> = usage
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    assert!(
        matches!(numbers[..], [size, available] if size >= available && size > 0),
        "{usage:?}"
    );
    // A restore's progress: the bytes the hostile data directory holds (none yet: 0).
    let size_read = host.data_directory_size_read().unwrap();
    let size = |scratch: &Scratch| -> u64 {
        succeeded(&scratch.run(shell, &size_read.command))
            .trim()
            .parse()
            .unwrap()
    };
    let absent = !Path::new(&data_dir).exists();
    if absent {
        assert_eq!(size(scratch), 0);
    }

    // Backup and restore: real copies between hostile paths, compared byte for byte.
    let files = [
        format!("{data_dir}/pg_hba.conf"),
        format!("{data_dir}/x{}", words.replace('/', "_")),
    ];
    for (index, file) in files.iter().enumerate() {
        write(file, &format!("original {index}\n"));
    }
    assert!(size(scratch) >= 4096, "the directory and its two files");
    let backup_dir = scratch.hostile_path(words, "backup dir");
    succeeded(&scratch.run(shell, line_of(&host.backup(&files, &backup_dir).unwrap())));
    for (index, file) in files.iter().enumerate() {
        let copy = format!("{backup_dir}/{}", file.rsplit('/').next().unwrap());
        assert_eq!(read_file(&copy), format!("original {index}\n"));
        write(file, "changed\n");
    }
    succeeded(&scratch.run(shell, line_of(&host.restore(&files, &backup_dir).unwrap())));
    for (index, file) in files.iter().enumerate() {
        assert_eq!(read_file(file), format!("original {index}\n"));
    }

    // Mkdir with an owner and a mode.
    let new_dir = scratch.hostile_path(words, "new dir");
    let owner = format!("{}:{}", id("-un"), id("-gn"));
    let made = succeeded(&scratch.run(
        shell,
        line_of(&host.create_directory(&new_dir, &owner, "0750").unwrap()),
    ));
    assert_eq!(made, format!("{owner} 750 {new_dir}\n"));
    let permissions = std::fs::metadata(&new_dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(permissions, 0o750);

    prove_backup_tools(scratch, &host, shell, words, &data_dir);

    // The restored patroni.dynamic.json: refused while a postmaster runs there, then exactly
    // that file goes (its neighbour stays).
    let dynamic = format!("{data_dir}/patroni.dynamic.json");
    write(&dynamic, "{}");
    write(
        &format!("{data_dir}/postmaster.pid"),
        &format!("{}\n", std::process::id()),
    );
    let forget = host.remove_dynamic_config().unwrap();
    assert_eq!(scratch.run(shell, line_of(&forget)).status.code(), Some(3));
    assert!(Path::new(&dynamic).exists());
    std::fs::remove_file(format!("{data_dir}/postmaster.pid")).unwrap();
    let said = succeeded(&scratch.run(shell, line_of(&forget)));
    assert_eq!(said, format!("no patroni.dynamic.json in {data_dir}\n"));
    assert!(!Path::new(&dynamic).exists());
    assert!(Path::new(&files[0]).exists());

    // Wipe: refused while a postmaster runs there, then exactly that directory is emptied.
    let sibling = format!("{data_dir} sibling/keep");
    write(&sibling, "kept\n");
    write(&format!("{data_dir}/.hidden"), "x");
    write(
        &format!("{data_dir}/postmaster.pid"),
        &format!("{}\n", std::process::id()),
    );
    let wipe = host.wipe_data_directory().unwrap();
    let refused = scratch.run(shell, line_of(&wipe));
    assert_eq!(
        refused.status.code(),
        Some(3),
        "the postmaster guard refuses"
    );
    assert!(Path::new(&files[0]).exists());
    std::fs::remove_file(format!("{data_dir}/postmaster.pid")).unwrap();
    succeeded(&scratch.run(shell, line_of(&wipe)));
    assert_eq!(std::fs::read_dir(&data_dir).unwrap().count(), 0);
    assert_eq!(read_file(&sibling), "kept\n");

    prove_log_read(scratch, &host, shell, &data_dir);

    let reached = succeeded(&scratch.run(shell, line_of(&host.reachable().unwrap())));
    assert!(reached.ends_with(" answers\n"), "{reached:?}");
    std::fs::remove_dir_all(&data_dir).unwrap();
}

/// Backup tools receive their options and the data directory as single words.
fn prove_backup_tools(
    scratch: &Scratch,
    host: &Host<'_>,
    shell: &str,
    words: &str,
    data_dir: &str,
) {
    let tool_config = scratch.hostile_path(words, "tool.conf");
    let pgbackrest = host
        .restore_from_backup(&BackupTool::Pgbackrest {
            stanza: "main".into(),
            config: Some(tool_config.clone()),
        })
        .unwrap();
    succeeded(&scratch.run(shell, line_of(&pgbackrest)));
    let restored = [
        "pgbackrest".to_string(),
        format!("--config={tool_config}"),
        "--stanza=main".into(),
        format!("--pg1-path={data_dir}"),
        "--type=standby".into(),
        "--delta".into(),
        "restore".into(),
    ];
    assert_eq!(tool_calls(scratch), [restored.to_vec()]);
    let wal_g = host
        .restore_from_backup(&BackupTool::WalG {
            config: Some(tool_config.clone()),
        })
        .unwrap();
    succeeded(&scratch.run(shell, line_of(&wal_g)));
    let fetched = [
        "wal-g".to_string(),
        format!("--config={tool_config}"),
        "backup-fetch".into(),
        data_dir.to_string(),
        "LATEST".into(),
    ];
    assert_eq!(tool_calls(scratch), [fetched.to_vec()]);
    // WAL-E reads its environment from an envdir directory, given as one word.
    let wal_e = |envdir: Option<String>| {
        let step = host
            .restore_from_backup(&BackupTool::WalE { envdir })
            .unwrap();
        succeeded(&scratch.run(shell, line_of(&step)));
        tool_calls(scratch)
    };
    let fetch = [
        "backup-fetch".to_string(),
        data_dir.to_string(),
        "LATEST".into(),
    ];
    assert_eq!(
        wal_e(Some(tool_config.clone())),
        [[
            vec!["envdir".into(), tool_config.clone(), "wal-e".into()],
            fetch.to_vec()
        ]
        .concat()]
    );
    assert_eq!(
        wal_e(None),
        [[vec!["wal-e".to_string()], fetch.to_vec()].concat()]
    );

    // The backup listing gets its options as single words; listing nothing refuses.
    let policy = |refuse_when_older| BackupPolicy {
        tool: BackupTool::Pgbackrest {
            stanza: "main".into(),
            config: Some(tool_config.clone()),
        },
        max_age: std::time::Duration::from_hours(1),
        refuse_when_older,
    };
    let none = scratch.run(
        shell,
        line_of(&host.newest_backup_within(&policy(true)).unwrap()),
    );
    assert_eq!(none.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&none.stderr).contains("no backup is listed: take a backup first")
    );
    let listed = [
        "pgbackrest".to_string(),
        format!("--config={tool_config}"),
        "--stanza=main".into(),
        "--output=json".into(),
        "info".into(),
    ];
    assert_eq!(tool_calls(scratch), [listed.to_vec()]);
    let warned = succeeded(&scratch.run(
        shell,
        line_of(&host.newest_backup_within(&policy(false)).unwrap()),
    ));
    assert!(
        warned.starts_with("WARNING: no backup is listed"),
        "{warned}"
    );
}

/// What the recorders saw, without the `kubectl exec` wrapper's own record.
fn tool_calls(scratch: &Scratch) -> Vec<Vec<String>> {
    scratch
        .recorded()
        .into_iter()
        .filter(|call| !(call[0] == "kubectl" && call.contains(&"exec".to_string())))
        .collect()
}

/// Every service template: what reaches `systemctl`, `kubectl` or the lab's `pgha`.
fn prove_service_templates(scratch: &Scratch, control: &ServiceControl, shell: &str) {
    let expected = |action: &str| -> Vec<String> {
        match control {
            ServiceControl::Systemd { .. } => {
                vec!["systemctl".into(), action.into(), "patroni".into()]
            }
            ServiceControl::Kubernetes { .. } => [
                "kubectl",
                "--context",
                "prod",
                "-n",
                "db",
                "delete",
                "pod",
                "pg-node1",
                "--wait=false",
            ]
            .map(String::from)
            .to_vec(),
            ServiceControl::Lab { pgha, dir, .. } => vec![
                pgha.to_string_lossy().into_owned(),
                "lab".into(),
                "--dir".into(),
                dir.to_string_lossy().into_owned(),
                "member".into(),
                action.into(),
                "node1".into(),
            ],
        }
    };
    for action in [
        ServiceAction::Stop,
        ServiceAction::Start,
        ServiceAction::Restart,
    ] {
        let Ok((_, command)) = control.command(action, "node1") else {
            assert!(matches!(control, ServiceControl::Kubernetes { .. }));
            continue;
        };
        succeeded(&scratch.run(shell, &command));
        let calls = scratch.recorded();
        match (control, action) {
            (ServiceControl::Lab { .. }, ServiceAction::Restart) => {
                assert_eq!(calls, [expected("stop"), expected("start")]);
            }
            _ => assert_eq!(calls, [expected(action.word())]),
        }
    }
    prove_upgrade(scratch, control, shell);
    if let ServiceControl::Lab { dir, .. } = control {
        let (_, installed) = control.installed("node1").unwrap().unwrap();
        assert!(!scratch.run(shell, &installed).status.success());
        write(
            &format!("{}/members/node1/patroni.yml", dir.display()),
            "scope: demo\n",
        );
        succeeded(&scratch.run(shell, &installed));
        std::fs::remove_dir_all(dir.join("members")).unwrap();
    }
}

/// The upgrade template: every word of the inventory's command arrives as given, `{version}`
/// replaced; a version that is not a name never becomes a command.
fn prove_upgrade(scratch: &Scratch, control: &ServiceControl, shell: &str) {
    assert!(control.upgrade("node1", "4.1.5;touch canary").is_err());
    let commands = match control.upgrade("node1", "4.1.5").unwrap() {
        Upgrade::Commands(commands) => commands,
        Upgrade::ByHand(_) => {
            assert!(matches!(control, ServiceControl::Kubernetes { .. }));
            return;
        }
    };
    let expected: Vec<Vec<String>> = match control {
        ServiceControl::Systemd { upgrade, .. } => vec![
            upgrade
                .iter()
                .map(|word| word.replace("{version}", "4.1.5"))
                .collect(),
            ["systemctl", "start", "patroni"].map(String::from).to_vec(),
        ],
        ServiceControl::Lab { pgha, dir, .. } => vec![vec![
            pgha.to_string_lossy().into_owned(),
            "lab".into(),
            "--dir".into(),
            dir.to_string_lossy().into_owned(),
            "member".into(),
            "start".into(),
            "node1".into(),
            "--patroni-version".into(),
            "4.1.5".into(),
        ]],
        ServiceControl::Kubernetes { .. } => unreachable!("by hand"),
    };
    assert_eq!(commands.len(), expected.len());
    for ((_, command), call) in commands.iter().zip(expected) {
        succeeded(&scratch.run(shell, command));
        assert_eq!(scratch.recorded(), [call]);
    }
}

/// A tag's read and write of a Patroni configuration at a hostile path: the file read whole,
/// replaced by exactly what stdin carried (owner and mode kept, the original backed up), and
/// refused untouched when it changed since it was read.
fn prove_tag_commands(scratch: &Scratch, shell: &str, words: &str) {
    let path = scratch.hostile_path(words, "patroni.yml");
    let original = "scope: demo\nrestapi:\n  authentication:\n    password: \"it's $(x)\"\n";
    write(&path, original);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let action = TagAction {
        member: "node1".into(),
        host: "127.0.0.31".into(),
        path: path.clone(),
        backup: format!("{path}.pgha-backup"),
        tag: "noloadbalance".into(),
        value: true,
        sudo: true,
        timeout: std::time::Duration::from_mins(1),
    };
    let read = scratch.run(shell, &action.read_command());
    assert_eq!(succeeded(&read), original);
    let digest = crate::plan::sha256_hex(original.as_bytes());
    let edited = format!("{original}tags:\n  noloadbalance: true\n");
    let stale = scratch.run_with_input(shell, &action.write_command(&"0".repeat(64)), &edited);
    assert_eq!(
        stale.status.code(),
        Some(3),
        "a file changed since it was read"
    );
    assert_eq!(read_file(&path), original);
    assert!(!Path::new(&action.backup).exists());
    succeeded(&scratch.run_with_input(shell, &action.write_command(&digest), &edited));
    assert_eq!(read_file(&path), edited);
    assert_eq!(read_file(&action.backup), original);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640, "the file keeps its mode");
    std::fs::remove_file(&action.backup).unwrap();
}

fn prove(words: &str) {
    let scratch = Scratch::new();
    for shell in SHELLS {
        prove_tag_commands(&scratch, shell, words);
    }
    for control in controls(&scratch, words) {
        if let ServiceControl::Lab { pgha, .. } = &control {
            executable(pgha, RECORDER);
        }
        for shell in SHELLS {
            prove_host_steps(&scratch, control.clone(), shell, words);
            prove_service_templates(&scratch, &control, shell);
        }
    }
    assert!(
        !scratch.canary().exists(),
        "a hostile value ran as a command: {words:?}"
    );
}

/// Values that may only be names are refused before any command exists.
fn names_are_refused(words: &str) {
    let scratch = Scratch::new();
    let (target, view) = cluster(controls(&scratch, words).remove(0), "/srv/data");
    let host = Host::new(&target, &view, "node1").unwrap();
    let stanza = BackupTool::Pgbackrest {
        stanza: words.into(),
        config: None,
    };
    assert!(host.restore_from_backup(&stanza).is_err());
    assert!(host.create_directory("/srv/x", words, "0700").is_err());
    assert!(host.create_directory("/srv/x", "postgres", words).is_err());
    let unit = ServiceControl::Systemd {
        unit: words.into(),
        sudo: true,
        db_user: "postgres".into(),
        upgrade: Vec::new(),
    };
    assert!(unit.command(ServiceAction::Stop, "node1").is_err());
    assert!(unit.command(ServiceAction::Stop, words).is_err());
}

fn hostile_words() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(HOSTILE), 1..5).prop_map(|words| words.concat())
}

#[test]
fn the_canary_would_fire_if_a_value_became_syntax() {
    // The proof is only worth something if its canary works: run one value unquoted.
    let scratch = Scratch::new();
    let word = scratch.hostile_path("$(touch${IFS}CANARY)", "x");
    let unquoted = HostCommand::new("true").arg("x");
    let line = format!("{} {word}", unquoted.shell_line());
    std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(line)
        .output()
        .unwrap();
    assert!(scratch.canary().exists());
}

/// Each tool's listing, as it prints it (pgBackRest's compact JSON with epoch seconds, WAL-G's
/// with RFC 3339 times; spread over lines here), read for its newest backup: a minute old passes
/// an hour's limit and fails half a minute's — or only warns, when the inventory says so.
#[test]
fn the_newest_backup_age_is_read_from_each_tools_listing() {
    let scratch = Scratch::new();
    let now = jiff::Timestamp::now().as_second();
    let bin = scratch.root().join("bin");
    executable(
        &bin.join("pgbackrest"),
        &format!(
            "cat <<'EOF'\n[{{\"backup\":[\n {{\"label\":\"a\", \"timestamp\":{{\"start\":{},\"stop\":{}}}}},\n {{\"label\":\"b\",\"timestamp\":{{\"start\":{},\"stop\":{}}}}}],\n\"name\":\"main\"}}]\nEOF",
            now - 7300,
            now - 7200,
            now - 100,
            now - 60
        ),
    );
    let rfc3339 = |seconds: i64| jiff::Timestamp::from_second(seconds).unwrap().to_string();
    executable(
        &bin.join("wal-g"),
        &format!(
            "cat <<'EOF'\n[{{\"backup_name\":\"base_2\",\"finish_time\":\"{}\"}},\n {{\"backup_name\":\"base_1\", \"finish_time\": \"{}\"}}]\nEOF",
            rfc3339(now - 60),
            rfc3339(now - 7200)
        ),
    );
    // WAL-E's listing as seed 001 shows it (tab-separated, a space in the time) and in the
    // ISO form other versions print; envdir only sets the environment and runs the rest.
    let seed_time = |seconds: i64| {
        jiff::Timestamp::from_second(seconds)
            .unwrap()
            .strftime("%Y-%m-%d %H:%M:%S.235000+00:00")
            .to_string()
    };
    executable(
        &bin.join("wal-e"),
        &format!(
            "printf 'name\\tlast_modified\\texpanded_size_bytes\\twal_segment_backup_start\\n'\n\
             printf 'base_1\\t%s\\t\\t000000140001047600000023\\n' '{}'\n\
             printf 'base_2\\t%s\\t167772160\\t00000014000104FA000000C1\\n' '{}'\n",
            seed_time(now - 7200),
            rfc3339(now - 60)
        ),
    );
    executable(&bin.join("envdir"), "shift\nexec \"$@\"");
    let (target, view) = cluster(controls(&scratch, "words")[0].clone(), "/nonexistent");
    let host = Host::new(&target, &view, "node1").unwrap();
    let tools = [
        BackupTool::Pgbackrest {
            stanza: "main".into(),
            config: None,
        },
        BackupTool::WalG { config: None },
        BackupTool::WalE { envdir: None },
        BackupTool::WalE {
            envdir: Some("/etc/wal-e.d/env".into()),
        },
    ];
    for tool in tools {
        let policy = |max_age, refuse_when_older| BackupPolicy {
            tool: tool.clone(),
            max_age,
            refuse_when_older,
        };
        let run = |policy: &BackupPolicy| {
            scratch.run(
                "/bin/sh",
                line_of(&host.newest_backup_within(policy).unwrap()),
            )
        };
        let hour = std::time::Duration::from_hours(1);
        let half_minute = std::time::Duration::from_secs(30);
        let fresh = succeeded(&run(&policy(hour, true)));
        let age: u64 = fresh
            .strip_prefix("the newest backup finished ")
            .and_then(|rest| rest.split(' ').next())
            .and_then(|age| age.parse().ok())
            .unwrap_or_else(|| panic!("{tool:?}: {fresh}"));
        assert!(
            (60..70).contains(&age),
            "{tool:?}: the newest, not the first: {fresh}"
        );
        let stale = run(&policy(half_minute, true));
        assert_eq!(stale.status.code(), Some(1), "{tool:?}");
        assert!(
            String::from_utf8_lossy(&stale.stderr)
                .contains("over the 30 s allowed: take a backup first"),
            "{tool:?}"
        );
        let warned = succeeded(&run(&policy(half_minute, false)));
        assert!(
            warned.starts_with("WARNING: the newest backup finished"),
            "{warned}"
        );
    }
}

#[test]
fn every_hostile_word_in_one_path_is_inert() {
    prove(&HOSTILE.concat());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]
    #[test]
    fn composed_scripts_see_exactly_the_values_given(words in hostile_words()) {
        prove(&words);
    }

    #[test]
    fn hostile_names_never_reach_a_command(words in hostile_words()) {
        prop_assume!(crate::names::check_name(&words).is_err());
        names_are_refused(&words);
    }
}
