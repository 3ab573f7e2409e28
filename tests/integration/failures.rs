//! Status of a cluster that is not healthy: paused, a member's Patroni killed, a switchover
//! scheduled. Each test holds the lab exclusively and the guard restores it.

use std::time::Duration;

use pgha::patroni::SwitchoverRequest;

use crate::harness::{Lab, Pgha, block_on, entry, wait_until};

#[test]
fn a_paused_cluster_says_maintenance_mode() {
    let guard = Lab::shared().exclusive();
    guard.lab.set_paused(true);
    assert_eq!(guard.lab.status_json()["paused"], true);
    let table = guard.lab.status_table();
    assert!(table.contains("\n Maintenance mode: on\n"), "{table}");
    guard.lab.set_paused(false);
    assert_eq!(guard.lab.status_json()["paused"], false);
}

#[test]
fn a_killed_patroni_shows_unreachable_then_leaves_the_cluster() {
    let guard = Lab::shared().exclusive();
    let victim = guard.lab.replica();
    // The premise: a replica whose DCS key says it streams. Just after another test's lab
    // restore the REST API may already say `streaming` while the key, written once per HA loop,
    // still says `running`: ask the DCS's word, which the leader's `/cluster` repeats.
    let (_, client) = guard.lab.client();
    let leader_api = guard.lab.api_url(&guard.lab.leader());
    wait_until(
        Duration::from_secs(30),
        "the victim's key says streaming",
        || {
            block_on(client.cluster(&leader_api)).is_ok_and(|topology| {
                topology.members.iter().any(|member| {
                    member.name == victim && member.state == pgha::patroni::MemberState::Streaming
                })
            })
        },
    );
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
    let record = entry(&document, "members", &victim);
    assert_eq!(record["api"], "unreachable", "{document:#}");
    assert!(
        record["api_error"]
            .as_str()
            .unwrap()
            .contains("Connection refused")
    );
    assert_eq!(record["in_dcs"], true, "{document:#}");
    assert_eq!(
        record["state"], "streaming",
        "the DCS's last word: {document:#}"
    );
    let warning = &document["warnings"][0];
    assert_eq!(warning["code"], "member_unreachable", "{document:#}");
    assert_eq!(warning["member"], victim.as_str(), "{document:#}");
    let table = guard.lab.status_table();
    assert!(table.contains("unreachable (DCS: streaming)"), "{table}");
    assert!(
        table.contains(&format!(" ! warning: {victim}: REST API failed")),
        "{table}"
    );

    // After the member key expires: not in the cluster any more.
    wait_until(
        Duration::from_secs(45),
        "the killed member's key expires",
        || entry(&guard.lab.status_json(), "members", &victim)["in_dcs"] == false,
    );
    let document = guard.lab.status_json();
    assert!(entry(&document, "members", &victim)["state"].is_null());
    assert_eq!(document["warnings"][0]["code"], "not_in_cluster");
    let table = guard.lab.status_table();
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
        !guard.lab.status_json()["scheduled_switchover"].is_null()
    });
    let document = guard.lab.status_json();
    assert_eq!(document["scheduled_switchover"]["from"], leader.as_str());
    assert_eq!(document["scheduled_switchover"]["to"], candidate.as_str());
    let table = guard.lab.status_table();
    assert!(table.contains(" Switchover scheduled at: "), "{table}");
    let answer = block_on(client.cancel_switchover(&target.members[0].api_url)).unwrap();
    assert!(answer.is_success(), "{answer:?}");
}
