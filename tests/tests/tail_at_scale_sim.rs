//! The Tail at Scale experiment: adaptive hedging cuts the 99.9th percentile of whole-request
//! latency by at least 10x for at most 5 % extra reads (on fewer requests than p99.9 needs, the
//! slowest request instead).
//!
//! The model is `SimConfig::default()`, the one `tailguard-demo tail-at-scale --sim` runs. A
//! debug build simulates its 20 million hedged key reads too slowly for a unit test, so the
//! fast test runs that same model on fewer requests (every other parameter untouched, measured
//! after the same warm-up); the full-size run is the last test, run in release builds
//! (`cargo test --release -p tailguard-tests --test tail_at_scale_sim`).

use std::time::Duration;

use tailguard_demo::tail_at_scale::sim::{run_modes, Mode, ModeReport, SimConfig};

/// The claim about the tail: p99.9 when there are enough requests to support it (10,000),
/// otherwise the slowest request.
fn tail(report: &ModeReport) -> Duration {
    report.p999.unwrap_or(report.max)
}

fn assert_the_claim(config: &SimConfig) -> (ModeReport, ModeReport) {
    let reports = run_modes(config, &[Mode::None, Mode::Adaptive]).unwrap();
    let (none, adaptive) = (reports[0].clone(), reports[1].clone());
    eprintln!("{none:?}\n{adaptive:?}");
    assert_eq!(none.requests, config.requests);
    assert_eq!(none.p999.is_some(), config.requests >= 10_000);
    // The model has the shape of the paper's: a fast median (each replica's one worker serves
    // the request's ~10 reads in turn: ~27 ms), a tail made of stalls.
    let p50 = |r: &ModeReport| r.p50.expect("the median is supported");
    assert!(p50(&none) < Duration::from_millis(40), "{none:?}");
    assert!(tail(&none) > Duration::from_millis(200), "{none:?}");
    assert_eq!(none.stats.hedges_sent, 0);
    // The claim.
    let cut = tail(&none).as_secs_f64() / tail(&adaptive).as_secs_f64();
    assert!(
        cut >= 10.0,
        "the tail cut only {cut:.1}x: {none:?} vs {adaptive:?}"
    );
    assert!(adaptive.extra_pct <= 5.0, "{adaptive:?}");
    assert!(
        adaptive.extra_pct <= 100.0 * config.budget_ratio + 1e-9,
        "the budget was respected: {adaptive:?}"
    );
    // Hedging must not hurt the median, nor leave keys unread.
    assert!(p50(&adaptive) <= p50(&none), "{adaptive:?}");
    assert_eq!(adaptive.timed_out_keys, 0);
    (none, adaptive)
}

#[test]
fn adaptive_hedging_cuts_p999_tenfold_on_the_default_model() {
    let config = SimConfig {
        requests: 250,
        ..SimConfig::default()
    };
    assert_the_claim(&config);
}

#[test]
fn p2c_with_replica_aware_hedging_is_no_worse_than_adaptive_hedging_alone_at_p99() {
    let config = SimConfig {
        requests: 1_000,
        ..SimConfig::default()
    };
    let reports = run_modes(&config, &[Mode::Adaptive, Mode::P2c]).unwrap();
    let (adaptive, p2c) = (&reports[0], &reports[1]);
    eprintln!("{adaptive:?}\n{p2c:?}");
    let p99 = |r: &ModeReport| r.p99.expect("1,000 requests support p99");
    assert!(p99(p2c) <= p99(adaptive), "{p2c:?} vs {adaptive:?}");
    assert!(
        p2c.extra_pct <= 100.0 * config.budget_ratio + 1e-9,
        "{p2c:?}"
    );
    assert_eq!(p2c.timed_out_keys, 0);
}

#[test]
fn tied_requests_beat_adaptive_hedging_at_p99_with_at_most_one_percent_duplicate_work() {
    // The default model (one worker per replica), where tied copies wait in queues that their
    // twins cancel. At full size: p99 0.74x adaptive's, p99.9 0.66x, 0.93 % duplicate work
    // (BENCHMARKS.md; p99.9 needs 10,000 requests: asserted in the full-size test below).
    let config = SimConfig {
        requests: 1_000,
        ..SimConfig::default()
    };
    let reports = run_modes(&config, &[Mode::Adaptive, Mode::Tied]).unwrap();
    let (adaptive, tied) = (&reports[0], &reports[1]);
    eprintln!("{adaptive:?}\n{tied:?}");
    let p99 = |r: &ModeReport| r.p99.expect("1,000 requests support p99");
    assert!(p99(tied) < p99(adaptive), "{tied:?} vs {adaptive:?}");
    assert!(tied.duplicate_work_pct <= 1.0, "{tied:?}");
    // Nearly every second copy is cancelled: it did no work.
    assert!(tied.extra_pct > 50.0, "{tied:?}");
    assert_eq!(tied.timed_out_keys, 0);
}

#[test]
fn the_simulation_is_deterministic() {
    let config = SimConfig {
        requests: 30,
        warmup_requests: 0,
        keys_per_request: 200,
        ..SimConfig::default()
    };
    // Every mode, each on its own thread: the same seed gives the same reports.
    let a = run_modes(&config, &Mode::ALL).unwrap();
    let b = run_modes(&config, &Mode::ALL).unwrap();
    assert_eq!(a, b);
    let other_seed = SimConfig {
        seed: config.seed + 1,
        ..config.clone()
    };
    let c = run_modes(&other_seed, &Mode::ALL).unwrap();
    for (a, c) in a.iter().zip(&c) {
        // And each mode's figures depend on the seed.
        assert_ne!(a, c, "{} did not depend on the seed", a.mode);
    }
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "full size (10,000 requests x 1,000 keys per mode): run with --release"
)]
fn adaptive_hedging_cuts_p999_tenfold_at_full_size() {
    let config = SimConfig::default();
    assert_eq!(config.requests, 10_000);
    assert_the_claim(&config);
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "full size (10,000 requests x 1,000 keys per mode): run with --release"
)]
fn tied_requests_with_a_backup_meet_issue_14s_p999_goal_at_full_size() {
    // Issue 14: tied p99.9 at most 0.7x adaptive hedging's, with at most 1 % duplicate work.
    // Seeds 2013, 2014, 2015 give 0.662x, 0.666x, 0.662x (0.93-0.94 % duplicate work); without
    // the backup (`tied_backup: None`) 0.77x, 0.84x, 0.71x: a read frozen mid-service by a
    // stall that began after it started held its request for the stall.
    let config = SimConfig::default();
    assert_eq!(config.requests, 10_000);
    let reports = run_modes(&config, &[Mode::Adaptive, Mode::Tied]).unwrap();
    let (adaptive, tied) = (&reports[0], &reports[1]);
    eprintln!("{adaptive:?}\n{tied:?}");
    let p999 = |r: &ModeReport| r.p999.expect("10,000 requests support p99.9").as_secs_f64();
    let ratio = p999(tied) / p999(adaptive);
    assert!(ratio <= 0.7, "{ratio:.3}: {tied:?} vs {adaptive:?}");
    assert!(tied.duplicate_work_pct <= 1.0, "{tied:?}");
    // Backups are few (a few hundred for ten million key reads), and some answer first.
    assert!(tied.backups.sent > 0 && tied.backups.won > 0, "{tied:?}");
    assert!(tied.backups.sent * 1000 < tied.stats.primaries, "{tied:?}");
    assert_eq!(tied.timed_out_keys, 0);
}
