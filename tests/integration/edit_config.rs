//! `pgha edit-config` on the shared lab (etcd): a dry-run shows the diff and changes nothing;
//! what Patroni would ignore is refused in one line; a change is written with etcd's
//! compare-and-set and done once every member sees it, naming the restart a parameter needs;
//! a change made by someone else while the operator reads the prompt aborts the write.

use std::path::Path;

use crate::harness::{Lab, Pgha, block_on, fingerprint, scratch};

/// The lab's dynamic configuration as every test here leaves it.
const PUT_BACK: [&str; 8] = [
    "--set",
    "ttl=20",
    "--pg",
    "work_mem=null",
    "--pg",
    "max_connections=50",
    "--set",
    "maximum_lag_on_failover=1048576",
];

fn edit(lab: &Lab, runs: &Path, args: &[&str]) -> Pgha {
    Pgha::new()
        .args(["edit-config"])
        .args(args)
        .env("PGHA_RUNS_DIR", runs)
        .lab(lab)
}

/// `GET /config` from the leader, as `pgha config show -o json` prints it.
fn config(lab: &Lab) -> serde_json::Value {
    Pgha::new()
        .args(["config", "show", "-o", "json"])
        .lab(lab)
        .run()
        .success()
        .json()
}

/// Puts the lab's configuration back however the test ends.
struct PutBack<'a>(&'a Lab);

impl Drop for PutBack<'_> {
    fn drop(&mut self) {
        let runs = scratch();
        let run = edit(self.0, runs.path(), &PUT_BACK).args(["--yes"]).run();
        if run.code() != 0 {
            eprintln!("putting the configuration back failed:\n{}", run.stderr());
        }
    }
}

#[test]
fn a_change_is_shown_refused_or_written_then_verified_on_every_member() {
    let guard = Lab::shared().exclusive();
    let lab = guard.lab;
    let runs = scratch();
    let _put_back = PutBack(lab);
    let before = fingerprint(lab);

    let dry = edit(
        lab,
        runs.path(),
        &["--set", "ttl=25", "--pg", "work_mem=8MB", "--dry-run"],
    )
    .run()
    .success();
    let plan = dry.stdout();
    assert!(
        plan.contains("-ttl: 20") && plan.contains("+ttl: 25"),
        "{plan}"
    );
    assert!(plan.contains("+    work_mem: 8MB"), "{plan}");
    assert!(
        plan.contains("etcdctl --endpoints") && plan.contains("txn: if mod_revision("),
        "{plan}"
    );
    // Patroni would take these with a 200 and ignore or adjust them.
    for (args, said) in [
        (
            &["--set", "tll=25"][..],
            "`tll` is not a dynamic configuration setting",
        ),
        (&["--set", "loop_wait=15"][..], "is more than ttl (20)"),
        (&["--pg", "port=5433"][..], "set by Patroni itself"),
    ] {
        let refused = edit(lab, runs.path(), args)
            .args(["--yes"])
            .run()
            .expect_code(2);
        assert!(
            refused.one_error_line().contains(said),
            "{args:?}: {}",
            refused.stderr()
        );
    }
    assert_eq!(fingerprint(lab), before, "nothing changed");

    let started = std::time::Instant::now();
    let run = edit(
        lab,
        runs.path(),
        &[
            "--set",
            "ttl=25",
            "--pg",
            "work_mem=8MB",
            "--pg",
            "max_connections=60",
            "--yes",
        ],
    )
    .run()
    .success();
    eprintln!("edit-config in {:?}", started.elapsed());
    let stderr = run.stderr();
    assert!(stderr.contains("picked-up done in"), "{stderr}");
    assert!(
        stderr.contains("restart pending for max_connections (50 -> 60)"),
        "a parameter only a restart applies is named: {stderr}"
    );
    let now = config(lab);
    assert_eq!(now["ttl"], 25);
    assert_eq!(now["postgresql"]["parameters"]["work_mem"], "8MB");
    assert_eq!(now["loop_wait"], 2, "the rest kept");
    let status = lab.status_json();
    assert!(
        status["members"]
            .as_array()
            .unwrap()
            .iter()
            .all(|member| member["pending_restart"] == true),
        "{status}"
    );

    edit(lab, runs.path(), &PUT_BACK)
        .args(["--yes"])
        .run()
        .success();
    let back = config(lab);
    assert_eq!(back["ttl"], 20);
    assert!(back["postgresql"]["parameters"].get("work_mem").is_none());
    crate::harness::wait_until(
        std::time::Duration::from_secs(30),
        "the pending restart clears once max_connections is back",
        || {
            lab.status_json()["members"]
                .as_array()
                .unwrap()
                .iter()
                .all(|member| member["pending_restart"] != true)
        },
    );
}

/// The operator reads the prompt; meanwhile someone changes the configuration (here through
/// Patroni's API, as another tool would): the compare-and-set finds the key moved on and
/// nothing is written.
#[test]
fn a_change_made_meanwhile_aborts_the_write() {
    let guard = Lab::shared().exclusive();
    let lab = guard.lab;
    let runs = scratch();
    let _put_back = PutBack(lab);
    let mut session =
        crate::runbooks::at_a_terminal(lab, runs.path(), &["edit-config", "--set", "ttl=25"]);
    session
        .exp_string("to the dynamic configuration of demo?")
        .unwrap();
    let (target, client) = lab.client();
    block_on(client.patch_config(
        &target.members[0].api_url,
        &serde_json::json!({"maximum_lag_on_failover": 2_097_152}),
    ))
    .unwrap();
    session.send("y").unwrap();
    session.flush().unwrap();
    let said = session
        .exp_eof()
        .unwrap_or_else(|error| format!("no end: {error}"));
    assert!(
        said.contains("changed since it was read") && said.contains("nothing was written"),
        "{said}"
    );
    let now = config(lab);
    assert_eq!(now["ttl"], 20, "not written");
    assert_eq!(
        now["maximum_lag_on_failover"], 2_097_152,
        "the other change kept"
    );
}
