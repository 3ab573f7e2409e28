//! The lab's standby cluster (`pgha lab up --standby-cluster`): `geo` follows the primary
//! cluster from its pgBackRest WAL archive only, as a Geo secondary — a standby leader, every
//! member in recovery, a row written on the primary arriving on each member within the
//! primary's `archive_timeout` (10 s) and a replay; `pgha status` clean on both clusters. On
//! etcd and on the Consul double. Then `pgha geo-resetup` rebuilds `geo` from the backup while
//! the primary keeps taking writes, and the standby follows again.

use std::time::{Duration, Instant};

use pgha::inventory::{self, ClusterTarget, Selector};

use crate::harness::{
    self, Lab, Pgha, Writer, block_on, entry, etcd_put, killed_at_step, only_run, postgres_config,
    scratch, wait_until,
};

/// `geo-resetup` of the standby cluster, its name confirmed: the rebuild every drill runs.
const REBUILD_GEO: [&str; 6] = [
    "--cluster",
    "geo",
    "geo-resetup",
    "--yes",
    "--confirm",
    "geo",
];

/// The lab on 127.0.0.141: etcd on .140, demo on .141-.143, geo1 and geo2 on .144-.145.
#[test]
fn a_standby_cluster_follows_the_primary_from_its_wal_archive_on_etcd() {
    let lab = Lab::dedicated("standby", "127.0.0.141", &["--standby-cluster"]);
    follows_from_the_archive(&lab);
    rehearsed_like_the_standby_cluster(&lab);
    geo_resetup_rebuilds_it_while_the_primary_takes_writes(&lab);
    killed_after_the_wipe_then_resumed(&lab);
    a_stuck_recovery_fails_early_then_the_run_resumes_once_the_wal_is_back(&lab);
    // Last: it leaves geo split from its primary, and the dedicated lab is wiped after.
    a_restored_dynamic_config_started_first_promotes_and_pgha_says_so(&lab);
}

/// Seed 001's trap, fired on purpose (the rehearsal's F4 A2): a data directory restored from the
/// primary site's backup carries the primary's `patroni.dynamic.json`; started while the
/// standby's DCS keys are gone (the seed's "if patroni did not start, try step 1 again", or the
/// wrong member first), Patroni runs with the primary's configuration — no `standby_cluster` —
/// and the member promotes itself. What geo-resetup's order and removal prevent, shown real:
/// `pgha status` then says it first and fails `--fail-on critical`, `pgha doctor` calls it
/// critical, and geo-resetup refuses a cluster no standby leader leads.
fn a_restored_dynamic_config_started_first_promotes_and_pgha_says_so(lab: &Lab) {
    // A backup with its WAL inside (`--archive-copy`): recovery reaches consistency without an
    // archive, as in the rehearsal.
    let primary_leader = status(lab, &[])["leader"].as_str().unwrap().to_string();
    pgbackrest_as_postgres(
        &lab.dir
            .join("members")
            .join(&primary_leader)
            .join("pgbackrest/pgbackrest.conf"),
        &["--type=full", "--archive-copy", "backup"],
    );
    let runs = scratch();
    let geo = |args: &[&str]| {
        Pgha::new()
            .args(["--cluster", "geo"])
            .args(args)
            .env("PGHA_RUNS_DIR", runs.path())
            .lab(lab)
    };
    for member in ["geo1", "geo2"] {
        Pgha::new()
            .args(["lab", "member", "stop", member])
            .lab(lab)
            .run()
            .success();
    }
    geo(&["dcs", "delete-tree", "--yes", "--confirm", "geo"])
        .run()
        .success();
    geo(&[
        "host",
        "restore-backup",
        "--member",
        "geo2",
        "--tool",
        "pgbackrest",
        "--stanza",
        "demo",
        "--yes",
    ])
    .arg_flag_path("--tool-config", &lab.dir.join("pgbackrest/pgbackrest.conf"))
    .run()
    .success();
    let data = lab.dir.join("members/geo2/data");
    assert!(
        data.join("patroni.dynamic.json").is_file(),
        "the restore brought the primary's cached configuration"
    );
    let started = Instant::now();
    Pgha::new()
        .args(["lab", "member", "start", "geo2"])
        .lab(lab)
        .run()
        .success();
    wait_until(Duration::from_mins(1), "geo2 promotes itself", || {
        let document = geo(&["status", "-o", "json"]).run().json();
        document["warnings"][0]["code"] == "standby_writable"
    });
    eprintln!(
        "geo2 ran as a writable primary after {:?}",
        started.elapsed()
    );
    assert!(
        !in_recovery(
            &target(lab, "geo").member("geo2").unwrap().host,
            &lab.superuser_password()
        ),
        "geo2 takes writes: split from its primary site"
    );
    let table = geo(&["status", "--fail-on", "critical"])
        .run()
        .expect_code(7);
    let said = format!("{}{}", table.stdout(), table.stderr());
    assert!(
        said.contains(
            "geo2 runs as a writable primary, but the inventory marks geo a standby cluster"
        ),
        "{said}"
    );
    let doctor = geo(&["doctor", "-o", "json"]).run().json();
    assert_eq!(
        doctor["findings"][0]["code"], "standby_cluster_writable",
        "{doctor}"
    );
    let refused = geo(&["geo-resetup", "--yes", "--confirm", "geo"])
        .run()
        .expect_code(4);
    assert!(refused.stderr().contains("geo2"), "{}", refused.stderr());
}

/// `pgha rehearse --like geo`: a lab whose standby cluster mirrors geo (behind a one-member
/// primary site, on 127.0.1.11 and up), geo only read. A switchover of the standby leader (no
/// promotion, the same timeline), then geo-resetup with the lab's database filled to geo's size
/// and SSH dropped while geo2's restore runs: the restore cut short fails, and once SSH is back
/// the rehearsal's `pgha resume` restores it again and finishes the rebuild.
fn rehearsed_like_the_standby_cluster(lab: &Lab) {
    let runs = scratch();
    let dir = crate::harness::lab_root().join("rehearsal-standby");
    let _wiped = crate::rehearse::RehearsalLab(dir.clone());
    let geo_before = geo_state(lab);
    let dry_run = Pgha::new()
        .args(["--cluster", "geo", "geo-resetup", "--dry-run", "-o", "json"])
        .lab(lab)
        .run()
        .success()
        .json();
    let rehearse = |args: &[&str]| rehearse_like_geo(lab, &dir, runs.path(), args);
    until_geo_has_a_switchover_candidate(lab);
    let started = Instant::now();
    let switched = rehearse(&["switchover", "--yes"]);
    eprintln!("standby switchover rehearsed in {:?}", started.elapsed());
    assert_eq!(switched["same_structure"], true, "{switched}");
    assert_eq!(switched["outcome"], "succeeded", "{switched}");
    let said = switched["not_mirrored"].to_string();
    assert!(
        said.contains("the lab's standby cluster follows a one-member primary cluster, demo"),
        "{said}"
    );
    assert!(
        !said.contains("member names"),
        "geo1, geo2 are the lab's names too: {said}"
    );
    // A standby replica streams or replays the archive (`0/1 replicas streaming` while it
    // replays): both are healthy, and the summary warns of neither.
    let at_end = switched["lab_at_end"].as_str().unwrap();
    assert!(
        at_end.starts_with("geo: leader geo2, ") && at_end.ends_with("no warning"),
        "{switched}"
    );

    let started = Instant::now();
    let rebuilt = rehearse(&[
        "--scale",
        "1",
        "--fault",
        "ssh-drop@restore-backup",
        "geo-resetup",
        "--yes",
        "--confirm",
        "geo",
    ]);
    eprintln!("geo-resetup rehearsed in {:?}", started.elapsed());
    assert_eq!(
        rebuilt["target_structure"], dry_run["plan_structure"],
        "the rehearsal's structure is the one geo's dry-run prints"
    );
    assert_eq!(rebuilt["same_structure"], true, "{rebuilt}");
    assert_eq!(rebuilt["outcome"], "succeeded", "{rebuilt}");
    assert_eq!(
        rebuilt["faults"][0]["step"], "restore-backup-geo2",
        "{rebuilt}"
    );
    let resumes = rebuilt["resumes"].as_array().unwrap();
    assert_eq!(resumes.len(), 1, "{rebuilt}");
    assert!(
        resumes[0].as_str().unwrap().ends_with("exit 0"),
        "{rebuilt}"
    );
    let restores: Vec<&str> = rebuilt["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|step| step["step"] == "restore-backup-geo2")
        .map(|step| step["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        restores,
        ["failed", "succeeded"],
        "cut short, never taken for done; restored again on resume: {rebuilt}"
    );
    assert!(
        rebuilt["not_mirrored"].to_string().contains("the lab's is"),
        "the filled size is said: {rebuilt}"
    );
    let at_end = rebuilt["lab_at_end"].as_str().unwrap();
    assert!(
        at_end.starts_with("geo: leader geo1, ") && at_end.ends_with("no warning"),
        "the target leader's place again: {rebuilt}"
    );
    assert_eq!(geo_state(lab), geo_before, "geo was only read");
}

/// geo2 replays the archive a segment behind geo1 for a while after the primary's last write;
/// a switchover of geo, rehearsed or not, needs a candidate within 1 MiB: waits (at most a
/// minute) until geo's own switchover dry-run passes.
fn until_geo_has_a_switchover_candidate(lab: &Lab) {
    wait_until(
        Duration::from_mins(1),
        "geo has a switchover candidate",
        || {
            Pgha::new()
                .args(["--cluster", "geo", "switchover", "--dry-run"])
                .lab(lab)
                .run()
                .code()
                == 0
        },
    );
}

/// A standby cluster's switchover: Patroni hands the standby leader over without a promotion,
/// so pgha verifies it as the standby leader on the same timeline, and waits until Consul routes
/// the `standby-leader` tag to it; then back, for what follows.
fn the_standby_leader_is_handed_over_and_back(lab: &Lab) {
    let runs = scratch();
    for (from, to) in [("geo1", "geo2"), ("geo2", "geo1")] {
        until_geo_has_a_switchover_candidate(lab);
        let before = status(lab, &["--cluster", "geo"]);
        assert_eq!(before["leader"], from, "{before}");
        let timeline = entry(&before, "members", from)["timeline"].clone();
        let started = Instant::now();
        Pgha::new()
            .args(["--cluster", "geo", "switchover", "--yes", "--candidate", to])
            .env("PGHA_RUNS_DIR", runs.path())
            .lab(lab)
            .run()
            .success();
        eprintln!("standby switchover {from} to {to}: {:?}", started.elapsed());
        let after = status(lab, &["--cluster", "geo"]);
        assert_eq!(after["leader"], to, "{after}");
        assert_eq!(
            entry(&after, "members", to)["role"],
            "standby_leader",
            "{after}"
        );
        assert_eq!(
            entry(&after, "members", to)["timeline"],
            timeline,
            "handed over, not promoted: {after}"
        );
        assert_eq!(
            entry(&after, "members", to)["consul"]["tags"],
            serde_json::json!(["standby-leader"]),
            "{after}"
        );
    }
}

/// `pgha --env lab rehearse --like geo --report json ARGS` on the rehearsal lab in `dir`; its
/// report, the run succeeded.
fn rehearse_like_geo(
    lab: &Lab,
    dir: &std::path::Path,
    runs: &std::path::Path,
    args: &[&str],
) -> serde_json::Value {
    let run = Pgha::new()
        .args([
            "--env", "lab", "rehearse", "--like", "geo", "--report", "json",
        ])
        .arg_flag_path("--lab-dir", dir)
        .args(["--first-address", "127.0.1.11"])
        .args(args)
        .env("PGHA_RUNS_DIR", runs)
        .lab(lab)
        .run();
    eprintln!("{}", run.stderr());
    assert_eq!(run.code(), 0, "{}", run.stderr());
    run.json()
}

/// What a rehearsal must leave of geo: each member's role, timeline and PostgreSQL start.
fn geo_state(lab: &Lab) -> Vec<(String, Option<String>, Option<String>)> {
    let geo = target(lab, "geo");
    let client = pgha::patroni::PatroniClient::new(&geo.rest).unwrap();
    geo.members
        .iter()
        .map(|member| {
            let status = block_on(client.status(&member.api_url)).ok();
            (
                member.name.clone(),
                status.as_ref().map(|status| status.role.to_string()),
                status.and_then(|status| status.postmaster_start_time),
            )
        })
        .collect()
}

/// pgBackRest as the database's account, with the given configuration and the primary's
/// stanza; its standard output.
fn pgbackrest_as_postgres(config: &std::path::Path, args: &[&str]) -> String {
    let output = std::process::Command::new("runuser")
        .args(["-u", "postgres", "--", "pgbackrest", "--stanza=demo"])
        .arg(format!("--config={}", config.display()))
        .args(args)
        .current_dir("/")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "pgbackrest {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The newest backup's first WAL segment moved out of the archive (the rehearsal's F5): geo1 is
/// restored, then stays `starting`, its recovery waiting for that segment forever, and Patroni
/// says nothing more. The run fails once two reads of geo1's log, `--stuck-after` apart, show it
/// waiting at one position — with the log's tail — not at its six-hour deadline. With the
/// segment back, `pgha resume` finishes the rebuild.
fn a_stuck_recovery_fails_early_then_the_run_resumes_once_the_wal_is_back(lab: &Lab) {
    let runs = scratch();
    let segment = newest_backup_start_segment(lab);
    let archive = lab.dir.join("pgbackrest/repo/archive/demo");
    let aside = lab.dir.join("wal-aside");
    std::fs::create_dir_all(&aside).unwrap();
    let mut moved = Vec::new();
    for timeline_dir in std::fs::read_dir(&archive).unwrap() {
        let Ok(entries) = std::fs::read_dir(timeline_dir.unwrap().path()) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            for segment_file in std::fs::read_dir(&path).into_iter().flatten() {
                let file = segment_file.unwrap().path();
                let name = file.file_name().unwrap().to_string_lossy().into_owned();
                if name.starts_with(&format!("{segment}-")) {
                    std::fs::rename(&file, aside.join(&name)).unwrap();
                    moved.push((file, aside.join(&name)));
                }
            }
        }
    }
    assert!(!moved.is_empty(), "{segment} is in the archive");
    let started = Instant::now();
    let failed = Pgha::new()
        .args(REBUILD_GEO)
        .args(["--stuck-after", "5s"])
        .env("PGHA_RUNS_DIR", runs.path())
        .lab(lab)
        .run();
    let took = started.elapsed();
    eprintln!("the stuck rebuild failed after {took:?}");
    let stderr = failed.stderr();
    assert_ne!(failed.code(), 0, "{stderr}");
    assert!(
        stderr.contains("geo1 has been `starting` for")
            && stderr.contains("cannot go on: recovery waits for WAL at"),
        "{stderr}"
    );
    assert!(
        stderr.contains("waiting for WAL to become available at"),
        "the log's tail: {stderr}"
    );
    assert!(
        took < Duration::from_secs(90),
        "not at the deadline: {took:?}"
    );

    for (from, to) in moved {
        std::fs::rename(to, from).unwrap();
    }
    let resumed = Pgha::new()
        .args([
            "resume",
            &only_run(runs.path()),
            "--yes",
            "--confirm",
            "geo",
        ])
        .env("PGHA_RUNS_DIR", runs.path())
        .lab(lab)
        .run();
    assert_eq!(resumed.code(), 0, "{}", resumed.stderr());
    follows_from_the_archive(lab);
}

/// The WAL segment the newest backup of the primary starts in, as pgBackRest lists it.
fn newest_backup_start_segment(lab: &Lab) -> String {
    let output = pgbackrest_as_postgres(
        &lab.dir.join("pgbackrest/pgbackrest.conf"),
        &["--output=json", "info"],
    );
    let info: serde_json::Value = serde_json::from_str(&output).unwrap();
    let backups = info[0]["backup"].as_array().unwrap();
    backups.last().unwrap()["archive"]["start"]
        .as_str()
        .unwrap()
        .to_string()
}

/// pgha SIGKILLed as the first member starts (every data directory wiped, the DCS keys gone):
/// `pgha resume` takes the dead run's lock over and finishes the rebuild from the journal.
fn killed_after_the_wipe_then_resumed(lab: &Lab) {
    let runs = scratch();
    let run_id = killed_at_step(
        Pgha::new()
            .args(REBUILD_GEO)
            .env("PGHA_RUNS_DIR", runs.path())
            .lab(lab),
        runs.path(),
        "start-patroni-geo1",
    );
    let resumed = Pgha::new()
        .args(["resume", &run_id, "--yes", "--confirm", "geo"])
        .env("PGHA_RUNS_DIR", runs.path())
        .lab(lab)
        .run();
    assert_eq!(resumed.code(), 0, "{}", resumed.stderr());
    follows_from_the_archive(lab);
}

/// Refused on the primary cluster; on `geo`, every member rebuilt from the backup behind the
/// cluster's name while a writer keeps inserting on the primary (none of its writes lost), and
/// afterwards the standby follows the archive again.
fn geo_resetup_rebuilds_it_while_the_primary_takes_writes(lab: &Lab) {
    let runs = scratch();
    let geo_resetup = |args: &[&str]| {
        Pgha::new()
            .args(args)
            .env("PGHA_RUNS_DIR", runs.path())
            .lab(lab)
            .run()
    };
    let leader_before = status(lab, &["--cluster", "geo"])["leader"].clone();
    let refused = geo_resetup(&["geo-resetup", "--yes", "--confirm", "demo"]).expect_code(4);
    assert!(
        refused
            .one_error_line()
            .contains("not marked `standby: true`"),
        "{}",
        refused.stderr()
    );
    // A backup older than the inventory allows: the run fails at its first step, nothing done.
    let strict = lab.dir.join("pgha-strict-backup.yml");
    let text = std::fs::read_to_string(lab.inventory()).unwrap();
    assert!(text.contains("max_age: 24h"), "{text}");
    std::fs::write(&strict, text.replace("max_age: 24h", "max_age: 1s")).unwrap();
    let stale = Pgha::new()
        .arg_flag_path("--config", &strict)
        .args(["--env", "lab"])
        .args(REBUILD_GEO)
        .env("PGHA_RUNS_DIR", runs.path())
        .run();
    assert_ne!(stale.code(), 0);
    assert!(
        stale.stderr().contains("take a backup first"),
        "{}",
        stale.stderr()
    );
    assert!(
        !stale.stderr().contains("stop-patroni-geo1"),
        "{}",
        stale.stderr()
    );
    let _ = std::fs::remove_file(&strict);
    assert_eq!(
        status(lab, &["--cluster", "geo"])["leader"],
        leader_before,
        "nothing was stopped"
    );

    // On etcd, a sibling scope whose name starts with the cluster's: the keys' delete must
    // leave it alone (the Consul double's prefix delete is proven in the Consul tests).
    let on_etcd = target(lab, "geo").etcd.is_some();
    if on_etcd {
        etcd_put(lab, "/service/geo2/leader", "a sibling scope, not geo's");
    }
    let mut writer = Writer::start(lab);
    let started = Instant::now();
    let run = geo_resetup(&REBUILD_GEO);
    eprintln!("geo-resetup in {:?}", started.elapsed());
    let stderr = run.stderr();
    assert_eq!(run.code(), 0, "{stderr}");
    for line in stderr.lines().filter(|line| line.contains(" done in ")) {
        eprintln!("{}", line.trim());
    }
    assert!(
        stderr.contains("Remove the restored patroni.dynamic.json on geo2"),
        "{stderr}"
    );
    // Done only once caught up with where the primary was before the run (`follows: demo`).
    assert!(
        stderr.contains("caught-up done in") && stderr.contains("geo2 has replayed up to"),
        "{stderr}"
    );
    let at_least = writer.acknowledged_so_far() + 20;
    let lost = writer.finish_and_count_lost(at_least, "the primary, meanwhile");
    assert!(lost.is_empty(), "the primary lost writes: {lost:?}");
    if on_etcd {
        let (_, client) = lab.etcd_client();
        let sibling = block_on(client.get("/service/geo2/leader")).unwrap();
        assert!(sibling.is_some(), "the sibling scope's key survives");
    }
    follows_from_the_archive(lab);
}

/// The same on 127.0.0.151 (the Consul double on .150): Patroni registers the standby leader
/// under its own tag.
#[test]
fn a_standby_cluster_follows_the_primary_from_its_wal_archive_on_consul() {
    let lab = Lab::dedicated(
        "standby-consul",
        "127.0.0.151",
        &["--standby-cluster", "--dcs", "consul"],
    );
    follows_from_the_archive(&lab);
    let geo = status(&lab, &["--cluster", "geo"]);
    assert_eq!(
        entry(&geo, "members", "geo1")["consul"]["tags"],
        serde_json::json!(["standby-leader"]),
        "{geo}"
    );
    the_standby_leader_is_handed_over_and_back(&lab);
    promoted_then_demoted(&lab);
    // The promotion left geo on a timeline of its own: the rebuild makes it follow again.
    geo_resetup_rebuilds_it_while_the_primary_takes_writes(&lab);
}

/// The Geo site swap's two halves, on the Consul double (its compare-and-set): `geo` promoted
/// — refused while `demo`, the site it follows, takes writes, then done knowingly, geo1
/// writable on a new timeline (and `pgha status` calls that critical: the inventory says
/// standby) — then demoted again to follow the archive: a standby leader (Patroni may hand the
/// key to the other member as geo1 restarts), nobody writable.
fn promoted_then_demoted(lab: &Lab) {
    let runs = scratch();
    let geo = |args: &[&str]| {
        Pgha::new()
            .args(["--cluster", "geo"])
            .args(args)
            .env("PGHA_RUNS_DIR", runs.path())
            .lab(lab)
            .run()
    };
    let timeline =
        |document: &serde_json::Value| entry(document, "members", "geo1")["timeline"].as_u64();
    let before = status(lab, &["--cluster", "geo"]);
    let refused = geo(&["promote-cluster", "--yes", "--confirm", "geo"]).expect_code(4);
    assert!(
        refused.one_error_line().contains("two primaries"),
        "{}",
        refused.stderr()
    );
    let started = Instant::now();
    let promoted = geo(&[
        "promote-cluster",
        "--while-primary-site-writable",
        "--yes",
        "--confirm",
        "geo",
    ]);
    assert_eq!(promoted.code(), 0, "{}", promoted.stderr());
    eprintln!("promote-cluster in {:?}", started.elapsed());
    let after = status(lab, &["--cluster", "geo"]);
    assert_eq!(
        entry(&after, "members", "geo1")["role"],
        "leader",
        "{after}"
    );
    assert!(timeline(&after) > timeline(&before), "{after}");
    assert_eq!(after["warnings"][0]["code"], "standby_writable", "{after}");

    let started = Instant::now();
    let demoted = geo(&[
        "demote-cluster",
        "--restore-command",
        "pgbackrest --stanza=demo archive-get %f \"%p\"",
        "--yes",
        "--confirm",
        "geo",
    ]);
    assert_eq!(demoted.code(), 0, "{}", demoted.stderr());
    eprintln!("demote-cluster in {:?}", started.elapsed());
    let again = status(lab, &["--cluster", "geo"]);
    let roles: Vec<&str> = again["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|member| member["role"].as_str())
        .collect();
    assert!(
        roles.contains(&"standby_leader") && !roles.contains(&"leader"),
        "{again}"
    );
}

fn follows_from_the_archive(lab: &Lab) {
    let geo = status(lab, &["--cluster", "geo"]);
    assert_eq!(geo["leader"], "geo1", "{geo}");
    assert_eq!(entry(&geo, "members", "geo1")["role"], "standby_leader");
    assert_eq!(geo["warnings"], serde_json::json!([]), "{geo}");
    let primary = status(lab, &[]);
    assert_eq!(primary["scope"], "demo", "the primary stays the default");
    assert_eq!(primary["warnings"], serde_json::json!([]), "{primary}");

    let standby = target(lab, "geo");
    assert!(standby.standby, "the inventory marks geo standby");
    assert_eq!(standby.members.len(), 2);
    let password = lab.superuser_password();
    let password = password.as_str();
    let primary_hosts: Vec<String> = target(lab, "demo")
        .members
        .iter()
        .map(|member| member.host.clone())
        .collect();
    let marker = format!("{:?}", Instant::now());
    block_on(async {
        let writer = connect(&primary_hosts, password, true).await.unwrap();
        writer
            .batch_execute("CREATE TABLE IF NOT EXISTS geo_markers (marker text)")
            .await
            .unwrap();
        writer
            .execute("INSERT INTO geo_markers VALUES ($1)", &[&marker])
            .await
            .unwrap();
    });
    let written = Instant::now();
    for member in &standby.members {
        wait_until(
            Duration::from_secs(30),
            &format!("the marker reaches {}", member.name),
            || has_marker(&member.host, password, &marker),
        );
        eprintln!(
            "the marker reached {} after {:?}",
            member.name,
            written.elapsed()
        );
        assert!(
            in_recovery(&member.host, password),
            "{} takes no writes",
            member.name
        );
    }

    let refused = Pgha::new()
        .args(["lab", "up", "--first-address", lab.first_address])
        .lab(lab)
        .run()
        .expect_code(2);
    assert!(
        refused
            .one_error_line()
            .contains("standby cluster geo of 2 members"),
        "an up without --standby-cluster does not drop it: {}",
        refused.stderr()
    );
}

/// `pgha status -o json` on the lab with `extra` arguments; exit 0.
fn status(lab: &Lab, extra: &[&str]) -> serde_json::Value {
    Pgha::new()
        .args(["status", "-o", "json"])
        .args(extra)
        .lab(lab)
        .run()
        .success()
        .json()
}

fn target(lab: &Lab, cluster: &str) -> ClusterTarget {
    let selector = Selector {
        config: Some(lab.inventory()),
        environment: Some("lab".into()),
        cluster: Some(cluster.into()),
        ..Selector::default()
    };
    block_on(inventory::resolve(&selector)).unwrap()
}

/// The lab's superuser on `hosts`; with `writable`, only a host that takes writes.
async fn connect(
    hosts: &[String],
    password: &str,
    writable: bool,
) -> Option<tokio_postgres::Client> {
    let mut config = postgres_config(hosts, password, Duration::from_secs(2));
    if writable {
        config.target_session_attrs(tokio_postgres::config::TargetSessionAttrs::ReadWrite);
    }
    harness::connect(&config).await
}

/// Whether the standby member has replayed the marker (the table itself arrives with it).
fn has_marker(host: &str, password: &str, marker: &str) -> bool {
    block_on(async {
        let Some(client) = connect(&[host.to_string()], password, false).await else {
            return false;
        };
        client
            .query_opt("SELECT 1 FROM geo_markers WHERE marker = $1", &[&marker])
            .await
            .is_ok_and(|row| row.is_some())
    })
}

fn in_recovery(host: &str, password: &str) -> bool {
    block_on(async {
        let client = connect(&[host.to_string()], password, false).await.unwrap();
        client
            .query_one("SELECT pg_is_in_recovery()", &[])
            .await
            .unwrap()
            .get(0)
    })
}
