//! Terminal hygiene, without a lab: logs are coloured only on a terminal, never under
//! `NO_COLOR` nor on a dumb one.

use std::net::TcpListener;

use crate::harness::Pgha;

const UNREACHABLE: i32 = 3;

/// A loopback URL that refuses connections: pgha logs its attempt and fails at once.
fn refusing_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

#[test]
fn logs_on_a_pipe_are_not_coloured() {
    let run = Pgha::new()
        .args(["-vv", "--api", &refusing_url(), "status"])
        .run()
        .expect_code(UNREACHABLE);
    let stderr = run.stderr();
    assert!(stderr.contains("DEBUG"), "debug logs expected:\n{stderr}");
    assert!(!stderr.contains('\x1b'), "{stderr:?}");
}

/// `pgha -vv status` at an xterm (stdout and stderr both), against nobody, with `env` set;
/// all it printed.
fn logs_at_a_terminal(env: &[(&str, &str)]) -> String {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_pgha"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TERM", "xterm")
        .env("XDG_CONFIG_HOME", "/nonexistent-pgha-test-config")
        .envs(env.iter().copied())
        .args(["-vv", "--api", &refusing_url(), "status"]);
    let mut session = rexpect::session::spawn_command(command, Some(20_000)).unwrap();
    session.exp_eof().unwrap()
}

#[test]
fn logs_at_a_terminal_are_coloured_unless_no_color_or_dumb() {
    let coloured = logs_at_a_terminal(&[]);
    assert!(coloured.contains("\x1b["), "{coloured:?}");
    for env in [("NO_COLOR", "1"), ("TERM", "dumb")] {
        let plain = logs_at_a_terminal(&[env]);
        assert!(plain.contains("DEBUG"), "{env:?}: {plain:?}");
        assert!(!plain.contains('\x1b'), "{env:?}: {plain:?}");
    }
}
