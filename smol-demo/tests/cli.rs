//! The `backend`, `serve --backend` and `load` subcommands as real processes, wired together
//! the way the README shows.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_tailguard-demo");

/// Kills the child on drop, so a failing test leaves no process behind.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Process {
    fn terminate(mut self) -> i32 {
        let status = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
        let start = Instant::now();
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(start.elapsed() < Duration::from_secs(10), "did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn backend_gateway_and_load_work_together() {
    let mut backend = Command::new(BIN)
        .args([
            "backend",
            "--port",
            "0",
            "--replicas",
            "2",
            "--threads",
            "1",
        ])
        .args(["--latency", "fixed:5ms"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start backend");
    let mut lines = BufReader::new(backend.stdout.take().unwrap()).lines();
    let backend = Process(backend);
    let list = lines
        .next()
        .expect("a line")
        .unwrap()
        .strip_prefix("backends: ")
        .expect("the backends line")
        .to_string();
    assert_eq!(list.split(',').count(), 2, "{list}");

    let mut gateway = Command::new(BIN)
        .args(["serve", "--addr", "127.0.0.1:0", "--threads", "1"])
        .args(["--backend", &list, "--hedge", "off"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("start serve");
    let mut log = BufReader::new(gateway.stderr.take().unwrap()).lines();
    let first = log.next().expect("a log line").unwrap();
    // Keep reading the log: a closed pipe would fail the server's next log line.
    let log = std::thread::spawn(move || log.map_while(Result::ok).collect::<Vec<_>>());
    let gateway = Process(gateway);
    let addr = first.rsplit("http://").next().unwrap().trim().to_string();

    let out = Command::new(BIN)
        .args([
            "load",
            "--rate",
            "50",
            "--duration",
            "1s",
            "--json",
            "--threads",
            "1",
        ])
        .args(["--url", &format!("http://{addr}/fanout?keys=4")])
        .output()
        .expect("run load");
    assert!(out.status.success(), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(report["sent"], 50, "{report}");
    assert_eq!(report["ok"], 50, "{report}");
    assert_eq!(report["errors"], 0, "{report}");
    let p50 = report["latency"]["p50_ms"].as_f64().unwrap();
    assert!((5.0..100.0).contains(&p50), "{report}");

    assert_eq!(gateway.terminate(), 0);
    let log = log.join().unwrap().join("\n");
    assert!(log.contains("drained cleanly"), "{log}");
    assert_eq!(backend.terminate(), 0);
}

#[test]
fn help_describes_the_models() {
    let help = |command: &str| {
        let out = Command::new(BIN)
            .args([command, "--help"])
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let backend = help("backend");
    for needle in [
        "lognormal",
        "stall",
        "--error-rate",
        "--outage",
        "refuse",
        "503",
        "--seed",
    ] {
        assert!(
            backend.contains(needle),
            "backend --help lacks {needle}:\n{backend}"
        );
    }
    let load = help("load");
    for needle in ["due time", "dropped", "--json", "p99.9", "--concurrency"] {
        assert!(load.contains(needle), "load --help lacks {needle}:\n{load}");
    }
    let serve = help("serve");
    for needle in ["/fanout", "/metrics", "--backend", "--hedge"] {
        assert!(
            serve.contains(needle),
            "serve --help lacks {needle}:\n{serve}"
        );
    }
    assert!(
        !serve.contains("no-io-timeouts"),
        "the benchmark flag is hidden"
    );
}

#[test]
fn bad_backend_and_load_flags_are_refused() {
    let out = Command::new(BIN)
        .args(["backend", "--stall-every", "100ms", "--stall-for", "50ms"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid value for --stall-for"));
    let out = Command::new(BIN)
        .args(["load", "--rate", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("rate"));
}
