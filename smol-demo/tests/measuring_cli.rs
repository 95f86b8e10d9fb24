//! The binary as a measuring tool: Ctrl-C keeps what was measured, flags are checked before any
//! work and named in errors (exit 2), total failure is not success, ports that collide are
//! named, and every `--help` has examples.
//!
//! Real processes; each waits on what the child prints rather than on a fixed delay wherever
//! it can, with generous bounds.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_tailguard-demo");

/// Kills the child on drop, so a failing test leaves no process behind.
struct Process(Option<Child>);

impl Process {
    fn spawn(args: &[&str]) -> Process {
        let child = Command::new(BIN)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tailguard-demo");
        Process(Some(child))
    }

    fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("running")
    }

    fn signal(&mut self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child().id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    /// Waits (at most `within`) for the exit and collects what the child printed.
    fn finish(mut self, within: Duration) -> Output {
        let mut child = self.0.take().expect("running");
        let start = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if start.elapsed() > within {
                let _ = child.kill();
                panic!("tailguard-demo did not exit within {within:?}");
            }
            thread::sleep(Duration::from_millis(20));
        }
        child.wait_with_output().unwrap()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn run(args: &[&str]) -> Output {
    Process::spawn(args).finish(Duration::from_secs(60))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A minimal HTTP/1.1 server on a free port that answers every request `200 ok` and reports
/// the first request it sees, so a test knows the load generator is running.
fn answering_server() -> (String, mpsc::Receiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/x", listener.local_addr().unwrap());
    let (first, seen) = mpsc::sync_channel(1);
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let first = first.clone();
            thread::spawn(move || {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while stream.read(&mut byte).unwrap_or(0) == 1 {
                    head.push(byte[0]);
                    if head.ends_with(b"\r\n\r\n") {
                        head.clear();
                        let _ = first.try_send(());
                        let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if stream.write_all(reply).is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (url, seen)
}

fn interrupted_load(json: bool) -> Output {
    let (url, seen) = answering_server();
    let mut args = vec![
        "load",
        "--url",
        &url,
        "--rate",
        "200",
        "--duration",
        "60s",
        "--threads",
        "1",
    ];
    if json {
        args.push("--json");
    }
    let mut load = Process::spawn(&args);
    seen.recv_timeout(Duration::from_secs(20))
        .expect("the load reaches the server");
    thread::sleep(Duration::from_millis(300));
    load.signal("INT");
    load.finish(Duration::from_secs(10))
}

#[test]
fn ctrl_c_prints_what_load_measured() {
    let out = interrupted_load(false);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(130), "{stdout}\n{stderr}");
    assert!(stdout.contains("INTERRUPTED after"), "{stdout}");
    assert!(stdout.contains("latency    p50"), "{stdout}");
    assert!(stderr.contains("interrupted by SIGINT"), "{stderr}");

    let out = interrupted_load(true);
    assert_eq!(out.status.code(), Some(130), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(report["interrupted"], true, "{report}");
    let ok = report["ok"].as_u64().unwrap();
    assert!(ok > 0, "{report}");
    assert!(
        report["scheduled"].as_u64().unwrap() < 12_000,
        "only what fell due before Ctrl-C: {report}"
    );
    assert!(report["latency"]["p50_ms"].as_f64().is_some(), "{report}");
}

#[test]
fn load_with_no_success_says_so_and_fails() {
    // Nothing listens on a port just released.
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("http://{addr}/");
    let args = ["load", "--url", &url, "--rate", "40", "--duration", "250ms"];
    let out = run(&args);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("no samples"), "{stdout}");
    assert!(!stdout.contains("p50 0.00"), "{stdout}");
    assert!(stderr.contains("no request succeeded"), "{stderr}");

    let out = run(&[&args[..], &["--json"]].concat());
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(report["latency"]["p50_ms"].is_null(), "{report}");
    assert_eq!(report["ok"], 0, "{report}");
}

/// Exit 2, quickly, with a message naming `flag`.
fn refused(args: &[&str], flag: &str) {
    let started = Instant::now();
    let out = run(args);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(
        stderr.contains(&format!("invalid value for {flag}")) || stderr.contains(flag),
        "{args:?} should name {flag}: {stderr}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{args:?} worked before refusing: {:?}",
        started.elapsed()
    );
    assert!(out.stdout.is_empty(), "{args:?}: {}", text(&out.stdout));
}

#[test]
fn flags_are_checked_before_any_work_and_errors_name_them() {
    refused(
        &["tail-at-scale", "--sim", "--percentile", "2"],
        "--percentile",
    );
    refused(&["tail-at-scale", "--sim", "--budget=-1"], "--budget");
    // Live: refused before the first mode starts (which would print its name).
    let out = run(&["tail-at-scale", "--budget", "-1"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("invalid value for --budget"), "{stderr}");
    assert!(!stderr.contains("none ("), "a mode ran first: {stderr}");
    refused(&["tail-at-scale", "--percentile", "1.5"], "--percentile");
    refused(&["tail-at-scale", "--stall-for", "0s"], "--stall-for");
    refused(&["tail-at-scale", "--fixed-delay", "10"], "--fixed-delay");
    refused(&["load", "--rate", "-5"], "--rate");
    refused(&["load", "--rate", "0"], "--rate");
    refused(&["herd", "--rate", "-5"], "--rate");
    refused(
        &["backend", "--stall-every", "100ms", "--stall-for", "50ms"],
        "--stall-for",
    );
    refused(
        &["serve", "--addr", "127.0.0.1:0", "--max-connections", "0"],
        "--max-connections",
    );
    refused(
        &["serve", "--addr", "127.0.0.1:0", "--backend", "127.0.0.1:1"]
            .into_iter()
            .chain(["--hedge-budget", "-1"])
            .collect::<Vec<_>>(),
        "--hedge-budget",
    );
    // No internal field names.
    let out = run(&["tail-at-scale", "--sim", "--budget=-1"]);
    assert!(!text(&out.stderr).contains("budget_ratio"));
}

#[test]
fn durations_take_units_and_the_old_millisecond_flag_still_works() {
    // Both spellings parse (the run is refused on another flag, before any work).
    for delay in [
        ["--fixed-delay", "10ms"],
        ["--fixed-delay-ms", "10"],
        ["--fixed-delay-ms", "10ms"],
    ] {
        let args = [&["tail-at-scale", "--sim", "--percentile", "2"], &delay[..]].concat();
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2));
        assert!(
            text(&out.stderr).contains("--percentile"),
            "{delay:?}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn ctrl_c_during_tail_at_scale_keeps_the_modes_that_finished() {
    let out_svg = std::env::temp_dir().join(format!("tailguard-cli-{}.svg", std::process::id()));
    let mut run = Process::spawn(&[
        "tail-at-scale",
        "--sequential",
        "--rate",
        "40",
        "--duration",
        "1s",
        "--threads",
        "2",
        "--out",
        out_svg.to_str().unwrap(),
    ]);
    let mut stderr = BufReader::new(run.child().stderr.take().unwrap()).lines();
    // The second mode starts once the first has finished.
    let mut seen = Vec::new();
    for line in stderr.by_ref() {
        let line = line.unwrap();
        let fixed_started = line.starts_with("tail-at-scale: fixed");
        seen.push(line);
        if fixed_started {
            break;
        }
    }
    assert!(seen.last().is_some_and(|l| l.contains("fixed")), "{seen:?}");
    run.signal("INT");
    let out = run.finish(Duration::from_secs(20));
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(130), "{stdout}");
    assert!(stdout.contains("none (off)"), "the finished mode: {stdout}");
    assert!(
        stdout.contains("interrupted by SIGINT")
            && stdout.contains("during fixed: fixed, adaptive, p2c, tied not measured"),
        "{stdout}"
    );
    assert!(out_svg.exists(), "the plot of the finished mode");
    let _ = std::fs::remove_file(out_svg);
}

#[test]
fn ctrl_c_during_an_interleaved_tail_at_scale_reports_every_mode_so_far() {
    let out_svg = std::env::temp_dir().join(format!("tailguard-cli-i-{}.svg", std::process::id()));
    let mut run = Process::spawn(&[
        "tail-at-scale",
        "--rate",
        "40",
        "--duration",
        "2s",
        "--threads",
        "2",
        "--json",
        "--out",
        out_svg.to_str().unwrap(),
    ]);
    let mut stderr = BufReader::new(run.child().stderr.take().unwrap()).lines();
    let first = stderr.next().expect("a line").unwrap();
    assert!(
        first.starts_with("tail-at-scale: none, fixed, adaptive, p2c, tied interleaved"),
        "{first}"
    );
    // Part-way through the 10 s run: every mode has sent some of its fan-outs.
    std::thread::sleep(Duration::from_secs(3));
    run.signal("INT");
    let out = run.finish(Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stdout));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let note = report["interrupted"].as_str().expect("a note");
    assert!(
        note.contains("by SIGINT") && note.contains("every mode measured up to then"),
        "{report}"
    );
    for mode in ["none", "fixed", "adaptive", "p2c", "tied"] {
        let samples = report[mode]["samples"].as_u64().expect("samples");
        assert!(samples > 0 && samples < 80, "{mode}: {report}");
    }
    let _ = std::fs::remove_file(out_svg);
}

#[test]
fn ctrl_c_during_the_simulation_says_what_was_not_measured() {
    let mut sim = Process::spawn(&["tail-at-scale", "--sim", "--json"]);
    let mut stderr = BufReader::new(sim.child().stderr.take().unwrap()).lines();
    let first = stderr.next().expect("a line").unwrap();
    assert!(first.starts_with("tail-at-scale --sim:"), "{first}");
    sim.signal("INT");
    let out = sim.finish(Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(130));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let note = report["interrupted"].as_str().expect("a note");
    assert!(
        note.contains("by SIGINT") && note.contains("adaptive"),
        "{report}"
    );
}

#[test]
fn a_port_collision_names_the_port_and_the_listener() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let addr = format!("127.0.0.1:{port}");
    let out = run(&["serve", "--addr", &addr]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("port {port} is already in use")) && stderr.contains("--addr"),
        "{stderr}"
    );
    let out = run(&["backend", "--port", &port.to_string(), "--replicas", "2"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("replica 0 cannot listen on 127.0.0.1:{port}"))
            && stderr.contains("already in use"),
        "{stderr}"
    );
    drop(taken);
}

#[test]
fn every_help_has_examples_and_exit_statuses() {
    for command in ["serve", "backend", "load", "herd", "tail-at-scale"] {
        let out = run(&[command, "--help"]);
        assert!(out.status.success());
        let help = text(&out.stdout);
        assert!(
            help.contains("Examples") && help.contains(&format!("tailguard-demo {command}")),
            "{command} --help:\n{help}"
        );
        assert!(help.contains("Exit status"), "{command} --help:\n{help}");
    }
    let help = text(&run(&["tail-at-scale", "--help"]).stdout);
    assert!(
        help.contains("s of CPU in a release build"),
        "the duration of --sim: {help}"
    );
    let help = text(&run(&["--help"]).stdout);
    assert!(help.contains("Examples"), "{help}");
}

#[test]
fn signals_are_logged_by_their_names() {
    let mut serve = Process::spawn(&["serve", "--addr", "127.0.0.1:0", "--threads", "1"]);
    let mut log = BufReader::new(serve.child().stderr.take().unwrap()).lines();
    let first = log.next().expect("a log line").unwrap();
    assert!(first.contains("listening"), "{first}");
    serve.signal("TERM");
    let rest: Vec<String> = log.map_while(Result::ok).collect();
    let out = serve.finish(Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(0));
    let rest = rest.join("\n");
    assert!(rest.contains("received SIGTERM"), "{rest}");
    assert!(!rest.contains("Term"), "{rest}");
}

#[test]
fn json_numbers_are_rounded() {
    let (url, _seen) = answering_server();
    let out = run(&[
        "load",
        "--url",
        &url,
        "--rate",
        "100",
        "--duration",
        "300ms",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let json = text(&out.stdout);
    // Six significant digits at most: no float noise like 12.976602999999999.
    for number in json
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter(|n| n.contains('.'))
    {
        let digits = number.chars().filter(char::is_ascii_digit).count();
        assert!(digits <= 7, "{number} has noise in {json}");
    }
}
