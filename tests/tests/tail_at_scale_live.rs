//! The live Tail at Scale experiment over real sockets: its report and its SVG plot.
//!
//! Real timing on a shared machine is noisy, so these tests assert the structure and sanity
//! of the results (every mode ran its load, hedging stayed within its budget, adaptive hedging
//! did not make the tail worse by more than a generous margin), not exact ratios. The tied
//! mode makes three HTTP exchanges per key (two copies and a cancel), so on a loaded machine
//! in a debug build its latency says little: it is judged by its answers and by what its
//! copies did (sent, cancelled, duplicated), never by its latency.

use std::time::Duration;

use tailguard_demo::rt::Runtime;
use tailguard_demo::tail_at_scale::live::{self, LiveConfig};
use tailguard_demo::tail_at_scale::sim::Mode;
use tailguard_demo::tail_at_scale::write_plot;

/// The polylines of the SVG drawn with the series' stroke width: `(stroke colour, points)`.
fn series_lines(svg: &str) -> Vec<(String, usize)> {
    svg.split("<polyline")
        .skip(1)
        .map(|element| &element[..element.find("/>").expect("a closed element")])
        .filter(|element| element.contains("stroke-width=\"2\""))
        .map(|element| {
            let stroke = element
                .split("stroke=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .expect("a stroke")
                .to_string();
            let points = element
                .split("points=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .expect("points")
                .split_whitespace()
                .count();
            (stroke, points)
        })
        .collect()
}

#[test]
fn every_mode_runs_and_the_plot_has_a_line_for_each() {
    let config = LiveConfig {
        rate: 100.0,
        duration: Duration::from_secs(2),
        // Stalls twice as often as the default, so two seconds meet several.
        stalls: tailguard_demo::backend::Stalls {
            every: Duration::from_secs(1),
            length: Duration::from_millis(40),
        },
        ..LiveConfig::default()
    };
    let rt = Runtime::new(2.try_into().unwrap());
    let mut started = Vec::new();
    let reports = rt
        .block_on(live::run(rt.executor(), &config, |mode| started.push(mode)))
        .expect("the experiment runs");
    assert_eq!(started, Mode::ALL);
    let modes: Vec<Mode> = reports.iter().map(|r| r.mode).collect();
    assert_eq!(modes, Mode::ALL);

    for r in &reports {
        eprintln!(
            "{}: {:?} extra {:.1}% duplicate {:.1}%",
            r.mode, r.load.latency, r.extra_pct, r.duplicate_work_pct
        );
        let l = &r.load.latency;
        assert_eq!(r.load.scheduled, 200, "{r:?}");
        assert!(r.load.sent + r.load.dropped == 200, "{r:?}");
        // Fan-outs succeed. Idle, all of them do; on a starved machine (a debug build at a
        // load average of 12-15) some miss the fan-out's deadline in any mode (75 % answered
        // at the worst measured), and the tied mode, three exchanges per key, saturates: 29 %
        // at the worst, its calls running to their 1 s timeout. A broken mode answers none.
        let (share, of) = if r.mode == Mode::Tied {
            (1, 10)
        } else {
            (1, 2)
        };
        assert!(
            r.load.ok * of >= r.load.sent * share,
            "at least {share} in {of} fan-outs succeed: {r:?}"
        );
        // Work started beyond one per key is done by calls sent beyond one per key (none
        // when calls go unsent on a starved machine and fewer reach the replicas than keys).
        assert!(
            r.duplicate_work_pct >= 0.0 && r.duplicate_work_pct <= r.extra_pct.max(0.0) + 1e-9,
            "{r:?}"
        );
        assert_eq!(r.fanouts, r.load.sent, "the gateway answered what was sent");
        assert_eq!(r.keys, r.fanouts * config.keys as u64);
        assert!(l.p50_ms > 1.0, "the replicas take ~2 ms: {l:?}");
        assert!(l.p50_ms <= l.p90_ms && l.p90_ms <= l.p99_ms && l.p99_ms <= l.max_ms);
        // Every key reached a replica, or is counted missing (a starved gateway leaves some
        // unsent, no pooled connection free in time; the tied mode most, its pool busy with
        // both copies of other keys).
        assert!(
            r.backend_calls + r.keys_missing >= r.keys,
            "every key reached a replica or is missing: {r:?}"
        );
        assert_eq!(r.load.histogram.count(), r.load.sent);
    }
    let (none, fixed, adaptive, p2c, tied) = (
        &reports[0],
        &reports[1],
        &reports[2],
        &reports[3],
        &reports[4],
    );
    // Tied requests send second copies (a key answered within the 1 ms delay sends none; on
    // a starved machine many are not sent at all, the gateway's pool having no spare
    // connection: from -1.6 % to 7.9 % extra calls measured at a load average of ~15, 99.5 %
    // when idle), and the replicas cancel some of them by their twin's id over HTTP (47 to 140
    // when starved), in the queue or on arrival; a cancelled copy is a call the replicas
    // received. Tied requests hedge nothing.
    assert!(tied.cancelled_copies > 0, "{tied:?}");
    assert!(tied.cancelled_copies <= tied.backend_calls, "{tied:?}");
    assert_eq!(tied.hedge, "tied:1ms");
    assert_eq!(tied.hedge_budget_refusals, 0, "{tied:?}");
    // Tied calls back up a started copy that overran; no other mode does.
    assert!(tied.backups_won <= tied.backups_sent, "{tied:?}");
    for r in [none, fixed, adaptive, p2c] {
        assert_eq!((r.backups_sent, r.backups_won), (0, 0), "{r:?}");
    }
    // Without hedging or tying, no work is done twice.
    assert_eq!(none.duplicate_work_pct, 0.0, "{none:?}");
    assert_eq!(none.cancelled_copies, 0, "{none:?}");
    // Without hedging, nothing is sent twice.
    assert_eq!(none.hedges_sent, 0);
    // (Fewer calls than keys when a starved gateway leaves some unsent.)
    assert!(none.extra_pct < 0.5, "{none:?}");
    // Hedging sends extra calls, the adaptive mode within its 5 % budget (plus the odd retry).
    assert!(
        fixed.hedges_sent > 0,
        "stalls trigger fixed hedges: {fixed:?}"
    );
    for hedged in [adaptive, p2c] {
        assert!(
            hedged.extra_pct <= 100.0 * config.budget_ratio + 3.0,
            "{hedged:?}"
        );
    }
    assert_eq!(p2c.hedge, "p2c+adaptive:0.95");
    // Adaptive hedging does not make the tail worse. The margin is generous because (measured
    // when the modes still ran one after another) a neighbour's compile in two seconds moves a p99
    // (the 2nd-slowest of 200) by tens of ms (adaptive 152 ms against none 54 ms, measured at
    // a load average of ~12); a hedging fault (hedges queued behind their primaries, calls
    // running to the 1 s timeout) costs hundreds. A starved process says nothing about
    // hedging: with six copies of this test at once (load average 12-13) the open-loop load
    // outran the CPU part-way through, and the medians went from 7 ms (idle, every mode) to
    // 30-270 ms, p99s to 0.3-1.1 s, mode by mode as the backlog grew. So a mode's tail is
    // compared only when both medians show an unstarved process (under 20 ms) and no
    // hedging's p99 is near its idle 55 ms (the stalls' 40 ms plus service).
    let starved = |r: &live::LiveModeReport| r.load.latency.p50_ms > 20.0;
    let p99_none = none.load.latency.p99_ms;
    let comparable = |r: &&live::LiveModeReport| !starved(none) && !starved(r) && p99_none <= 90.0;
    for skipped in [adaptive, p2c].iter().filter(|r| !comparable(r)) {
        eprintln!(
            "{}: p50 {:.1} ms, none p50 {:.1} p99 {p99_none:.1} ms: starved, tails not compared",
            skipped.mode, skipped.load.latency.p50_ms, none.load.latency.p50_ms
        );
    }
    for hedged in [adaptive, p2c].into_iter().filter(comparable) {
        let p99 = hedged.load.latency.p99_ms;
        assert!(
            p99 <= 3.0 * p99_none + 50.0,
            "{} p99 {p99:.1} ms vs none {p99_none:.1} ms",
            hedged.mode
        );
    }

    // 200 samples per mode support p50 and p90, not p99 (1,000) nor p99.9 (10,000): the JSON
    // says null next to the sample count, the table n/a, and no sentence claims them.
    let json = live::to_json(&reports);
    for mode in ["none", "fixed", "adaptive", "p2c", "tied"] {
        assert_eq!(json[mode]["samples"], 200, "{json}");
        assert!(json[mode]["duplicate_work_pct"].is_f64(), "{json}");
        assert!(json[mode]["p90_ms"].is_f64(), "{json}");
        assert!(json[mode]["p99_ms"].is_null(), "{json}");
        assert!(json[mode]["p999_ms"].is_null(), "{json}");
    }
    let text = live::table(&config, &reports);
    eprintln!("{text}");
    assert!(text.contains("n/a"), "{text}");
    assert!(text.contains("p90: "), "{text}");
    assert!(
        text.contains("p99, p99.9: n/a, 200 samples per mode are too few"),
        "{text}"
    );
    assert!(!text.contains("p99: "), "{text}");

    // The plot: a valid SVG document with one line per mode, each in its own colour.
    let path = std::env::temp_dir().join(format!("tailguard-test-{}.svg", std::process::id()));
    write_plot(&config, &reports, &path).expect("the plot is written");
    let svg = std::fs::read_to_string(&path).expect("the plot is readable");
    let _ = std::fs::remove_file(&path);
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("xmlns=\"http://www.w3.org/2000/svg\""));
    assert_eq!(
        svg.matches("<text").count(),
        svg.matches("</text>").count(),
        "every text element is closed"
    );
    let lines = series_lines(&svg);
    let curves: Vec<&(String, usize)> = lines.iter().filter(|(_, points)| *points > 20).collect();
    assert_eq!(curves.len(), 5, "{lines:?}");
    let colours: Vec<&str> = curves.iter().map(|(c, _)| c.as_str()).collect();
    // Black, orange, blue, reddish purple and bluish green (Okabe-Ito): none, fixed, adaptive,
    // p2c, tied, told apart by every reader.
    assert_eq!(
        colours,
        ["#000000", "#E69F00", "#0072B2", "#CC79A7", "#009E73"],
        "{lines:?}"
    );
    for name in [
        "none (off)",
        "fixed (fixed:10ms)",
        "adaptive (adaptive:0.95)",
        "p2c (p2c+adaptive:0.95)",
        "tied (tied:1ms)",
    ] {
        assert!(svg.contains(name), "the legend names {name}");
    }
    for label in ["p90", "p99", "latency"] {
        assert!(svg.contains(label), "the axes have {label}");
    }
}

#[test]
fn a_live_run_of_some_modes_runs_just_those() {
    // `--modes adaptive,tied`: how a small machine gathers the samples p99.9 needs.
    let config = LiveConfig {
        rate: 40.0,
        duration: Duration::from_secs(1),
        modes: vec![Mode::Adaptive, Mode::Tied],
        ..LiveConfig::default()
    };
    let rt = Runtime::new(2.try_into().unwrap());
    let mut started = Vec::new();
    let reports = rt
        .block_on(live::run(rt.executor(), &config, |mode| started.push(mode)))
        .expect("the experiment runs");
    assert_eq!(started, [Mode::Adaptive, Mode::Tied]);
    let modes: Vec<Mode> = reports.iter().map(|r| r.mode).collect();
    assert_eq!(modes, [Mode::Adaptive, Mode::Tied]);
    let json = live::to_json(&reports);
    assert!(json["tied"]["backups_sent"].is_u64(), "{json}");
    assert!(json.get("none").is_none(), "{json}");
    // No mode at all is refused, naming the field.
    let none = LiveConfig {
        modes: Vec::new(),
        ..LiveConfig::default()
    };
    assert_eq!(none.validate().unwrap_err().field(), "modes");
}

#[test]
fn interleaved_modes_share_every_moment_of_the_run() {
    // Run one after the other, each mode had its own minutes of a shared machine, and the deep
    // tail measured what else ran then. Interleaved, each mode answers its share of fan-outs
    // in every part of the run. Judged by shape: a starved machine delays answers across a
    // tenth's boundary, so each mode must have answered in most tenths and in both halves.
    let config = LiveConfig {
        rate: 60.0,
        duration: Duration::from_secs(3),
        modes: vec![Mode::None, Mode::Adaptive],
        ..LiveConfig::default()
    };
    let rt = Runtime::new(2.try_into().unwrap());
    let reports = rt
        .block_on(live::run(rt.executor(), &config, |_| {}))
        .expect("the experiment runs");
    for r in &reports {
        eprintln!("{}: timeline {:?}", r.mode, r.timeline);
        assert_eq!(
            r.load.scheduled, 180,
            "each mode gets rate x duration: {r:?}"
        );
        assert_eq!(
            r.timeline.len(),
            10,
            "one count per tenth of the run: {r:?}"
        );
        let answering = r.timeline.iter().filter(|&&n| n > 0).count();
        assert!(answering >= 8, "answers in most tenths: {:?}", r.timeline);
        let total: u64 = r.timeline.iter().sum();
        let first: u64 = r.timeline[..5].iter().sum();
        let second: u64 = r.timeline[5..].iter().sum();
        assert!(
            4 * first >= total && 4 * second >= total,
            "{}: both halves of the run: {:?}",
            r.mode,
            r.timeline
        );
    }
    // Both modes ran at once: in every tenth, the two answered within a factor of each
    // other's count plus a margin for a tenth's edge.
    let (a, b) = (&reports[0].timeline, &reports[1].timeline);
    for (x, y) in a.iter().zip(b) {
        assert!(
            x.abs_diff(*y) <= x.max(y) / 2 + 6,
            "the modes took turns: {a:?} {b:?}"
        );
    }
    // The old order, one mode after the other, is still there for comparisons.
    let sequential = LiveConfig {
        rate: 40.0,
        duration: Duration::from_secs(1),
        sequential: true,
        ..config.clone()
    };
    let reports = rt
        .block_on(live::run(rt.executor(), &sequential, |_| {}))
        .expect("the experiment runs");
    assert_eq!(reports.len(), 2);
    assert!(reports
        .iter()
        .all(|r| r.load.scheduled == 40 && r.timeline.is_empty()));
    assert!(live::heading(&sequential).contains("one mode after another"));
    assert!(live::heading(&config).contains("interleaved request by request"));
}
