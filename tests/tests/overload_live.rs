//! The overload experiment over real HTTP (a short run, generous bounds: real timing on a
//! shared machine): without a limit a backend offered 4x its capacity answers almost nothing in
//! time, with the adaptive limit it sheds the excess and answers in time, and the critical class
//! fares better than without a limit.

use std::time::Duration;

use tailguard_demo::overload::sim::SimConfig;
use tailguard_demo::overload::{live, Mode};
use tailguard_demo::rt::Runtime;

#[test]
fn a_short_live_run_has_the_shape_of_the_simulation() {
    let config = SimConfig {
        servers: 4,
        service: Duration::from_millis(20),
        deadline: Duration::from_millis(200),
        duration: Duration::from_secs(1),
        loads: vec![0.5, 4.0],
        ..SimConfig::default()
    };
    let rt = Runtime::new(2.try_into().unwrap());
    let report = rt.block_on(live::run(&config, rt.executor())).unwrap();
    eprintln!("{}", report.text());
    let at = |mode: Mode, i: usize| {
        let m = Mode::ALL.iter().position(|x| *x == mode).unwrap();
        report.points[m][i].clone()
    };
    let (none, adaptive) = (at(Mode::None, 1), at(Mode::Adaptive, 1));
    assert_eq!(none.rejected_pct, 0.0);
    assert!(adaptive.rejected_pct > 30.0, "{adaptive:?}");
    assert!(
        adaptive.goodput_rps > none.goodput_rps,
        "{adaptive:?} vs {none:?}"
    );
    assert!(
        adaptive.critical_goodput_pct > none.critical_goodput_pct,
        "{adaptive:?} vs {none:?}"
    );
    // At half load, nearly everything is answered in time whatever the mode.
    for mode in Mode::ALL {
        assert!(
            at(mode, 0).goodput_rps > 0.3 * config.capacity(),
            "{mode:?}"
        );
    }
}
