//! Remote execution against the lab's real sshd (port 2222 on every member's address): values
//! with spaces, quotes, `;`, `$()` and newlines arrive inert; a changed host key is refused; a
//! connection dropped mid-command is reported as an unknown outcome, never as success.

use std::time::Duration;

use pgha::remote::{HostCommand, Remote, RemoteError, Ssh};

use crate::harness::{Lab, block_on, scratch};

fn ssh(lab: &Lab) -> Ssh {
    let (target, _) = lab.client();
    Ssh::new(target.ssh.clone(), Duration::from_secs(5)).unwrap()
}

#[test]
fn hostile_values_arrive_inert_over_ssh() {
    let guard = Lab::shared().read();
    let ssh = ssh(guard.lab);
    let host = guard.lab.first_address;
    let marker = scratch();
    let pwned = marker.path().join("pwned");
    let hostile = [
        "a b".to_string(),
        "it's".to_string(),
        "semi;colon".to_string(),
        format!("$(touch {})", pwned.display()),
        format!("`touch {}`", pwned.display()),
        "line\nbreak".to_string(),
        "$HOME *".to_string(),
    ];
    block_on(async {
        for value in &hostile {
            let command = HostCommand::new("printf").arg("%s").arg(value.clone());
            let output = ssh
                .run(host, &command, Duration::from_secs(10))
                .await
                .unwrap();
            assert!(output.success(), "{output:?}");
            assert_eq!(&output.stdout, value);
        }
    });
    assert!(!pwned.exists(), "a value was executed");
}

#[test]
fn one_connection_serves_a_run() {
    let guard = Lab::shared().read();
    let ssh = ssh(guard.lab);
    let host = guard.lab.first_address;
    let other = guard
        .lab
        .api_url("node2")
        .replace("http://", "")
        .replace(":8008", "");
    block_on(async {
        for _ in 0..3 {
            let output = ssh
                .run(host, &HostCommand::new("true"), Duration::from_secs(10))
                .await
                .unwrap();
            assert!(output.success());
        }
        assert_eq!(
            ssh.open_connections().await,
            1,
            "three commands, one connection"
        );
        ssh.run(&other, &HostCommand::new("true"), Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(ssh.open_connections().await, 2, "one connection per host");
    });
}

#[test]
fn a_changed_host_key_is_refused() {
    let guard = Lab::shared().read();
    let (target, _) = guard.lab.client();
    let mut settings = target.ssh.clone().unwrap();
    let dir = scratch();
    // known_hosts claims another key for the member's address.
    let other = dir.path().join("other");
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .status()
        .unwrap();
    assert!(status.success());
    let public = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    let key = public
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    let known_hosts = dir.path().join("known_hosts");
    std::fs::write(
        &known_hosts,
        format!("[{}]:2222 {key}\n", guard.lab.first_address),
    )
    .unwrap();
    settings.known_hosts = Some(known_hosts);
    let ssh = Ssh::new(Some(settings), Duration::from_secs(5)).unwrap();
    let error = block_on(ssh.run(
        guard.lab.first_address,
        &HostCommand::new("true"),
        Duration::from_secs(10),
    ))
    .unwrap_err();
    assert!(matches!(error, RemoteError::HostKey { .. }), "{error:?}");
    assert!(
        error
            .to_string()
            .contains("host key does not match known_hosts: refusing to connect")
    );
}

#[test]
fn an_unknown_host_key_is_refused_too() {
    let guard = Lab::shared().read();
    let (target, _) = guard.lab.client();
    let mut settings = target.ssh.clone().unwrap();
    let dir = scratch();
    let empty = dir.path().join("known_hosts");
    std::fs::write(&empty, "").unwrap();
    settings.known_hosts = Some(empty);
    let ssh = Ssh::new(Some(settings), Duration::from_secs(5)).unwrap();
    let error = block_on(ssh.run(
        guard.lab.first_address,
        &HostCommand::new("true"),
        Duration::from_secs(10),
    ))
    .unwrap_err();
    assert!(
        matches!(error, RemoteError::HostKey { .. }),
        "never accepted silently: {error:?}"
    );
}

#[test]
fn a_connection_dropped_mid_command_is_an_unknown_outcome() {
    let guard = Lab::shared().read();
    let ssh = ssh(guard.lab);
    // The command kills the sshd process serving its own session.
    let command = HostCommand::new("sh")
        .arg("-c")
        .arg("sleep 0.2; kill -9 $PPID; sleep 5");
    let error =
        block_on(ssh.run(guard.lab.first_address, &command, Duration::from_secs(10))).unwrap_err();
    assert!(error.outcome_unknown(), "{error:?}");
    assert!(
        error.to_string().contains("its outcome is unknown"),
        "{error}"
    );
}

#[test]
fn an_unreachable_host_is_a_connect_error_naming_it() {
    let guard = Lab::shared().read();
    let ssh = ssh(guard.lab);
    let error = block_on(ssh.run(
        "127.0.0.99",
        &HostCommand::new("true"),
        Duration::from_secs(10),
    ))
    .unwrap_err();
    assert!(
        matches!(&error, RemoteError::Connect { host, .. } if host == "127.0.0.99"),
        "{error:?}"
    );
}
