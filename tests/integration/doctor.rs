//! `pgha doctor` on the shared lab: each finding provoked for real — the lab's own single etcd
//! endpoint without failsafe mode, timing that lets the leader key expire while retrying, a
//! setting waiting for a restart, an absent member's replication slot holding WAL on the
//! leader, `pg_hba.conf` lines that shut the replicas out, the leader's disk below the
//! threshold — and gone once the cause is; the doctor itself changes nothing.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Lab, Pgha, block_on, timeline, wait_until};

/// `pgha doctor -o json`: the exit code and the findings' codes.
fn doctor(lab: &Lab) -> (i32, Vec<String>, Value) {
    let output = Pgha::new().args(["doctor", "-o", "json"]).lab(lab).run();
    let document = output.json();
    let codes = document["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|finding| finding["code"].as_str().unwrap().to_string())
        .collect();
    (output.code(), codes, document)
}

/// Puts the dynamic configuration back however the test ends.
struct Restore<'a> {
    lab: &'a Lab,
    patch: Value,
}

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        let (target, client) = self.lab.client();
        for member in &target.members {
            if block_on(client.patch_config(&member.api_url, &self.patch)).is_ok() {
                break;
            }
        }
    }
}

/// `tags.nofailover` of some members, in their Patroni configuration files, applied by
/// `pgha reload`; put back to false however the test ends.
///
/// A reload makes Patroni (3.x and later) rewrite the member's `pg_hba.conf` in its next loop,
/// after `pgha reload` has returned: only the edited replicas are reloaded (never the leader,
/// whose file the next test writes), and the guard reloads again only while the tags are set.
struct NoFailover<'a> {
    lab: &'a Lab,
    replicas: Vec<String>,
    set: std::cell::Cell<bool>,
}

impl NoFailover<'_> {
    fn set(&self, value: bool) {
        self.set.set(value);
        for name in &self.replicas {
            let path = self.lab.member_config(name);
            let text = std::fs::read_to_string(&path).unwrap();
            let (from, to) = if value {
                ("nofailover: false", "nofailover: true")
            } else {
                ("nofailover: true", "nofailover: false")
            };
            std::fs::write(&path, text.replace(from, to)).unwrap();
            Pgha::new()
                .args(["reload", "--yes", "--member", name])
                .lab(self.lab)
                .run();
        }
    }
}

impl Drop for NoFailover<'_> {
    fn drop(&mut self) {
        if self.set.get() {
            self.set(false);
        }
    }
}

fn patch(lab: &Lab, patch: &Value) {
    let (target, client) = lab.client();
    block_on(client.patch_config(&target.members[0].api_url, patch)).unwrap();
}

#[test]
fn doctor_finds_what_was_provoked_and_nothing_once_it_is_gone() {
    let lab = Lab::shared();
    let _guard = lab.exclusive();
    let before = lab.status_json();

    // The lab as it is: one etcd endpoint and failsafe mode off, a warning (exit 7).
    let started = Instant::now();
    let (code, codes, _) = doctor(lab);
    eprintln!("doctor in {:?}", started.elapsed());
    assert_eq!(codes, ["failsafe_off_single_dcs"]);
    assert_eq!(code, 7);
    let _restore = Restore {
        lab,
        patch: json!({"retry_timeout": 5, "failsafe_mode": null,
                      "postgresql": {"parameters": {"max_connections": 50}}}),
    };
    patch(lab, &json!({"failsafe_mode": true}));
    let (code, codes, _) = doctor(lab);
    assert_eq!(
        (code, codes),
        (0, Vec::<String>::new()),
        "failsafe on: nothing"
    );

    // loop_wait 2 + 2 × retry_timeout 10 > ttl 20.
    patch(lab, &json!({"retry_timeout": 10}));
    let (_, codes, document) = doctor(lab);
    assert_eq!(codes, ["timing"], "{document}");
    patch(lab, &json!({"retry_timeout": 5}));

    // A setting that needs a restart: every member reports it pending.
    patch(
        lab,
        &json!({"postgresql": {"parameters": {"max_connections": 60}}}),
    );
    wait_until(
        Duration::from_secs(30),
        "every member reports the pending restart",
        || {
            doctor(lab)
                .1
                .iter()
                .filter(|code| *code == "pending_restart")
                .count()
                == 3
        },
    );
    patch(
        lab,
        &json!({"postgresql": {"parameters": {"max_connections": 50}}}),
    );
    wait_until(Duration::from_secs(30), "no restart pending", || {
        doctor(lab).1.is_empty()
    });

    an_absent_members_slot_holds_wal(lab);
    a_primary_called_a_standby_is_critical(lab);
    no_replica_may_take_over(lab);
    a_rule_above_the_replication_users_shuts_replicas_out(lab);
    the_leaders_disk_below_the_threshold(lab);

    // Read-only: the same leader on the same timeline as before.
    let after = lab.status_json();
    assert_eq!(after["leader"], before["leader"]);
    assert_eq!(timeline(&after), timeline(&before));
}

/// `segments` WAL segments written and switched on the leader.
fn write_wal_on_the_leader(lab: &Lab, segments: usize) {
    lab.leader_sql("CREATE TABLE IF NOT EXISTS doctor_wal (n int); SELECT 'created'");
    for _ in 0..segments {
        lab.leader_sql("INSERT INTO doctor_wal VALUES (1); SELECT pg_switch_wal()::text");
    }
    // A write after the last switch: left on a segment's first byte, an idle leader makes
    // every replica look 16 MiB behind, and the next test's switchover refuses.
    lab.leader_sql("INSERT INTO doctor_wal VALUES (2); SELECT 'written'");
}

/// A replica gone: its slot on the leader holds every WAL segment written since.
fn an_absent_members_slot_holds_wal(lab: &Lab) {
    let replica = lab.replica();
    Pgha::new()
        .args(["lab", "member", "stop", &replica])
        .lab(lab)
        .run()
        .success();
    write_wal_on_the_leader(lab, 6);
    let (code, codes, document) = doctor(lab);
    assert_eq!(code, 7);
    assert!(codes.contains(&"inactive_slot".to_string()), "{document}");
    let slot = document["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|finding| finding["code"] == "inactive_slot")
        .unwrap();
    assert!(
        slot["seen"]
            .as_str()
            .unwrap()
            .contains(&format!("slot {replica} on")),
        "{slot}"
    );
    Pgha::new()
        .args(["lab", "member", "start", &replica])
        .lab(lab)
        .run()
        .success();
    wait_until(
        Duration::from_mins(1),
        "the replica streams and its slot is used",
        || doctor(lab).1.is_empty(),
    );
}

/// The inventory calls the cluster a standby, but its leader takes writes: critical.
fn a_primary_called_a_standby_is_critical(lab: &Lab) {
    let inventory = std::fs::read_to_string(lab.inventory()).unwrap();
    let as_standby = lab.dir.join("pgha-doctor-standby.yml");
    std::fs::write(
        &as_standby,
        inventory.replacen(
            "        scope: demo\n",
            "        scope: demo\n        standby: true\n",
            1,
        ),
    )
    .unwrap();
    let output = Pgha::new()
        .arg_flag_path("--config", &as_standby)
        .args(["--env", "lab", "doctor", "-o", "json"])
        .run();
    let _ = std::fs::remove_file(&as_standby);
    let document = output.json();
    assert_eq!(
        document["findings"][0]["code"], "standby_cluster_writable",
        "{document}"
    );
    assert_eq!(document["findings"][0]["severity"], "critical");
}

/// Every replica tagged nofailover (their Patroni configuration edited and reloaded): no
/// member could take over.
fn no_replica_may_take_over(lab: &Lab) {
    let replicas: Vec<String> = ["node1", "node2", "node3"]
        .into_iter()
        .filter(|name| *name != lab.leader())
        .map(str::to_string)
        .collect();
    let tagged = NoFailover {
        lab,
        replicas,
        set: std::cell::Cell::new(false),
    };
    tagged.set(true);
    wait_until(
        Duration::from_secs(30),
        "the doctor finds no candidate",
        || doctor(lab).1.contains(&"no_failover_candidate".to_string()),
    );
    tagged.set(false);
    wait_until(Duration::from_secs(30), "a candidate again", || {
        doctor(lab).1.is_empty()
    });
}

/// Puts a file back as it was however the test ends.
struct PutBack {
    path: std::path::PathBuf,
    text: String,
}

impl Drop for PutBack {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.path, &self.text);
    }
}

/// Lines written above the leader's own: PostgreSQL reads `pg_hba.conf` for every new
/// connection, so no reload is needed for `pg_hba_file_rules` (and the next replica) to see
/// them, and the streaming replicas keep their connections.
fn a_rule_above_the_replication_users_shuts_replicas_out(lab: &Lab) {
    let leader = lab.leader();
    let path = lab
        .dir
        .join("members")
        .join(&leader)
        .join("data/pg_hba.conf");
    let text = std::fs::read_to_string(&path).unwrap();
    let _put_back = PutBack {
        path: path.clone(),
        text: text.clone(),
    };
    let replica = lab.replica();
    let address = lab.address(&replica);
    std::fs::write(
        &path,
        format!(
            "host replication all {address}/32 reject\nhost replication all 127.0.0.0/8 md5\nhost all all 127.0.0.0/8 bogus\n{text}"
        ),
    )
    .unwrap();
    let (code, codes, document) = doctor(lab);
    assert_eq!(code, 7);
    assert_eq!(
        codes,
        [
            "hba_error",
            "hba_replication_rejected",
            "hba_replication_shadowed"
        ],
        "{document}"
    );
    let rejected = &document["findings"][1];
    assert_eq!(rejected["member"], leader.as_str());
    let seen = rejected["seen"].as_str().unwrap();
    assert!(
        seen.contains(&format!("from {replica}: line 1")),
        "only {replica} is rejected: {seen}"
    );
    std::fs::write(&path, &text).unwrap();
    assert_eq!(doctor(lab).1, Vec::<String>::new());
}

/// The lab's disk is what it is: a threshold above its free share provokes the finding.
fn the_leaders_disk_below_the_threshold(lab: &Lab) {
    let output = Pgha::new()
        .args(["doctor", "-o", "json", "--min-free-disk", "100"])
        .lab(lab)
        .run();
    let document = output.json();
    let disk = document["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|finding| finding["code"] == "leader_disk_low")
        .unwrap_or_else(|| panic!("{document}"));
    assert_eq!(disk["severity"], "critical");
    assert_eq!(disk["member"], lab.leader().as_str());
    let refused = Pgha::new()
        .args(["doctor", "--min-free-disk", "101"])
        .lab(lab)
        .run();
    assert_eq!(refused.code(), 2, "{}", refused.stderr());
}

/// The lab's wreck that a killed test run once left: a replica stopped while the leader wrote,
/// the segments it needs removed from the leader (as a full `pg_wal` or a short
/// `wal_keep_size` would), then started again. It runs, asks for WAL nobody has, and looks like
/// any running replica in the table; the doctor names it, and `pgha reinit` rebuilds it.
#[test]
fn a_replica_behind_wal_the_leader_removed_is_found_then_rebuilt() {
    let lab = Lab::shared();
    let _guard = lab.exclusive();
    let replica = lab.replica();
    let leader = lab.leader();
    Pgha::new()
        .args(["lab", "member", "stop", &replica])
        .lab(lab)
        .run()
        .success();
    write_wal_on_the_leader(lab, 3);
    // A checkpoint: the segments before its redo point are needed by nothing on the leader.
    let redo_segment =
        lab.leader_sql("CHECKPOINT; SELECT pg_walfile_name(redo_lsn) FROM pg_control_checkpoint()");
    let wal = lab.dir.join("members").join(&leader).join("data/pg_wal");
    let mut removed = 0;
    for entry in std::fs::read_dir(&wal).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.len() == 24 && name < redo_segment {
            std::fs::remove_file(entry.path()).unwrap();
            removed += 1;
        }
    }
    assert!(removed > 0, "no segment before {redo_segment}");
    Pgha::new()
        .args(["lab", "member", "start", &replica])
        .lab(lab)
        .run()
        .success();
    wait_until(
        Duration::from_mins(1),
        "the doctor finds the replica that cannot follow",
        || doctor(lab).1.contains(&"replica_not_streaming".to_string()),
    );
    let (code, _, document) = doctor(lab);
    assert_eq!(code, 7);
    let finding = document["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|finding| finding["code"] == "replica_not_streaming")
        .unwrap();
    assert_eq!(finding["member"], replica.as_str(), "{finding}");
    lab.reinit(&replica);
    wait_until(
        Duration::from_mins(1),
        "no finding but the lab's own",
        || doctor(lab).1 == ["failsafe_off_single_dcs"],
    );
}
