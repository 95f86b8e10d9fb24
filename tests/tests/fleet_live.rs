//! The fleet experiment over real sockets and a real redis-server (skipped without one unless
//! `TAILGUARD_REQUIRE_REDIS=1`, as `scripts/test` sets once it has installed one).
//!
//! Shapes, not times: in both modes every instance ends up rejecting the dead replica, no user
//! request fails (failover), and killing Redis fails no request, turns every fleet local while
//! it is down and shared again after.

use std::time::Duration;

use tailguard_demo::fleet::{self, FleetConfig};
use tailguard_demo::rt::Runtime;
use tailguard_fleet::local::{LocalRedis, INSTALL_HINT};

#[test]
fn the_fleet_experiment_runs_and_redis_dying_costs_no_request() {
    if LocalRedis::binary().is_none() {
        assert!(
            std::env::var_os("TAILGUARD_REQUIRE_REDIS").is_none(),
            "TAILGUARD_REQUIRE_REDIS is set but there is no redis-server"
        );
        eprintln!("skipped: no redis-server ({INSTALL_HINT})");
        return;
    }
    let config = FleetConfig {
        rate: 150.0,
        duration: Duration::from_millis(3000),
        minimum_calls: 20,
        window: 40,
        ..FleetConfig::default()
    };
    let rt = Runtime::new(2.try_into().unwrap());
    let report = rt
        .block_on(fleet::run(rt.executor(), &config, |_| {}))
        .expect("the experiment runs");
    eprintln!("{}", report.to_table(&config));
    for run in [&report.local, &report.shared] {
        assert!(run.dead_replica_calls > 0, "{report:?}");
        assert!(
            run.open_all_ms.is_some(),
            "every instance opened: {report:?}"
        );
        assert_eq!(run.errors.iter().sum::<u64>(), 0, "{report:?}");
    }
    let killed = &report.redis_killed;
    assert_eq!(killed.errors, [0, 0, 0], "{report:?}");
    assert!(killed.requests.iter().all(|&n| n > 0), "{report:?}");
    assert!(killed.syncs_failed > 0, "{report:?}");
    assert!(killed.local_during, "{report:?}");
    assert!(killed.shared_after, "{report:?}");
    let json = report.to_json(&config);
    assert!(json["shared"]["dead_replica_calls"].is_u64(), "{json}");
    assert!(
        json["redis_killed"]["phases"]["during"]["errors"] == 0,
        "{json}"
    );
}
