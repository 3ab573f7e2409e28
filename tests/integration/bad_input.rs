//! Bad input: every case ends with one clear line on stderr naming the file, field or host,
//! a non-zero documented exit code (2 bad input, 3 unreachable), and nothing on stdout.

use crate::harness::{Lab, Pgha, scratch, write};

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
