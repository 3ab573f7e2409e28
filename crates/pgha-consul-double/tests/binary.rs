//! The built binary as the lab runs it: arguments, the pid file, the Consul API on its address,
//! and a clean exit on SIGTERM. (The HTTP surface itself is unit-tested in `src/http.rs`; real
//! Patroni on it is pgha's integration tests.) Being an integration test, it also makes
//! `cargo test` build the binary, which pgha's lab tests start from beside `pgha`.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the double if the test fails before it stopped it.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// A free port on 127.0.0.1 (released again for the double to take).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP/1.1 request; the status line and the body.
fn request(port: u16, method: &str, path: &str, body: &str) -> std::io::Result<(String, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.lines().next().unwrap_or("").to_string();
    Ok((status, body.to_string()))
}

#[test]
fn serves_the_consul_api_writes_its_pid_and_stops_on_sigterm() {
    let port = free_port();
    let pid_file: PathBuf = std::env::temp_dir().join(format!(
        "pgha-consul-double-test-{}.pid",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&pid_file);
    let child = Command::new(env!("CARGO_BIN_EXE_pgha-consul-double"))
        .args(["--listen", &format!("127.0.0.1:{port}"), "--node", "smoke"])
        .arg("--pid-file")
        .arg(&pid_file)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the double starts");
    let mut double = Running(child);

    let started = Instant::now();
    let (status, body) = loop {
        match request(port, "GET", "/v1/status/leader", "") {
            Ok(answer) => break answer,
            Err(error) if started.elapsed() < Duration::from_secs(10) => {
                assert!(
                    matches!(double.0.try_wait(), Ok(None)),
                    "the double exited before listening ({error})"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(error) => panic!("the double does not answer on 127.0.0.1:{port}: {error}"),
        }
    };
    assert!(status.contains(" 200 "), "{status}");
    assert_eq!(body, "\"127.0.0.1:8300\"");

    let pid = std::fs::read_to_string(&pid_file).expect("the pid file is written");
    assert_eq!(pid.trim(), double.0.id().to_string());

    let (status, body) = request(port, "PUT", "/v1/kv/smoke/key", "value").unwrap();
    assert!(status.contains(" 200 "), "{status}");
    assert_eq!(body.trim(), "true");
    let (status, body) = request(port, "GET", "/v1/kv/smoke/key?raw", "").unwrap();
    assert!(status.contains(" 200 "), "{status}");
    assert_eq!(body, "value");

    let killed = Command::new("kill")
        .args(["-TERM", &double.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let stopping = Instant::now();
    let exit = loop {
        if let Some(exit) = double.0.try_wait().unwrap() {
            break exit;
        }
        assert!(
            stopping.elapsed() < Duration::from_secs(10),
            "the double is still running 10 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit}");
    let _ = std::fs::remove_file(&pid_file);
}
