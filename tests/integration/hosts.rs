//! Host steps on the lab, through its sshd and as the database's OS user: a backup/restore
//! round trip, a data directory wipe refused on the leader, on a running member, and by the
//! command itself while PostgreSQL still runs; a real wipe after which the member rebuilds
//! itself; a member restored from a real pgBackRest backup that follows the leader; free disk
//! space; a directory with owner and mode.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::harness::{Lab, Pgha, Run, entry, scratch};

fn host(lab: &Lab, runs: &Path) -> Pgha {
    Pgha::new().lab(lab).env("PGHA_RUNS_DIR", runs)
}

/// `pgha host wipe` of `member`, unattended with its name confirmed.
fn wipe(lab: &Lab, runs: &Path, member: &str) -> Run {
    host(lab, runs)
        .args([
            "host",
            "wipe",
            "--member",
            member,
            "--yes",
            "--confirm",
            member,
        ])
        .run()
}

fn data_dir(lab: &Lab, member: &str) -> std::path::PathBuf {
    lab.dir.join("members").join(member).join("data")
}

#[test]
fn files_backed_up_and_restored_come_back_byte_for_byte() {
    let guard = Lab::shared().exclusive();
    let lab = guard.lab;
    let runs = scratch();
    let member = lab.replica();
    let hba = data_dir(lab, &member).join("pg_hba.conf");
    let original = std::fs::read(&hba).unwrap();
    let backups = lab.dir.join("members").join(&member).join("test-backup");
    let _ = std::fs::remove_dir_all(&backups);
    let to = backups.to_string_lossy().into_owned();
    host(lab, runs.path())
        .args(["host", "backup", "--member", &member, "--to", &to, "--yes"])
        .run()
        .success();
    let copy = backups.join("pg_hba.conf");
    assert_eq!(std::fs::read(&copy).unwrap(), original);
    let metadata = std::fs::metadata(&copy).unwrap();
    assert_eq!(metadata.permissions().mode() & 0o777, 0o600, "mode kept");

    // Someone edits the file; the restore puts the copy back.
    let mut edited = original.clone();
    edited.extend_from_slice(b"\n# edited by a test\n");
    std::fs::write(&hba, &edited).unwrap();
    host(lab, runs.path())
        .args([
            "host", "restore", "--member", &member, "--from", &to, "--yes",
        ])
        .run()
        .success();
    assert_eq!(std::fs::read(&hba).unwrap(), original);
    let owner = std::fs::metadata(&hba).unwrap().uid();
    assert_eq!(
        Some(owner),
        postgres_uid(),
        "restored as the database's user"
    );
    std::fs::remove_dir_all(&backups).unwrap();
}

fn postgres_uid() -> Option<u32> {
    let output = std::process::Command::new("id")
        .args(["-u", "postgres"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&output.stdout).trim().parse().ok()
}

#[test]
fn a_wipe_is_refused_on_the_leader_and_on_a_running_member() {
    let guard = Lab::shared().exclusive();
    let lab = guard.lab;
    let runs = scratch();
    for member in [lab.leader(), lab.replica()] {
        let run = wipe(lab, runs.path(), &member).expect_code(4);
        assert!(
            run.stderr()
                .contains("pgha: refused: a pre-check failed: nothing was changed"),
            "{}",
            run.stderr()
        );
        assert!(
            data_dir(lab, &member).join("PG_VERSION").is_file(),
            "{member}'s data is intact"
        );
    }
    let run = host(lab, runs.path())
        .args(["host", "wipe", "--member", &lab.replica(), "--yes"])
        .run()
        .expect_code(2);
    assert!(run.one_error_line().contains("--yes is not enough"));
}

#[test]
fn a_wipe_refuses_by_itself_while_postgres_runs_then_wipes_and_the_member_rebuilds() {
    let guard = Lab::shared().exclusive();
    let lab = guard.lab;
    let runs = scratch();
    let member = lab.replica();
    // Paused, a stopped Patroni leaves PostgreSQL running: every pre-check passes, but the
    // command itself finds the live postmaster and refuses.
    lab.set_paused(true);
    host(lab, runs.path())
        .args(["service", "stop", "--member", &member, "--yes"])
        .run()
        .success();
    let run = wipe(lab, runs.path(), &member).expect_code(1);
    assert!(
        run.stderr().contains("PostgreSQL still runs on"),
        "{}",
        run.stderr()
    );
    assert!(
        data_dir(lab, &member).join("PG_VERSION").is_file(),
        "nothing was deleted"
    );
    host(lab, runs.path())
        .args(["service", "start", "--member", &member, "--yes"])
        .run()
        .success();
    lab.set_paused(false);

    // Unpaused, stopping Patroni stops PostgreSQL: the wipe goes through.
    host(lab, runs.path())
        .args(["service", "stop", "--member", &member, "--yes"])
        .run()
        .success();
    wipe(lab, runs.path(), &member).success();
    let left: Vec<_> = std::fs::read_dir(data_dir(lab, &member)).unwrap().collect();
    assert!(left.is_empty(), "the data directory is empty: {left:?}");
    let mode = std::fs::metadata(data_dir(lab, &member))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o700, "the directory itself is kept");
    // Started on an empty data directory, Patroni copies the leader: the member rebuilds.
    host(lab, runs.path())
        .args(["service", "start", "--member", &member, "--yes"])
        .run()
        .success();
    assert_eq!(
        entry(&lab.status_json(), "members", &member)["state"],
        "streaming"
    );
}

#[test]
fn disk_space_is_checked_against_what_is_needed() {
    let guard = Lab::shared().exclusive();
    let runs = scratch();
    let member = guard.lab.replica();
    let run = host(guard.lab, runs.path())
        .args([
            "host", "disk", "--member", &member, "--need", "1KiB", "--yes",
        ])
        .run()
        .success();
    assert!(
        run.stderr()
            .contains("bytes available on the filesystem of"),
        "{}",
        run.stderr()
    );
    let run = host(guard.lab, runs.path())
        .args([
            "host",
            "disk",
            "--member",
            &member,
            "--need",
            "999999GiB",
            "--yes",
        ])
        .run()
        .expect_code(1);
    assert!(
        run.stderr().contains("1073740750848 needed") || run.stderr().contains("needed"),
        "{}",
        run.stderr()
    );
}

#[test]
fn a_directory_is_created_with_its_owner_and_mode() {
    let guard = Lab::shared().exclusive();
    let runs = scratch();
    let member = guard.lab.replica();
    let dir = scratch();
    let path = dir.path().join("restore target");
    let path_text = path.to_string_lossy().into_owned();
    host(guard.lab, runs.path())
        .args([
            "host",
            "mkdir",
            "--member",
            &member,
            "--path",
            &path_text,
            "--owner",
            "postgres:postgres",
            "--mode",
            "0750",
            "--yes",
        ])
        .run()
        .success();
    let metadata = std::fs::metadata(&path).unwrap();
    assert_eq!(metadata.permissions().mode() & 0o777, 0o750);
    assert_eq!(Some(metadata.uid()), postgres_uid());
}

/// A pgBackRest repository of the lab with one full backup of `leader`, taken as the database's
/// user. Archiving is off in the lab, so the backup does not wait for the archive: the restored
/// member gets the WAL since the backup by streaming from the leader, as a rebuilt replica does.
fn pgbackrest_backup_of(lab: &Lab, leader: &str) -> std::path::PathBuf {
    let dir = lab.dir.join("pgbackrest-test");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let member_dir = lab.dir.join("members").join(leader);
    let config = dir.join("pgbackrest.conf");
    std::fs::write(
        &config,
        format!(
            "[global]\nrepo1-path={repo}\nlog-path={dir}\nlock-path={dir}\nlog-level-console=info\n\
             log-level-file=off\nstart-fast=y\narchive-check=n\ncompress-type=lz4\n\n\
             [demo]\npg1-path={data}\npg1-socket-path={socket}\npg1-port=5432\n",
            repo = dir.join("repo").display(),
            dir = dir.display(),
            data = member_dir.join("data").display(),
            socket = member_dir.display(),
        ),
    )
    .unwrap();
    let uid = postgres_uid().unwrap();
    std::os::unix::fs::chown(&dir, Some(uid), None).unwrap();
    std::os::unix::fs::chown(&config, Some(uid), None).unwrap();
    for command in ["stanza-create", "backup"] {
        let output = std::process::Command::new("runuser")
            .args(["-u", "postgres", "--", "pgbackrest"])
            .arg(format!("--config={}", config.display()))
            .args(["--stanza=demo", command])
            .current_dir("/")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "pgbackrest {command}: {}",
            String::from_utf8_lossy(&output.stdout)
        );
    }
    config
}

#[test]
fn a_member_restored_from_a_pgbackrest_backup_follows_the_leader() {
    let guard = Lab::shared().exclusive();
    let lab = guard.lab;
    let runs = scratch();
    let leader = lab.leader();
    let member = lab.replica();
    let config = pgbackrest_backup_of(lab, &leader);
    let restore = |member: &str| {
        host(lab, runs.path())
            .args([
                "host",
                "restore-backup",
                "--member",
                member,
                "--tool",
                "pgbackrest",
                "--stanza",
                "demo",
                "--yes",
            ])
            .arg_flag_path("--tool-config", &config)
            .run()
    };
    // Never into a running member, nor the leader's directory.
    let refused = restore(&member).expect_code(4);
    assert!(
        refused.stderr().contains("REST API does not answer"),
        "{}",
        refused.stderr()
    );
    restore(&leader).expect_code(4);

    host(lab, runs.path())
        .args(["service", "stop", "--member", &member, "--yes"])
        .run()
        .success();
    wipe(lab, runs.path(), &member).success();
    let run = restore(&member).success();
    assert!(
        run.stderr().contains(r#"pgbackrest "$@" --pg1-path="$d""#)
            && run.stderr().contains(" --config="),
        "{}",
        run.stderr()
    );
    let data = data_dir(lab, &member);
    assert!(data.join("PG_VERSION").is_file(), "restored");
    assert!(
        data.join("standby.signal").is_file(),
        "restored as a standby, never to be promoted by its recovery"
    );
    host(lab, runs.path())
        .args(["service", "start", "--member", &member, "--yes"])
        .run()
        .success();
    let status = lab.status_json();
    assert_eq!(entry(&status, "members", &member)["state"], "streaming");
    assert_eq!(lab.leader(), leader, "the leader never moved");
    let _ = std::fs::remove_dir_all(lab.dir.join("pgbackrest-test"));
}

/// The inventory's `backup:` read by the real pgBackRest: a fresh backup passes, the same one
/// past a 1 s limit fails and says so; an inventory without `backup:` is refused by name.
#[test]
fn the_newest_pgbackrest_backup_is_checked_for_its_age() {
    let guard = Lab::shared().exclusive();
    let lab = guard.lab;
    let runs = scratch();
    let leader = lab.leader();
    let refused = host(lab, runs.path())
        .args(["host", "backup-age", "--member", &leader, "--yes"])
        .run()
        .expect_code(4);
    assert!(
        refused.one_error_line().contains("names no `backup:`"),
        "{}",
        refused.stderr()
    );
    let config = pgbackrest_backup_of(lab, &leader);
    // Beside the lab's own inventory: its secrets are named relative to it.
    let inventory = lab.dir.join("pgha-with-backup.yml");
    let text = std::fs::read_to_string(lab.inventory()).unwrap().replace(
        "\n    clusters:\n",
        &format!(
            "\n    backup:\n      tool: pgbackrest\n      stanza: demo\n      config: {}\n      max_age: 1h\n    clusters:\n",
            config.display()
        ),
    );
    std::fs::write(&inventory, text).unwrap();
    let backup_age = |extra: &[&str]| {
        Pgha::new()
            .arg_flag_path("--config", &inventory)
            .args([
                "--env",
                "lab",
                "host",
                "backup-age",
                "--member",
                &leader,
                "--yes",
            ])
            .args(extra)
            .env("PGHA_RUNS_DIR", runs.path())
            .run()
    };
    let fresh = backup_age(&[]).success();
    assert!(
        fresh.stderr().contains("the newest backup finished")
            && fresh.stderr().contains("(at most 3600 s)"),
        "{}",
        fresh.stderr()
    );
    std::thread::sleep(std::time::Duration::from_secs(2));
    let stale = backup_age(&["--max-age", "1s"]);
    assert_ne!(stale.code(), 0, "{}", stale.stderr());
    assert!(
        stale
            .stderr()
            .contains("over the 1 s allowed: take a backup first"),
        "{}",
        stale.stderr()
    );
    let _ = std::fs::remove_file(&inventory);
    let _ = std::fs::remove_dir_all(lab.dir.join("pgbackrest-test"));
}
