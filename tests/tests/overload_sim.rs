//! The overload experiment in virtual time (`tailguard-demo overload --sim`): the shape of
//! the figures, the goals on the default model, and the same numbers for the same
//! seed.

use tailguard_demo::overload::sim::{self, Phase, SimConfig};
use tailguard_demo::overload::{simulate, Mode, Report};

fn point(report: &Report, mode: Mode, load: f64) -> &tailguard_demo::overload::Point {
    let m = Mode::ALL.iter().position(|x| *x == mode).unwrap();
    let l = report.loads.iter().position(|x| *x == load).unwrap();
    &report.points[m][l]
}

#[test]
fn the_default_model_meets_every_goal_and_none_collapses() {
    let report = simulate(&SimConfig::default());
    eprintln!("{}", report.text());
    for (met, sentence) in report.goals() {
        assert!(met, "goal missed: {sentence}");
    }
    let capacity = report.capacity;
    // No limit: fine at half load, collapse past capacity (answers arrive after their deadline).
    assert!(point(&report, Mode::None, 0.5).goodput_rps > 0.45 * capacity);
    assert!(point(&report, Mode::None, 2.0).goodput_rps < 0.2 * capacity);
    assert!(point(&report, Mode::None, 4.0).critical_goodput_pct < 10.0);
    // Static: goodput held, but every class shed alike.
    let static4 = point(&report, Mode::Static, 4.0);
    assert!(static4.goodput_rps > 0.9 * capacity);
    assert!(static4.critical_goodput_pct < 50.0);
    // Adaptive: shed what is above capacity, keep the critical class.
    let adaptive4 = point(&report, Mode::Adaptive, 4.0);
    assert!(adaptive4.rejected_pct > 60.0);
    for mode in [Mode::Static, Mode::Adaptive] {
        assert!(point(&report, mode, 0.5).rejected_pct < 5.0, "{mode:?}");
    }
    let recovery = report.recovery.clone().expect("a recovery run");
    assert!(
        recovery.limit_during_min < recovery.limit_before,
        "{recovery:?}"
    );

    let json = report.json();
    for mode in ["none", "static", "adaptive"] {
        for load in ["0.5x", "1x", "2x", "4x"] {
            for key in [
                "goodput_rps",
                "p99_ms",
                "rejected_pct",
                "critical_goodput_pct",
            ] {
                assert!(
                    json[mode][load][key].is_number(),
                    "{mode} {load} {key}: {json}"
                );
            }
        }
    }
    assert!(json["adaptive"]["recovery"]["recovered_after_s"].is_number());
}

#[test]
fn a_seed_gives_the_same_numbers() {
    let config = SimConfig {
        duration: std::time::Duration::from_secs(2),
        ..SimConfig::default()
    };
    assert_eq!(simulate(&config), simulate(&config));
    let other = SimConfig {
        seed: 99,
        ..config.clone()
    };
    assert_ne!(simulate(&config), simulate(&other));
}

#[test]
fn the_limit_follows_a_backend_twice_as_big() {
    let config = SimConfig {
        servers: 40,
        ..SimConfig::default()
    };
    let phases = [Phase {
        load: 2.0,
        duration: std::time::Duration::from_secs(5),
    }];
    let run = sim::run(&config, Mode::Adaptive, &phases);
    let last = run.limits.last().unwrap().1;
    assert!((40..=120).contains(&last), "limit {last} for 40 servers");
    assert!(run.point.goodput_rps > 0.9 * config.capacity());
}
