//! The deadline experiment live (`tailguard-demo deadline`): a short run over real sockets on
//! 127.0.0.1, with generous bounds (a shared, loaded machine): both modes run and count what
//! they did; aware of the deadline, (almost) nothing finishes after it.

use std::time::Duration;

use tailguard_demo::deadline::live::{run_mode, LiveConfig};
use tailguard_demo::deadline::Mode;
use tailguard_demo::rt::Runtime;

#[test]
fn both_modes_run_and_the_aware_one_finishes_nothing_late() {
    let config = LiveConfig {
        rate: 50.0,
        duration: Duration::from_secs(1),
        ..LiveConfig::default()
    };
    let rt = Runtime::new(2.try_into().unwrap());
    let blind = rt
        .block_on(run_mode(rt.executor(), &config, Mode::Blind))
        .expect("the blind mode runs");
    let aware = rt
        .block_on(run_mode(rt.executor(), &config, Mode::Aware))
        .expect("the aware mode runs");
    eprintln!("{blind:?}\n{aware:?}");
    for r in [&blind, &aware] {
        assert_eq!(r.calls, 50, "{r:?}");
        assert!(r.attempts >= r.calls, "{r:?}");
        assert!(
            r.success_pct >= 50.0,
            "most callers are answered in time: {r:?}"
        );
        // Fifty calls cannot support a p99.
        assert_eq!(r.p99_ms, None);
    }
    // Cut at the deadline, an aware attempt answers after it only when its answer raced the
    // cut: a handful at most, even on a loaded machine.
    assert!(aware.late_pct <= 5.0, "{aware:?}");

    let bad = LiveConfig {
        rate: 0.0,
        ..LiveConfig::default()
    };
    assert_eq!(bad.validate().unwrap_err().field(), "rate");
}
