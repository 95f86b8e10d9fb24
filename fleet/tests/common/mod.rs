//! What the fleet's tests against a real redis-server share: starting it (or skipping), and
//! waiting for a condition with real-time patience.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use tailguard_fleet::local::{LocalRedis, INSTALL_HINT};

pub mod rate_load;

/// How long a condition may take on a loaded machine.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A redis-server on a free port, or `None` (skipped, with a message) if there is none and
/// `TAILGUARD_REQUIRE_REDIS` is not set.
pub fn redis() -> Option<LocalRedis> {
    match LocalRedis::start() {
        Ok(redis) => Some(redis),
        Err(why) if std::env::var_os("TAILGUARD_REQUIRE_REDIS").is_none() => {
            eprintln!("skipped: {why} ({INSTALL_HINT})");
            None
        }
        Err(why) => panic!("TAILGUARD_REQUIRE_REDIS is set, but: {why}"),
    }
}

/// Waits (up to `PATIENCE`) until `done`; whether it came.
pub fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let give_up = Instant::now() + PATIENCE;
    while Instant::now() < give_up {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    done()
}
