//! A lab whose REST API requires TLS client certificates (Patroni `verify_client: required`):
//! pgha talks to it with the lab CA and its client certificate, and refuses clearly otherwise.

use crate::harness::{Lab, Pgha, scratch, write};

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
    let document = Pgha::new()
        .args(["status", "-o", "json"])
        .lab(guard.lab)
        .run()
        .success()
        .json();
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
    let tls = format!(
        "      tls:\n        cert_file: {0}/tls/pgha.crt\n        key_file: {0}/tls/pgha.key\n",
        guard.lab.dir.display()
    );
    let path = write(dir.path(), "pgha.yml", &inventory(guard.lab, &tls));
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
    let tls = format!(
        "      tls:\n        ca_file: {}/tls/ca.crt\n",
        guard.lab.dir.display()
    );
    let path = write(dir.path(), "pgha.yml", &inventory(guard.lab, &tls));
    let run = Pgha::new().args(["status", "-c"]).arg_path(&path).run();
    assert_ne!(run.code(), 0);
    let line = run.one_error_line();
    assert!(line.contains("https://127.0.0.51:8008"), "{line}");
}

#[test]
fn verification_can_only_be_disabled_explicitly() {
    let guard = Lab::tls().read();
    let dir = scratch();
    let tls = format!(
        "      tls:\n        verify: false\n        cert_file: {0}/tls/pgha.crt\n        key_file: {0}/tls/pgha.key\n",
        guard.lab.dir.display()
    );
    let path = write(dir.path(), "pgha.yml", &inventory(guard.lab, &tls));
    Pgha::new()
        .args(["status", "-c"])
        .arg_path(&path)
        .run()
        .success();
}
