//! Status of a cluster that is not healthy: paused, a member's Patroni killed, a switchover
//! scheduled. Each test holds the lab exclusively and the guard restores it.

use std::time::Duration;

use pgha::patroni::SwitchoverRequest;

use crate::harness::{Lab, Pgha, block_on, wait_until};

fn status_json(lab: &Lab) -> serde_json::Value {
    Pgha::new()
        .args(["status", "-o", "json"])
        .lab(lab)
        .run()
        .success()
        .json()
}

fn member<'a>(document: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    document["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|member| member["name"] == name)
        .unwrap()
}

#[test]
fn a_paused_cluster_says_maintenance_mode() {
    let guard = Lab::shared().exclusive();
    guard.lab.set_paused(true);
    assert_eq!(status_json(guard.lab)["paused"], true);
    let table = Pgha::new()
        .args(["status"])
        .lab(guard.lab)
        .run()
        .success()
        .stdout();
    assert!(table.contains("\n Maintenance mode: on\n"), "{table}");
    guard.lab.set_paused(false);
    assert_eq!(status_json(guard.lab)["paused"], false);
}

#[test]
fn a_killed_patroni_shows_unreachable_then_leaves_the_cluster() {
    let guard = Lab::shared().exclusive();
    let victim = guard.lab.replica();
    Pgha::new()
        .args(["lab", "member", "kill", &victim])
        .lab(guard.lab)
        .run()
        .success();

    // At once: the API is gone but the DCS still holds the member's key (ttl 20 s).
    let run = Pgha::new()
        .args(["status", "-o", "json"])
        .lab(guard.lab)
        .run()
        .success();
    assert!(
        run.elapsed < Duration::from_secs(3),
        "an unreachable member must not stall status"
    );
    let document = run.json();
    let entry = member(&document, &victim);
    assert_eq!(entry["api"], "unreachable");
    assert!(
        entry["api_error"]
            .as_str()
            .unwrap()
            .contains("Connection refused")
    );
    assert_eq!(entry["in_dcs"], true);
    assert_eq!(entry["state"], "streaming", "the DCS's last word");
    let warning = &document["warnings"][0];
    assert_eq!(warning["code"], "member_unreachable");
    assert_eq!(warning["member"], victim.as_str());
    let table = Pgha::new()
        .args(["status"])
        .lab(guard.lab)
        .run()
        .success()
        .stdout();
    assert!(table.contains("unreachable (DCS: streaming)"), "{table}");
    assert!(
        table.contains(&format!(" ! {victim}: REST API failed")),
        "{table}"
    );

    // After the member key expires: not in the cluster any more.
    wait_until(
        Duration::from_secs(45),
        "the killed member's key expires",
        || member(&status_json(guard.lab), &victim)["in_dcs"] == false,
    );
    let document = status_json(guard.lab);
    assert!(member(&document, &victim)["state"].is_null());
    assert_eq!(document["warnings"][0]["code"], "not_in_cluster");
    let table = Pgha::new()
        .args(["status"])
        .lab(guard.lab)
        .run()
        .success()
        .stdout();
    let row = table
        .lines()
        .find(|line| line.starts_with(&format!("| {victim} ")))
        .unwrap();
    assert!(row.contains("| -       | unreachable"), "{row}");
}

#[test]
fn a_scheduled_switchover_is_shown_under_the_table() {
    let guard = Lab::shared().exclusive();
    let (target, client) = guard.lab.client();
    let leader = guard.lab.leader();
    let candidate = guard.lab.replica();
    let at = jiff::Timestamp::now() + jiff::SignedDuration::from_mins(30);
    let request = SwitchoverRequest {
        leader: leader.clone(),
        candidate: Some(candidate.clone()),
        scheduled_at: Some(at.strftime("%Y-%m-%dT%H:%M:%S+00:00").to_string()),
    };
    let answer = block_on(client.switchover(&target.members[0].api_url, &request)).unwrap();
    assert_eq!(answer.status, 202, "{answer:?}");
    wait_until(Duration::from_secs(10), "the schedule is visible", || {
        !status_json(guard.lab)["scheduled_switchover"].is_null()
    });
    let document = status_json(guard.lab);
    assert_eq!(document["scheduled_switchover"]["from"], leader.as_str());
    assert_eq!(document["scheduled_switchover"]["to"], candidate.as_str());
    let table = Pgha::new()
        .args(["status"])
        .lab(guard.lab)
        .run()
        .success()
        .stdout();
    assert!(table.contains(" Switchover scheduled at: "), "{table}");
    let answer = block_on(client.cancel_switchover(&target.members[0].api_url)).unwrap();
    assert!(answer.is_success(), "{answer:?}");
}
