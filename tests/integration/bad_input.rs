//! Bad input: every case ends with one clear line on stderr naming the file, field or host,
//! a non-zero documented exit code (2 bad input, 3 unreachable), and nothing on stdout.

use crate::harness::{Lab, Pgha, fingerprint, scratch, write};

const BAD_INPUT: i32 = 2;
const UNREACHABLE: i32 = 3;

fn inventory_for(lab: &Lab, rest: &str) -> String {
    lab.inventory_yaml("lab2", rest, &["node1", "node2", "node3"])
}

fn status_with(inventory: &std::path::Path) -> crate::harness::Run {
    Pgha::new().args(["status", "-c"]).arg_path(inventory).run()
}

#[test]
fn malformed_yaml_names_file_line_and_column() {
    let dir = scratch();
    let path = write(
        dir.path(),
        "pgha.yml",
        "environments:\n  lab:\n    clusters: {demo: [\n",
    );
    let run = status_with(&path).expect_code(BAD_INPUT);
    let line = run.one_error_line();
    assert!(
        line.starts_with(&format!("error: {}:", path.display())),
        "{line}"
    );
    let location: Vec<&str> = line
        .trim_start_matches("error: ")
        .split(':')
        .skip(1)
        .take(2)
        .collect();
    assert!(
        location.iter().all(|part| part.parse::<u32>().is_ok()),
        "line and column in {line}"
    );
    assert!(run.stdout().is_empty());
}

#[test]
fn an_unknown_key_is_named_with_its_location() {
    let guard = Lab::shared().read();
    let dir = scratch();
    let text = inventory_for(
        guard.lab,
        "      username: patroni\n      password_file: pw\n",
    )
    .replace("        members:", "        memebers:");
    let path = write(dir.path(), "pgha.yml", &text);
    let run = status_with(&path).expect_code(BAD_INPUT);
    assert_eq!(
        run.one_error_line(),
        format!(
            "error: {}:8:9: unknown field `memebers`, expected one of scope, standby, follows, members, rest, dcs, ssh, postgres, service, backup, data_dir, patroni_config, log_file",
            path.display()
        )
    );
}

#[test]
fn an_unknown_cluster_lists_the_known_ones() {
    let guard = Lab::shared().read();
    let run = Pgha::new()
        .args(["--env", "lab", "--cluster", "main-db", "status"])
        .lab(guard.lab)
        .run()
        .expect_code(BAD_INPUT);
    assert_eq!(
        run.one_error_line(),
        format!(
            "error: {}: environment \"lab\" has no cluster \"main-db\" (known: demo)",
            guard.lab.inventory().display()
        )
    );
}

#[test]
fn an_unknown_environment_lists_the_known_ones() {
    let guard = Lab::shared().read();
    let run = Pgha::new()
        .args(["-c"])
        .arg_path(&guard.lab.inventory())
        .args(["--env", "production", "status"])
        .run()
        .expect_code(BAD_INPUT);
    assert!(
        run.one_error_line()
            .ends_with("no environment \"production\" (known: lab)")
    );
}

#[test]
fn a_wrong_password_is_refused_naming_the_host() {
    let guard = Lab::shared().read();
    let dir = scratch();
    write(dir.path(), "pw", "not-the-password\n");
    let path = write(
        dir.path(),
        "pgha.yml",
        &inventory_for(
            guard.lab,
            "      username: patroni\n      password_file: pw\n",
        ),
    );
    let run = status_with(&path).expect_code(BAD_INPUT);
    let line = run.one_error_line();
    assert!(line.starts_with("error: http://127.0.0.4"), "{line}");
    assert!(
        line.contains("credentials rejected (HTTP 401 \"not authenticated\")"),
        "{line}"
    );
    assert!(!line.contains("not-the-password"));
    assert!(
        run.stdout().is_empty(),
        "no table when the credentials are wrong"
    );
}

#[test]
fn an_unreachable_api_in_api_mode_names_the_url() {
    let run = Pgha::new()
        .args([
            "--api",
            "http://127.0.0.99:8008",
            "--connect-timeout",
            "1s",
            "status",
        ])
        .run()
        .expect_code(UNREACHABLE);
    assert_eq!(
        run.one_error_line(),
        "error: cannot discover the cluster's members: http://127.0.0.99:8008/cluster: cannot connect: Connection refused (os error 111)"
    );
}

#[test]
fn a_cluster_nobody_answers_for_names_every_member() {
    let dir = scratch();
    let path = write(
        dir.path(),
        "pgha.yml",
        "environments:\n  gone:\n    clusters:\n      demo:\n        members:\n          - {name: a, host: 127.0.0.97}\n          - {name: b, host: 127.0.0.98}\n",
    );
    let run = status_with(&path).expect_code(UNREACHABLE);
    let line = run.one_error_line();
    assert!(line.starts_with("error: no member of cluster demo answered: http://127.0.0.97:8008/patroni: cannot connect"), "{line}");
    assert!(line.contains("http://127.0.0.98:8008/patroni"), "{line}");
}

#[test]
fn a_missing_inventory_says_where_it_looked() {
    let run = Pgha::new()
        .env("PGHA_LAB_DIR", "/nonexistent/lab")
        .args(["status"])
        .run()
        .expect_code(BAD_INPUT);
    let line = run.one_error_line();
    assert!(
        line.starts_with("error: no inventory found (looked for pgha.yml"),
        "{line}"
    );
    assert!(line.contains("/nonexistent/lab/pgha.yml"), "{line}");
}

#[test]
fn hostile_names_on_the_command_line_are_refused() {
    for name in ["node1; rm -rf /", "$(reboot)", "-rf", "a b"] {
        let run = Pgha::new()
            .arg_flag_value("--cluster", name)
            .args(["status"])
            .run()
            .expect_code(BAD_INPUT);
        assert!(
            run.stderr().contains("is not a valid name"),
            "{name}: {}",
            run.stderr()
        );
    }
    let run = Pgha::new()
        .args(["lab", "member", "kill", "node1;id"])
        .run()
        .expect_code(BAD_INPUT);
    assert!(run.stderr().contains("is not a valid name"));
}

#[test]
fn an_api_flag_that_is_not_a_url_is_refused() {
    let run = Pgha::new()
        .args(["--api", "127.0.0.11:8008", "status"])
        .run()
        .expect_code(BAD_INPUT);
    assert!(
        run.stderr()
            .contains("--api: \"127.0.0.11:8008\" is not an http:// or https:// URL"),
        "{}",
        run.stderr()
    );
}

/// Needs no lab: the flag is refused before anything is asked.
#[test]
fn credentials_in_the_api_url_are_refused_without_showing_them() {
    let run = Pgha::new()
        .args(["--api", "http://u:secret@127.0.0.1:8008", "status"])
        .run()
        .expect_code(BAD_INPUT);
    let line = run.one_error_line();
    assert!(
        line.starts_with("error: --api: \"http://***@127.0.0.1:8008\": no credentials in URLs"),
        "{line}"
    );
    assert!(!run.stderr().contains("secret"), "{}", run.stderr());
    assert!(run.stdout().is_empty());
}

#[test]
fn an_unknown_lab_member_lists_the_members() {
    let guard = Lab::shared().read();
    let run = Pgha::new()
        .args(["lab", "member", "stop", "node9"])
        .lab(guard.lab)
        .run()
        .expect_code(BAD_INPUT);
    assert_eq!(
        run.one_error_line(),
        "error: the lab has no member \"node9\" (members: node1, node2, node3)"
    );
}

/// One bad input: the lab's inventory with `edit` applied (every occurrence when `all`), the
/// arguments (`LEADER` and `REPLICA` stand for the lab's), the environment, the exit code and
/// what the one `error:` line must say.
struct Case {
    name: &'static str,
    edit: Option<(&'static str, &'static str, bool)>,
    args: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
    code: i32,
    says: &'static str,
}

const REFUSED: i32 = 4;

#[rustfmt::skip]
const CORPUS: &[Case] = &[
    Case { name: "malformed YAML", edit: Some(("    clusters:\n", "    clusters: {[\n", false)), args: &["status"], env: &[], code: BAD_INPUT, says: "pgha-corpus.yml:" },
    Case { name: "an unknown key", edit: Some(("        scope: demo\n", "        scope: demo\n        scopes: demo\n", false)), args: &["status"], env: &[], code: BAD_INPUT, says: "unknown field `scopes`" },
    Case { name: "a duplicate key", edit: Some(("        scope: demo\n", "        scope: demo\n        scope: demo\n", false)), args: &["status"], env: &[], code: BAD_INPUT, says: "duplicate key `scope`" },
    Case { name: "a wrong type", edit: Some(("      port: 2222\n", "      port: [2222]\n", false)), args: &["status"], env: &[], code: BAD_INPUT, says: "pgha-corpus.yml:26:" },
    Case { name: "a bad duration in the file", edit: Some(("    rest:\n", "    timeouts:\n      connect: 24 parsecs\n    rest:\n", false)), args: &["status"], env: &[], code: BAD_INPUT, says: "\"24 parsecs\" is not a duration" },
    Case { name: "an unknown environment", edit: None, args: &["--env", "nope", "status"], env: &[], code: BAD_INPUT, says: "no environment \"nope\"" },
    Case { name: "an unknown cluster", edit: None, args: &["--cluster", "nope", "status"], env: &[], code: BAD_INPUT, says: "has no cluster \"nope\"" },
    Case { name: "an unknown member", edit: None, args: &["reinit", "--member", "node9", "--dry-run"], env: &[], code: BAD_INPUT, says: "has no member \"node9\"" },
    Case { name: "a member name with shell syntax", edit: Some(("        - name: node3\n", "        - name: node3;reboot\n", false)), args: &["status"], env: &[], code: BAD_INPUT, says: "members[2].name: \"node3;reboot\" is not a valid name" },
    Case { name: "a host with an ssh option", edit: Some(("\n          data_dir:", " -oProxyCommand=x\n          data_dir:", false)), args: &["status"], env: &[], code: BAD_INPUT, says: "members[0].host" },
    Case { name: "a relative data directory", edit: Some(("          data_dir: /", "          data_dir: ../", false)), args: &["status"], env: &[], code: BAD_INPUT, says: "members[0].data_dir" },
    Case { name: "a log file with a .. component", edit: Some(("          log_file: /", "          log_file: /../", false)), args: &["status"], env: &[], code: BAD_INPUT, says: "members[0].log_file" },
    Case { name: "credentials in the Alertmanager URL", edit: Some(("      url: http://", "      url: http://u:secretpw@", false)), args: &["status"], env: &[], code: BAD_INPUT, says: "alertmanager.url" },
    Case { name: "credentials in --api", edit: None, args: &["--api", "http://u:secretpw@127.0.0.1:8008", "status"], env: &[], code: BAD_INPUT, says: "--api" },
    Case { name: "every member and the DCS unreachable", edit: Some(("127.0.0.4", "127.0.0.25", true)), args: &["status"], env: &[], code: UNREACHABLE, says: "no member of cluster demo answered" },
    Case { name: "a wrong REST password", edit: Some(("      password_file: secrets/rest-password\n", "      password_env: PGHA_CORPUS_PASSWORD\n", false)), args: &["status"], env: &[("PGHA_CORPUS_PASSWORD", "not-the-password")], code: BAD_INPUT, says: "error: http://127.0.0.4" },
    Case { name: "an unset password variable", edit: Some(("      password_file: secrets/rest-password\n", "      password_env: PGHA_CORPUS_UNSET\n", false)), args: &["status"], env: &[], code: BAD_INPUT, says: "PGHA_CORPUS_UNSET is not set" },
    Case { name: "a missing password file", edit: Some(("      password_file: secrets/rest-password\n", "      password_file: secrets/nope\n", false)), args: &["status"], env: &[], code: BAD_INPUT, says: "password_file: cannot read" },
    Case { name: "HTTPS against a plain HTTP API", edit: Some(("    rest:\n", "    rest:\n      scheme: https\n", false)), args: &["status"], env: &[], code: BAD_INPUT, says: "TLS handshake failed" },
    Case { name: "a missing CA bundle", edit: Some(("    rest:\n", "    rest:\n      scheme: https\n      tls:\n        ca_file: /nonexistent/ca.pem\n", false)), args: &["status"], env: &[], code: BAD_INPUT, says: "/nonexistent/ca.pem: cannot read CA bundle" },
    Case { name: "a missing client certificate", edit: Some(("    rest:\n", "    rest:\n      scheme: https\n      tls:\n        cert_file: /nonexistent/c.pem\n        key_file: /nonexistent/k.pem\n", false)), args: &["status"], env: &[], code: BAD_INPUT, says: "/nonexistent/c.pem: cannot read client certificate" },
    Case { name: "a bad duration flag", edit: None, args: &["reinit", "--member", "REPLICA", "--timeout", "5 parsecs", "--dry-run"], env: &[], code: BAD_INPUT, says: "'--timeout <DURATION>'" },
    Case { name: "a huge duration flag", edit: None, args: &["reinit", "--member", "REPLICA", "--timeout", "99999999999h", "--dry-run"], env: &[], code: BAD_INPUT, says: "'--timeout <DURATION>'" },
    Case { name: "a bad byte count", edit: None, args: &["reinit", "--member", "REPLICA", "--max-lag", "lots", "--dry-run"], env: &[], code: BAD_INPUT, says: "'--max-lag" },
    Case { name: "an unknown output format", edit: None, args: &["status", "-o", "xml"], env: &[], code: BAD_INPUT, says: "'xml'" },
    Case { name: "an unknown DCS kind", edit: Some(("      kind: etcd\n", "      kind: zookeeper\n", false)), args: &["status"], env: &[], code: BAD_INPUT, says: "unknown variant `zookeeper`" },
    Case { name: "no DCS endpoint", edit: Some(("      hosts:\n      - ", "      hosts: []\n      #", false)), args: &["status"], env: &[], code: BAD_INPUT, says: "dcs.hosts" },
    Case { name: "an unknown backup tool", edit: Some(("    clusters:\n", "    backup:\n      tool: barman\n      max_age: 1h\n    clusters:\n", false)), args: &["status"], env: &[], code: BAD_INPUT, says: "unknown variant `barman`" },
    Case { name: "an unknown default cluster", edit: Some(("    clusters:\n", "    default_cluster: dmeo\n    clusters:\n", false)), args: &["status"], env: &[], code: BAD_INPUT, says: "default_cluster: \"dmeo\" is not one of its clusters" },
    Case { name: "follows: on a primary cluster", edit: Some(("        scope: demo\n", "        scope: demo\n        follows: demo\n", false)), args: &["status"], env: &[], code: BAD_INPUT, says: "follows: only a standby cluster" },
    Case { name: "an unknown service control", edit: Some(("      kind: lab\n", "      kind: puppet\n", false)), args: &["status"], env: &[], code: BAD_INPUT, says: "unknown variant `puppet`" },
    Case { name: "a member name with shell syntax on the command line", edit: None, args: &["reinit", "--member", "node3;reboot", "--dry-run"], env: &[], code: BAD_INPUT, says: "node3;reboot" },
    Case { name: "no terminal and no --yes", edit: None, args: &["pause"], env: &[], code: BAD_INPUT, says: "no terminal to ask for confirmation" },
    Case { name: "a wrong name for a destructive gate", edit: None, args: &["reinit", "--member", "REPLICA", "--yes", "--confirm", "LEADER"], env: &[], code: BAD_INPUT, says: "does not match what the destructive steps ask for" },
    Case { name: "a release flag for a stop", edit: None, args: &["lab", "member", "stop", "node1", "--patroni-version", "4.1.5"], env: &[], code: BAD_INPUT, says: "--patroni-version only goes with `member start`" },
    Case { name: "a kill flag for a start", edit: None, args: &["lab", "member", "start", "node1", "--postgres"], env: &[], code: BAD_INPUT, says: "--postgres and --host only go with `member kill`" },
    Case { name: "an unknown run", edit: None, args: &["resume", "no-such-run", "--yes"], env: &[], code: BAD_INPUT, says: "no run \"no-such-run\"" },
    Case { name: "a run id with a path in it", edit: None, args: &["resume", "../../etc/passwd", "--yes"], env: &[], code: BAD_INPUT, says: "../../etc/passwd" },
    Case { name: "an unknown command", edit: None, args: &["frobnicate"], env: &[], code: BAD_INPUT, says: "'frobnicate'" },
    Case { name: "status --all with --cluster", edit: None, args: &["--cluster", "demo", "status", "--all"], env: &[], code: BAD_INPUT, says: "--all shows every cluster" },
    Case { name: "failover to the leader", edit: None, args: &["failover", "--candidate", "LEADER", "--yes"], env: &[], code: REFUSED, says: "already holds the leader key" },
    Case { name: "an edit of a setting Patroni ignores", edit: None, args: &["edit-config", "--set", "tll=30", "--yes"], env: &[], code: BAD_INPUT, says: "`tll` is not a dynamic configuration setting" },
    Case { name: "an edit whose value is not YAML", edit: None, args: &["edit-config", "--set", "ttl=[", "--yes"], env: &[], code: BAD_INPUT, says: "\"ttl=[\": the value is not YAML" },
    Case { name: "an edit Patroni would adjust", edit: None, args: &["config", "edit", "--set", "retry_timeout=10", "--yes"], env: &[], code: BAD_INPUT, says: "is more than ttl (20)" },
    Case { name: "an edit from a file that is not there", edit: None, args: &["edit-config", "--apply", "/nonexistent/patch.yml", "--yes"], env: &[], code: BAD_INPUT, says: "/nonexistent/patch.yml: No such file" },
    Case { name: "a demotion with no source of WAL", edit: None, args: &["demote-cluster", "--yes", "--confirm", "demo"], env: &[], code: BAD_INPUT, says: "give --host (its primary) or --restore-command" },
    Case { name: "a promotion of a primary cluster", edit: None, args: &["promote-cluster", "--yes", "--confirm", "demo"], env: &[], code: REFUSED, says: "not as standby_leader: nothing to promote" },
    Case { name: "several clusters for a runbook", edit: None, args: &["--cluster", "demo", "--cluster", "demo", "reinit", "--member", "REPLICA", "--yes"], env: &[], code: BAD_INPUT, says: "only `pgha status`" },
    Case { name: "a flush with nothing scheduled", edit: None, args: &["flush", "switchover", "--yes"], env: &[], code: REFUSED, says: "nothing to flush" },
    Case { name: "geo-resetup of a primary cluster", edit: None, args: &["geo-resetup", "--yes", "--confirm", "demo"], env: &[], code: REFUSED, says: "not marked `standby: true`" },
    Case { name: "cluster-reinit without its flag", edit: None, args: &["cluster-reinit", "--yes", "--confirm", "demo"], env: &[], code: REFUSED, says: "pass --i-understand-data-loss" },
];

/// Every case of the corpus: its exit code, one `error:` line saying what is wrong, nothing on
/// stdout, no secret echoed — and nothing done to the lab (leader, timelines, postmasters).
#[test]
fn the_bad_input_corpus_is_refused_in_one_line_and_changes_nothing() {
    let guard = Lab::shared().read();
    let lab = guard.lab;
    assert!(CORPUS.len() >= 40, "{} cases", CORPUS.len());
    let before = fingerprint(lab);
    let (leader, replica) = (lab.leader(), lab.replica());
    let original = std::fs::read_to_string(lab.inventory()).unwrap();
    let inventory = lab.dir.join("pgha-corpus.yml");
    let runs = scratch();
    for case in CORPUS {
        let text = match case.edit {
            None => original.clone(),
            Some((from, to, all)) => {
                assert!(
                    original.contains(from),
                    "{}: {from:?} in the lab's inventory",
                    case.name
                );
                if all {
                    original.replace(from, to)
                } else {
                    original.replacen(from, to, 1)
                }
            }
        };
        std::fs::write(&inventory, text).unwrap();
        let args: Vec<String> = case
            .args
            .iter()
            .map(|arg| arg.replace("LEADER", &leader).replace("REPLICA", &replica))
            .collect();
        let mut command = Pgha::new()
            .arg_flag_path("--config", &inventory)
            .env("PGHA_RUNS_DIR", runs.path());
        if !args.iter().any(|arg| arg == "--env") {
            command = command.args(["--env", "lab"]);
        }
        for (name, value) in case.env {
            command = command.env(name, value);
        }
        let run = command.args(&args).run();
        let stderr = run.stderr();
        assert_eq!(run.code(), case.code, "{}: {stderr}", case.name);
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|line| line.starts_with("error:"))
            .collect();
        assert_eq!(errors.len(), 1, "{}: one error line: {stderr}", case.name);
        let says = case.says.replace("LEADER", &leader);
        assert!(
            errors[0].contains(&says),
            "{}: {says:?} in {:?}",
            case.name,
            errors[0]
        );
        assert!(run.stdout().is_empty(), "{}: {}", case.name, run.stdout());
        assert!(
            !stderr.contains("secretpw") && !stderr.contains("not-the-password"),
            "{}: {stderr}",
            case.name
        );
    }
    let _ = std::fs::remove_file(&inventory);
    assert_eq!(fingerprint(lab), before, "nothing was done");
}

/// A journal as `edit` leaves it: the run resumed from it must stop with one line, nothing done.
struct JournalCase {
    name: &'static str,
    edit: fn(&str) -> String,
    code: i32,
    says: &'static str,
}

/// The journal's lines, the first (the run's start) parsed.
fn with_start(journal: &str, change: impl FnOnce(&mut serde_json::Value)) -> String {
    let (start, rest) = journal.split_once('\n').unwrap();
    let mut start: serde_json::Value = serde_json::from_str(start).unwrap();
    change(&mut start);
    format!("{start}\n{rest}")
}

/// The plan edited and its hash made to match: a journal whose plan is whole, for another place.
fn replanned(start: &mut serde_json::Value, change: impl FnOnce(&mut pgha::plan::Plan)) {
    let mut plan: pgha::plan::Plan = serde_json::from_value(start["plan"].clone()).unwrap();
    change(&mut plan);
    start["plan_hash"] = plan.hash().into();
    start["plan"] = serde_json::to_value(&plan).unwrap();
}

#[rustfmt::skip]
const JOURNAL_CORPUS: &[JournalCase] = &[
    JournalCase { name: "a journal cut inside its first record", edit: |journal| journal[..120].to_string(), code: BAD_INPUT, says: "line 1: no plan recorded" },
    JournalCase { name: "a journal corrupted in the middle", edit: |journal| { let mut lines: Vec<&str> = journal.lines().collect(); lines[2] = "{\"at\": 12, garbage"; lines.join("\n") + "\n" }, code: BAD_INPUT, says: "line 3:" },
    JournalCase { name: "a journal whose plan was edited", edit: |journal| journal.replacen("\"title\":\"Reinitialize", "\"title\":\"Reinitialise", 1), code: BAD_INPUT, says: "the journal was edited" },
    JournalCase { name: "a journal from another pgha", edit: |journal| with_start(&journal.replacen("\"title\":\"Reinitialize", "\"title\":\"Reinitialise", 1), |start| start["pgha_version"] = "0.0.1".into()), code: BAD_INPUT, says: "written by pgha 0.0.1" },
    JournalCase { name: "a journal in a newer format", edit: |journal| with_start(journal, |start| start["journal_format"] = 99.into()), code: BAD_INPUT, says: "format 99" },
    JournalCase { name: "a journal from another cluster", edit: |journal| with_start(journal, |start| replanned(start, |plan| plan.cluster = "main-db".into())), code: BAD_INPUT, says: "has no cluster \"main-db\"" },
];

/// A run journalled for real (a reinit of the leader, refused by its pre-check: nothing done),
/// then each untrustworthy copy of its journal resumed; and the inventory changed under it.
#[test]
fn untrustworthy_journals_and_a_changed_inventory_are_refused_on_resume() {
    let guard = Lab::shared().read();
    let lab = guard.lab;
    let before = fingerprint(lab);
    let runs = scratch();
    let leader = lab.leader();
    let inventory = lab.dir.join("pgha-journals.yml");
    let original = std::fs::read_to_string(lab.inventory()).unwrap();
    std::fs::write(&inventory, &original).unwrap();
    let pgha = || {
        Pgha::new()
            .arg_flag_path("--config", &inventory)
            .args(["--env", "lab"])
            .env("PGHA_RUNS_DIR", runs.path())
    };
    let refused = pgha()
        .args(["reinit", "--member", &leader, "--yes", "--confirm", &leader])
        .run()
        .expect_code(REFUSED);
    let journal_path = refused
        .stderr()
        .lines()
        .find_map(|line| line.strip_prefix("pgha: journal ").map(str::to_string))
        .expect("the run names its journal");
    let journal = std::fs::read_to_string(&journal_path).unwrap();
    for (index, case) in JOURNAL_CORPUS.iter().enumerate() {
        let run_id = format!("corpus-{index}");
        write(
            runs.path(),
            &format!("{run_id}.jsonl"),
            &(case.edit)(&journal),
        );
        let run = pgha().args(["resume", &run_id, "--yes"]).run();
        assert_eq!(run.code(), case.code, "{}: {}", case.name, run.stderr());
        let line = run.one_error_line();
        assert!(
            line.contains(case.says),
            "{}: {:?} in {line:?}",
            case.name,
            case.says
        );
        assert!(run.stdout().is_empty(), "{}", case.name);
    }

    // The inventory changed (a member's data directory): refused by name, `--replan` plans
    // again from the inventory as it is (and its pre-check refuses the leader again).
    let run_id = std::path::Path::new(&journal_path)
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    std::fs::write(&inventory, original.replacen("/data\n", "/data-moved\n", 1)).unwrap();
    let changed = pgha()
        .args(["resume", &run_id, "--yes"])
        .run()
        .expect_code(REFUSED);
    assert!(
        changed.one_error_line().contains(&format!(
            "the inventory of demo changed since run {run_id} was planned"
        )),
        "{}",
        changed.stderr()
    );
    let replanned = pgha()
        .args(["resume", &run_id, "--replan", "--yes", "--confirm", &leader])
        .run()
        .expect_code(REFUSED);
    assert!(
        replanned.stderr().contains("a pre-check failed"),
        "{}",
        replanned.stderr()
    );
    // The new plan was made from the moved directory: putting the original back is a change.
    std::fs::write(&inventory, &original).unwrap();
    let back = pgha()
        .args(["resume", &run_id, "--yes"])
        .run()
        .expect_code(REFUSED);
    assert!(
        back.one_error_line().contains("changed since run"),
        "{}",
        back.stderr()
    );
    let _ = std::fs::remove_file(&inventory);
    assert_eq!(fingerprint(lab), before, "nothing was done");
}
