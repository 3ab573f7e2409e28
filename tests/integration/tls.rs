//! A lab whose REST API requires TLS client certificates (Patroni `verify_client: required`):
//! pgha talks to it with the lab CA and its client certificate, and refuses clearly otherwise.

use std::fmt::Write as _;
use std::time::Duration;

use crate::harness::{Lab, Pgha, entry, scratch, wait_until, write};

/// Writes an inventory for the TLS lab with these `tls:` settings (paths relative to the lab).
fn inventory_with_tls(
    lab: &Lab,
    dir: &std::path::Path,
    settings: &[(&str, &str)],
) -> std::path::PathBuf {
    let mut tls = String::from("      tls:\n");
    for (key, value) in settings {
        let value = if value.starts_with("tls/") {
            format!("{}/{value}", lab.dir.display())
        } else {
            (*value).to_string()
        };
        let _ = writeln!(tls, "        {key}: {value}");
    }
    write(dir, "pgha.yml", &inventory(lab, &tls))
}

fn inventory(lab: &Lab, tls: &str) -> String {
    let rest = format!(
        "      username: patroni\n      password_file: {}/secrets/rest-password\n{tls}",
        lab.dir.display()
    );
    lab.inventory_yaml("secure", &rest, &["node1"])
        .replace("http://", "https://")
}

#[test]
fn mutual_tls_works_with_the_ca_and_a_client_certificate() {
    let guard = Lab::tls().read();
    let document = guard.lab.status_json();
    let member = &document["members"][0];
    assert_eq!(member["api_url"], "https://127.0.0.51:8008");
    assert_eq!(member["api"], "ok");
    assert_eq!(member["role"], "leader");
}

#[test]
fn an_untrusted_server_certificate_is_one_clear_line() {
    let guard = Lab::tls().read();
    let dir = scratch();
    // No ca_file: the system's trust store does not know the lab CA.
    let path = inventory_with_tls(
        guard.lab,
        dir.path(),
        &[("cert_file", "tls/pgha.crt"), ("key_file", "tls/pgha.key")],
    );
    let run = Pgha::new()
        .args(["status", "-c"])
        .arg_path(&path)
        .run()
        .expect_code(2);
    let line = run.one_error_line();
    assert!(
        line.starts_with("error: https://127.0.0.51:8008/patroni: TLS handshake failed:"),
        "{line}"
    );
    assert!(
        line.contains("UnknownIssuer") || line.contains("unknown issuer"),
        "{line}"
    );
}

#[test]
fn a_missing_client_certificate_is_refused_by_the_server() {
    let guard = Lab::tls().read();
    let dir = scratch();
    let path = inventory_with_tls(guard.lab, dir.path(), &[("ca_file", "tls/ca.crt")]);
    let run = Pgha::new().args(["status", "-c"]).arg_path(&path).run();
    assert_ne!(run.code(), 0);
    let line = run.one_error_line();
    assert!(line.contains("https://127.0.0.51:8008"), "{line}");
}

#[test]
fn verification_can_only_be_disabled_explicitly() {
    let guard = Lab::tls().read();
    let dir = scratch();
    let path = inventory_with_tls(
        guard.lab,
        dir.path(),
        &[
            ("verify", "false"),
            ("cert_file", "tls/pgha.crt"),
            ("key_file", "tls/pgha.key"),
        ],
    );
    Pgha::new()
        .args(["status", "-c"])
        .arg_path(&path)
        .run()
        .success();
}

/// The spare member: configured by `lab up`, not started; started, it joins like a new replica
/// in a scale-up (basebackup from the leader) and streams.
#[test]
fn a_spare_member_joins_when_started_and_leaves_when_stopped() {
    let guard = Lab::tls().exclusive();
    let lab = guard.lab;
    assert!(
        lab.member_config("node2").is_file(),
        "the spare is configured"
    );
    let spare = |document: &serde_json::Value| entry(document, "components", "node2");
    let document = lab.lab_status_json();
    assert_eq!(spare(&document)["spare"], true);
    Pgha::new()
        .args(["lab", "member", "start", "node2"])
        .lab(lab)
        .run()
        .success();
    wait_until(Duration::from_secs(90), "the spare streams", || {
        let document = Pgha::new()
            .args(["status", "-o", "json"])
            .lab(lab)
            .run()
            .json();
        document["members"].as_array().is_some_and(|members| {
            members
                .iter()
                .any(|member| member["name"] == "node2" && member["state"] == "streaming")
        })
    });
    let document = lab.status_json();
    assert_eq!(
        document["warnings"],
        serde_json::json!([]),
        "a joined spare is a member like any other"
    );
    Pgha::new()
        .args(["lab", "member", "stop", "node2"])
        .lab(lab)
        .run()
        .success();
    let document = lab.lab_status_json();
    assert_eq!(spare(&document)["running"], false);
}
