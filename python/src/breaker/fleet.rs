//! What `tailguard.fleet` reads from and does to a breaker, in its background thread: the
//! counts this instance contributes to the fleet's window, the breaker's own threshold applied
//! to counts summed over the fleet, and a trip. Never on a call's path.

use std::sync::OnceLock;
use std::time::Instant;

use tailguard::breaker::StateMachine;

use super::state_name;
use crate::clock::Clock;

/// `(state, since, age_ms, calls, failures, slow_calls)`: the state, an opaque id of the
/// instant it began (nanoseconds from a process-wide origin, so one period keeps one id), how
/// long ago that was in milliseconds, and the counts of the newest `window / instances` calls
/// of the window (all of a time window's).
pub(crate) type View = (&'static str, i64, u64, u64, u64, u64);

/// Where the `since` ids count from.
fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

fn signed_nanos(at: Instant) -> i64 {
    let origin = origin();
    match at.checked_duration_since(origin) {
        Some(after) => i64::try_from(after.as_nanos()).unwrap_or(i64::MAX),
        None => i64::try_from(origin.duration_since(at).as_nanos()).map_or(i64::MIN, |n| -n),
    }
}

pub(crate) fn view(machine: &StateMachine, clock: &Clock, instances: u64) -> View {
    let now = clock.now();
    let metrics = machine.metrics_at(now);
    let limit = machine
        .window_calls()
        .map_or(u64::MAX, |size| size.div_ceil(instances.max(1)));
    let (calls, failures, slow) = machine.newest_counts_at(now, limit);
    let age_ms =
        u64::try_from(now.saturating_duration_since(metrics.since).as_millis()).unwrap_or(u64::MAX);
    (
        state_name(metrics.state),
        signed_nanos(metrics.since),
        age_ms,
        calls,
        failures,
        slow,
    )
}
