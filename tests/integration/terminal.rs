//! Terminal hygiene, without a lab: logs are coloured only on a terminal, never under
//! `NO_COLOR` nor on a dumb one; what a hostile Patroni sends (member names, scope, tags,
//! history, an error body) reaches stdout and stderr without control characters. The Patroni
//! here is a fake on loopback that answers each path with a fixed document.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

use serde_json::{Value, json};

use crate::harness::Pgha;

const UNREACHABLE: i32 = 3;

/// A loopback URL that refuses connections: pgha logs its attempt and fails at once.
fn refusing_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

/// What a terminal would act on; newlines are the output's own.
fn controls(text: &str) -> Vec<char> {
    text.chars()
        .filter(|character| character.is_control() && *character != '\n')
        .collect()
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

/// Serves `answer(path, own base URL)` (status and JSON body) to every request, each
/// connection on its own thread, until the test process ends. Returns the base URL.
fn fake_patroni(answer: fn(&str, &str) -> (u16, String)) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let own_base = base.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let base = own_base.clone();
            std::thread::spawn(move || reply(stream, &base, answer));
        }
    });
    base
}

fn reply(mut stream: TcpStream, base: &str, answer: fn(&str, &str) -> (u16, String)) {
    let mut request = Vec::new();
    let mut chunk = [0u8; 1024];
    while !request.windows(4).any(|window| window == b"\r\n\r\n") {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(read) => request.extend_from_slice(&chunk[..read]),
        }
    }
    let head = String::from_utf8_lossy(&request);
    let path = head.split_whitespace().nth(1).unwrap_or("/");
    let (status, body) = answer(path, base);
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
}

const HOSTILE_LEADER: &str = "node1\x1b[2J\x1b[31m";

/// The replica's API: one refusing URL for every answer, so that all of them agree.
fn refusing_replica() -> &'static str {
    static URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    URL.get_or_init(refusing_url)
}

/// A cluster whose every word is hostile: the leader answers (from this fake), the replica's
/// API refuses connections.
fn hostile_cluster(path: &str, base: &str) -> (u16, String) {
    let body = match path {
        "/cluster" => json!({
            "scope": "demo\x1b]0;pwned\x07",
            "members": [
                {
                    "name": HOSTILE_LEADER, "role": "leader", "state": "running",
                    "api_url": format!("{base}/patroni"), "host": "127.0.0.1", "port": 5432,
                    "timeline": 1, "tags": {"zone\x08": "a\u{9b}5mb"},
                },
                {
                    "name": "node2\r\x1b[1A", "role": "replica", "state": "streaming\x07",
                    "api_url": format!("{}/patroni", refusing_replica()), "host": "127.0.0.2",
                    "port": 5432, "timeline": 1, "lag": 0,
                },
            ],
        }),
        "/patroni" => {
            let mut status: Value = serde_json::from_str(include_str!(
                "../fixtures/patroni/4.1.5/patroni_leader.json"
            ))
            .unwrap();
            status["patroni"]["name"] = json!(HOSTILE_LEADER);
            status
        }
        "/history" => json!([[
            1,
            83_886_416,
            "no recovery target\x1b[2J\rforged",
            "2026-11-23T19:59:18.443863+00:00",
            HOSTILE_LEADER,
        ]]),
        _ => return (404, "{}".into()),
    };
    (200, body.to_string())
}

#[test]
fn a_hostile_cluster_is_printed_without_control_characters() {
    let api = fake_patroni(hostile_cluster);
    let status = Pgha::new().args(["--api", &api, "status"]).run().success();
    let table = status.stdout();
    assert_eq!(controls(&table), Vec::<char>::new(), "{table}");
    for shown in ["Cluster: demo ", "| node1 ", "| node2 ", "zone: ab"] {
        assert!(table.contains(shown), "{shown:?} in\n{table}");
    }
    let history = Pgha::new().args(["--api", &api, "history"]).run().success();
    let table = history.stdout();
    assert_eq!(controls(&table), Vec::<char>::new(), "{table}");
    assert!(table.contains("| no recovery targetforged | "), "{table}");
}

fn hostile_error(_path: &str, _base: &str) -> (u16, String) {
    (500, "boom\x1b[2J\x1b]0;pwned\x07\rgone\u{9b}31m".into())
}

#[test]
fn a_hostile_error_body_is_printed_without_control_characters() {
    let api = fake_patroni(hostile_error);
    let run = Pgha::new()
        .args(["--api", &api, "status"])
        .run()
        .expect_code(UNREACHABLE);
    let line = run.one_error_line();
    assert_eq!(controls(&line), Vec::<char>::new(), "{line:?}");
    assert!(line.ends_with("unexpected HTTP 500: boomgone"), "{line}");
}
