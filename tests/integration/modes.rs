//! The three ways of naming a cluster, each against the real lab: an inventory file, Patroni's
//! own configuration file, and one member's REST URL.

use crate::harness::{Lab, Pgha, scratch, write};

fn members_of(document: &serde_json::Value) -> Vec<String> {
    let mut names: Vec<String> = document["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|member| member["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn an_inventory_file_with_a_password_from_the_environment() {
    let guard = Lab::shared().read();
    let dir = scratch();
    let inventory = write(
        dir.path(),
        "pgha.yml",
        &guard.lab.inventory_yaml(
            "staging",
            "      username: patroni\n      password_env: LAB_REST_PASSWORD\n",
            &["node1", "node2", "node3"],
        ),
    );
    let document = Pgha::new()
        .args(["-c"])
        .arg_path(&inventory)
        .args([
            "--env",
            "staging",
            "--cluster",
            "demo",
            "status",
            "-o",
            "json",
        ])
        .env("LAB_REST_PASSWORD", guard.lab.rest_password())
        .run()
        .success()
        .json();
    assert_eq!(document["environment"], "staging");
    assert_eq!(document["cluster"], "demo");
    assert_eq!(members_of(&document), ["node1", "node2", "node3"]);
}

#[test]
fn an_inventory_in_the_working_directory_is_found() {
    let guard = Lab::shared().read();
    let dir = scratch();
    std::fs::copy(guard.lab.inventory(), dir.path().join("pgha.yml")).unwrap();
    // Its password_file is relative to the inventory: link the lab's secrets beside it.
    std::os::unix::fs::symlink(guard.lab.dir.join("secrets"), dir.path().join("secrets")).unwrap();
    let document = Pgha::new()
        .current_dir(dir.path())
        .env("PGHA_LAB_DIR", "/nonexistent")
        .args(["status", "-o", "json"])
        .run()
        .success()
        .json();
    assert_eq!(members_of(&document), ["node1", "node2", "node3"]);
}

#[test]
fn patroni_config_mode_reads_a_members_own_file() {
    let guard = Lab::shared().read();
    let config = guard.lab.member_config("node2");
    let document = Pgha::new()
        .arg_flag_path("--patroni-config", &config)
        .args(["status", "-o", "json"])
        .run()
        .success()
        .json();
    assert_eq!(document["scope"], "demo");
    assert_eq!(members_of(&document), ["node1", "node2", "node3"]);
    // Credentials come from the file's restapi.authentication: the probe accepted them.
}

#[test]
fn api_mode_discovers_every_member_from_one() {
    let guard = Lab::shared().read();
    let document = Pgha::new()
        .args(["--api", &guard.lab.api_url("node3"), "status", "-o", "json"])
        .run()
        .success()
        .json();
    assert_eq!(document["scope"], "demo");
    assert_eq!(members_of(&document), ["node1", "node2", "node3"]);
    assert!(
        document["members"]
            .as_array()
            .unwrap()
            .iter()
            .all(|member| member["api"] == "ok")
    );
}

#[test]
fn api_mode_with_credentials_from_patronis_variables() {
    let guard = Lab::shared().read();
    Pgha::new()
        .args(["--api", &guard.lab.api_url("node1"), "status"])
        .env("PATRONI_RESTAPI_USERNAME", "patroni")
        .env("PATRONI_RESTAPI_PASSWORD", guard.lab.rest_password())
        .run()
        .success();
    let run = Pgha::new()
        .args(["--api", &guard.lab.api_url("node1"), "status"])
        .env("PATRONI_RESTAPI_USERNAME", "patroni")
        .env("PATRONI_RESTAPI_PASSWORD", "wrong")
        .run()
        .expect_code(2);
    assert!(
        run.one_error_line()
            .contains("credentials rejected (HTTP 401")
    );
}
