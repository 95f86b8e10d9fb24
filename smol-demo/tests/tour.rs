//! The guided tour and the live experiments as real processes: `tailguard-demo --quick`,
//! `tail-at-scale` (live) and `herd` (live by default, `--sim` for the studies).

use std::process::Command;
use std::time::{Duration, Instant};

use tailguard_demo::tour::HEADINGS;

const BIN: &str = env!("CARGO_BIN_EXE_tailguard-demo");

#[test]
fn the_quick_tour_runs_end_to_end() {
    let started = Instant::now();
    let out = Command::new(BIN)
        .arg("--quick")
        .output()
        .expect("run the tour");
    let took = started.elapsed();
    let stdout = String::from_utf8(out.stdout).expect("UTF-8");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(took < Duration::from_secs(30), "took {took:?}");
    for heading in HEADINGS {
        assert!(stdout.contains(heading), "no `{heading}` in:\n{stdout}");
    }
    assert!(
        !stdout.contains('\x1b'),
        "no ANSI codes when stdout is a pipe"
    );
    assert!(!stdout.contains("could not run"), "{stdout}");
    // Each section printed its measured table.
    for needle in [
        "408 Request Timeout (body_idle)",
        "408 Request Timeout (body_total)",
        "connection refused",
        "no jitter, no budget",
        "tripped",
        "adaptive (adaptive:0.98)", // p95 asked; a 2 % budget pays for p98
        "The tour took",
    ] {
        assert!(stdout.contains(needle), "no `{needle}` in:\n{stdout}");
    }
}

#[test]
fn tail_at_scale_live_writes_its_plot_and_json() {
    let path = std::env::temp_dir().join(format!("tailguard-cli-{}.svg", std::process::id()));
    let out = Command::new(BIN)
        .args([
            "tail-at-scale",
            "--json",
            "--rate",
            "50",
            "--duration",
            "1s",
        ])
        .arg("--out")
        .arg(&path)
        .output()
        .expect("run tail-at-scale");
    assert!(out.status.success(), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    for mode in ["none", "fixed", "adaptive"] {
        assert_eq!(report[mode]["requests"], 50, "{report}");
        assert!(report[mode]["p50_ms"].as_f64().unwrap() > 0.0, "{report}");
        // 50 samples cannot support a p99 (it needs 10 beyond it): null, not the maximum.
        assert!(report[mode]["p99_ms"].is_null(), "{report}");
    }
    assert_eq!(report["svg"], path.display().to_string());
    let svg = std::fs::read_to_string(&path).expect("the plot was written");
    let _ = std::fs::remove_file(&path);
    assert!(svg.starts_with("<svg"), "{svg}");
}

#[test]
fn herd_is_live_by_default_and_sim_keeps_the_studies() {
    let help = Command::new(BIN).args(["herd", "--help"]).output().unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    for needle in [
        "--sim",
        "live",
        "full jitter",
        "budget",
        "recovery",
        "wasted",
    ] {
        assert!(help.contains(needle), "herd --help lacks {needle}:\n{help}");
    }
    let sim = Command::new(BIN)
        .args(["herd", "--sim", "--json", "--clients", "20"])
        .output()
        .unwrap();
    assert!(sim.status.success());
    let sim: serde_json::Value = serde_json::from_slice(&sim.stdout).unwrap();
    assert!(
        sim["storm"].is_object() && sim["full"]["calls"].is_number(),
        "{sim}"
    );
    let bad = Command::new(BIN)
        .args(["herd", "--capacity", "0"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("capacity"));
}
