//! What `tailguard.fleet` reads from and does to a breaker, in its background thread: the
//! counts this instance contributes to the fleet's window, the breaker's own threshold applied
//! to counts summed over the fleet, and a trip. Never on a call's path.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tailguard::breaker::StateMachine;

use super::state_name;
use crate::clock::Clock;

/// A breaker's `(calls, failures, slow_calls)`.
pub(crate) type Counts = (u64, u64, u64);

/// `(state, since, age_ms, published, judged)`: the state, an opaque id of the instant it
/// began (nanoseconds from a process-wide origin, so one period keeps one id), how long ago
/// that was in milliseconds, and this instance's part of the fleet's window as the Rust fleet
/// computes it (`tailguard-fleet`'s `ledger::fleet_part`): what to publish, and what to judge
/// with.
pub(crate) type View = (&'static str, i64, u64, Counts, Counts);

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

/// The view at the breaker's clock's now. A count window of `W` calls: its newest
/// `ceil(W / instances)` calls, both published and judged. A time window: published, the
/// counts `ahead` from now (what will still be in the window when the others read it, up to
/// an interval later); judged, the whole current window. `ahead` is in seconds (a negative or
/// unreadable value counts as 0).
pub(crate) fn view(machine: &StateMachine, clock: &Clock, instances: u64, ahead: f64) -> View {
    let now = clock.now();
    let metrics = machine.metrics_at(now);
    let (published, judged) = match machine.window_calls() {
        Some(size) => {
            let share = machine.newest_counts_at(now, size.div_ceil(instances.max(1)));
            (share, share)
        }
        None => {
            let ahead = Duration::try_from_secs_f64(ahead).unwrap_or(Duration::ZERO);
            let later = now.checked_add(ahead).unwrap_or(now);
            (
                machine.newest_counts_at(later, u64::MAX),
                machine.newest_counts_at(now, u64::MAX),
            )
        }
    };
    let age_ms =
        u64::try_from(now.saturating_duration_since(metrics.since).as_millis()).unwrap_or(u64::MAX);
    (
        state_name(metrics.state),
        signed_nanos(metrics.since),
        age_ms,
        published,
        judged,
    )
}
