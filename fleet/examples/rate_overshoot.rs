//! Measures how closely a fleet of rate limiters shared through Redis holds its configured
//! rate: N instances in threads, each asking for more than the whole fleet's rate, against a
//! redis-server this example starts on 127.0.0.1 (and stops). Prints one JSON object.
//!
//! `cargo run -p tailguard-fleet --example rate_overshoot -- [instances] [rate] [interval_ms] [window_s]`
//! (defaults 3, 300, 50, 10).

use std::time::Duration;

use tailguard_fleet::local::LocalRedis;

#[path = "../tests/common/rate_load.rs"]
mod rate_load;

fn main() -> Result<(), String> {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().map_err(|e| format!("{a:?}: {e}")))
        .collect::<Result<_, _>>()?;
    let arg = |i: usize, default: u64| args.get(i).copied().unwrap_or(default);
    let instances = usize::try_from(arg(0, 3)).map_err(|e| e.to_string())?;
    let rate = u32::try_from(arg(1, 300)).map_err(|e| e.to_string())?;
    let interval = Duration::from_millis(arg(2, 50));
    let window = Duration::from_secs(arg(3, 10));
    let redis = LocalRedis::start()?;
    // Uneven demand: the first instance asks twice as often as the others; each asks for at
    // least 1,000 calls a second.
    let attempts_per_ms = (0..instances).map(|i| if i == 0 { 2 } else { 1 }).collect();
    let load = rate_load::Load {
        url: redis.url(),
        rate,
        burst: 2,
        interval,
        attempts_per_ms,
        warm_up: Duration::from_millis(500),
        window,
        namespace: "overshoot".to_owned(),
    };
    let m = rate_load::run(&load);
    let list = |v: Vec<String>| v.join(", ");
    println!(
        "{{\"instances\": {instances}, \"rate\": {rate}, \"interval_ms\": {}, \"window_s\": {}, \
         \"admitted\": {}, \"allowed\": {}, \"overshoot_pct\": {:.2}, \"per_instance\": [{}], \
         \"shares\": [{}]}}",
        interval.as_millis(),
        window.as_secs(),
        m.admitted,
        m.allowed,
        m.overshoot_pct,
        list(m.per_instance.iter().map(u64::to_string).collect()),
        list(m.shares.iter().map(|s| format!("{s:.3}")).collect()),
    );
    Ok(())
}
