//! The sans-IO half of sharing one breaker: what to publish, and whether the fleet's entries
//! say to trip. The background thread feeds it the breaker's metrics, the hash it read and the
//! wall-clock time; no IO and no clock here.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tailguard::breaker::{Metrics, State, StateMachine};

use crate::entry::Entry;

/// A breaker's `(calls, failures, slow_calls)`: those this instance contributes to the fleet's
/// window (its newest `window / instances` calls, see `StateMachine::newest_counts_at`).
pub(crate) type Counts = (u64, u64, u64);

/// This instance's part of the fleet's window at `now`, as `(published, judged)`: what it
/// publishes for the others, and what it adds to theirs when it judges.
///
/// - A count window of `W` calls: its newest `ceil(W / instances)` calls, both, so the fleet
///   judges the last `W` calls across the fleet.
/// - A time window of `W`: the fleet's window is the last `W` of time, but the others read a
///   value up to one `interval` (`ahead`) after it was published. So it publishes only the
///   part of its window that is still within the window `ahead` from now (the counts at
///   `now + ahead`: the buckets that will not have left by then; cut at the window's bucket
///   granularity), so no reader counts calls older than its own window. It judges with its
///   whole current window.
pub(crate) fn fleet_part(
    machine: &StateMachine,
    now: Instant,
    instances: u64,
    ahead: Duration,
) -> (Counts, Counts) {
    match machine.window_calls() {
        Some(size) => {
            let share = machine.newest_counts_at(now, size.div_ceil(instances.max(1)));
            (share, share)
        }
        None => (
            machine.newest_counts_at(now + ahead, u64::MAX),
            machine.newest_counts_at(now, u64::MAX),
        ),
    }
}

/// Why the fleet trips a breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Why {
    /// The failure (or slow-call) rate summed over the fresh entries crossed the threshold.
    FleetRate,
    /// Another instance's breaker opened on its own evidence.
    PeerOpened,
    /// Another instance's breaker opened on the fleet's failure rate (always followed: the
    /// rate it saw may no longer be visible once instances open and stop counting).
    PeerSawRate,
}

/// What a read of the hash decided.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Verdict {
    /// Trip the local breaker, and why.
    pub(crate) trip: Option<Why>,
    /// Fields too old (or unreadable) to count: remove them.
    pub(crate) stale: Vec<String>,
    /// Other instances with fresh entries.
    pub(crate) peers: usize,
}

/// How a read is judged: who reads, when, and the fleet's settings.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rules<'a> {
    /// The reader's own field, never counted twice.
    pub(crate) me: &'a str,
    /// The wall-clock time of the read.
    pub(crate) now_ms: u64,
    /// Entries older than this are stale.
    pub(crate) stale_after_ms: u64,
    /// Whether peers' own openings trip this breaker.
    pub(crate) follow_open: bool,
}

/// One shared breaker's memory between syncs.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    /// When the fleet last tripped this breaker (its `since` right after), and why: an opening
    /// that followed another instance is not published (openings do not echo), one on the
    /// fleet's rate is.
    tripped: Option<(Instant, Why)>,
    /// This instance's current own open period: its `since`, and the id published for it.
    own_open: Option<(Instant, u64)>,
    /// The last opening id seen from each peer, so one opening trips this breaker once.
    seen_open: HashMap<String, u64>,
}

impl Ledger {
    /// What to publish for a breaker showing `metrics` at `now` (its clock), at `now_ms`
    /// (the wall clock), contributing `own` to the fleet's window.
    pub(crate) fn entry(
        &mut self,
        metrics: &Metrics,
        own: Counts,
        now: Instant,
        now_ms: u64,
    ) -> Entry {
        let counting = matches!(metrics.state, State::Closed | State::Disabled);
        let (published, by_rate) = match self.tripped {
            _ if metrics.state != State::Open => (false, false),
            Some((since, why)) if since == metrics.since => {
                (why == Why::FleetRate, why == Why::FleetRate)
            }
            _ => (true, false),
        };
        let opened = if published {
            match self.own_open {
                Some((since, id)) if since == metrics.since => id,
                _ => {
                    let age = now.saturating_duration_since(metrics.since).as_millis();
                    let id = now_ms
                        .saturating_sub(u64::try_from(age).unwrap_or(u64::MAX))
                        .max(1);
                    self.own_open = Some((metrics.since, id));
                    id
                }
            }
        } else {
            self.own_open = None;
            0
        };
        Entry {
            at_ms: now_ms,
            calls: if counting { own.0 } else { 0 },
            failures: if counting { own.1 } else { 0 },
            slow: if counting { own.2 } else { 0 },
            opened,
            by_rate,
        }
    }

    /// Judges the hash read (field = instance id) against the local breaker's `metrics` by
    /// `rules`: entries older than `stale_after_ms` are ignored and listed for removal;
    /// `crosses(calls, failures, slow)` is the breaker's own threshold.
    pub(crate) fn judge(
        &mut self,
        metrics: &Metrics,
        own: Counts,
        hash: &HashMap<String, String>,
        rules: Rules<'_>,
        crosses: impl Fn(u64, u64, u64) -> bool,
    ) -> Verdict {
        let Rules {
            me,
            now_ms,
            stale_after_ms,
            follow_open,
        } = rules;
        let mut verdict = Verdict::default();
        let (mut calls, mut failures, mut slow) = own;
        let mut new_opening = None;
        for (id, value) in hash {
            if id == me {
                continue;
            }
            let Some(entry) = Entry::decode(value) else {
                verdict.stale.push(id.clone());
                continue;
            };
            if !crate::value::is_fresh(entry.at_ms, now_ms, stale_after_ms) {
                verdict.stale.push(id.clone());
                self.seen_open.remove(id);
                continue;
            }
            verdict.peers += 1;
            // Saturating: a peer's value is not trusted to leave room for the sum.
            calls = calls.saturating_add(entry.calls);
            failures = failures.saturating_add(entry.failures);
            slow = slow.saturating_add(entry.slow);
            if entry.opened != 0 && self.seen_open.get(id) != Some(&entry.opened) {
                if entry.by_rate {
                    new_opening = Some(Why::PeerSawRate);
                } else if follow_open && new_opening.is_none() {
                    new_opening = Some(Why::PeerOpened);
                }
                self.seen_open.insert(id.clone(), entry.opened);
            }
        }
        self.seen_open.retain(|id, _| hash.contains_key(id));
        if metrics.state != State::Closed || verdict.peers == 0 {
            return verdict;
        }
        if crosses(calls, failures, slow) {
            verdict.trip = Some(Why::FleetRate);
        } else {
            verdict.trip = new_opening;
        }
        verdict
    }

    /// The fleet opened the breaker for `why`; it now shows `since`.
    pub(crate) fn tripped(&mut self, since: Instant, why: Why) {
        self.tripped = Some((since, why));
    }
}

#[cfg(test)]
mod tests {
    use tailguard::breaker::{CircuitBreakerBuilder, Outcome};

    use super::*;

    const SEC: Duration = Duration::from_secs(1);
    const STALE: u64 = 3_000;

    fn machine(t0: Instant) -> StateMachine {
        CircuitBreakerBuilder::new()
            .count_window(10)
            .minimum_calls(10)
            .failure_rate(0.5)
            .open_duration(10 * SEC)
            .half_open_calls(1)
            .stripes(1)
            .build_state_machine_at(t0)
            .unwrap()
    }

    fn calls(m: &StateMachine, n: usize, outcome: Outcome, now: Instant) {
        for _ in 0..n {
            let ticket = m.try_acquire_at(now).unwrap();
            m.record_at(ticket, outcome, now);
        }
    }

    fn whole(m: &StateMachine, now: Instant) -> Counts {
        m.newest_counts_at(now, u64::MAX)
    }

    fn rules(now_ms: u64, follow_open: bool) -> Rules<'static> {
        Rules {
            me: "me",
            now_ms,
            stale_after_ms: STALE,
            follow_open,
        }
    }

    fn hash(entries: &[(&str, Entry)]) -> HashMap<String, String> {
        entries
            .iter()
            .map(|(id, entry)| ((*id).to_owned(), entry.encode()))
            .collect()
    }

    fn entry(at_ms: u64, calls: u64, failures: u64, opened: u64) -> Entry {
        Entry {
            at_ms,
            calls,
            failures,
            slow: 0,
            opened,
            by_rate: false,
        }
    }

    fn judge(
        ledger: &mut Ledger,
        m: &StateMachine,
        now: Instant,
        h: &HashMap<String, String>,
        now_ms: u64,
    ) -> Verdict {
        ledger.judge(
            &m.metrics_at(now),
            whole(m, now),
            h,
            rules(now_ms, true),
            |c, f, s| m.crosses_threshold(c, f, s),
        )
    }

    #[test]
    fn huge_counts_from_peers_saturate_instead_of_overflowing() {
        // Values another instance wrote near `u64::MAX`: the sum must neither panic nor wrap
        // to a small count (which would hide the failures).
        let t0 = Instant::now();
        let m = machine(t0);
        let h = hash(&[
            ("a", entry(10_000, u64::MAX, u64::MAX, 0)),
            ("b", entry(10_000, u64::MAX, u64::MAX, 0)),
        ]);
        let verdict = judge(&mut Ledger::default(), &m, t0, &h, 10_000);
        assert_eq!((verdict.trip, verdict.peers), (Some(Why::FleetRate), 2));
    }

    #[test]
    fn an_entry_from_far_ahead_is_stale_and_removed_not_counted_forever() {
        // All failures, dated a minute (or an eternity) ahead of the reader's clock: it would
        // never age out, so it counts no more than a minute-old one.
        let t0 = Instant::now();
        let m = machine(t0);
        for at_ms in [70_000, u64::MAX] {
            let h = hash(&[("ghost", entry(at_ms, 100, 100, 0))]);
            let verdict = judge(&mut Ledger::default(), &m, t0, &h, 10_000);
            assert_eq!((verdict.trip, verdict.peers), (None, 0));
            assert_eq!(verdict.stale, ["ghost"]);
        }
    }

    #[test]
    fn a_time_window_publishes_only_what_stays_within_the_window_until_read() {
        // A 1 s window in ten buckets of 100 ms; the others read up to 100 ms later.
        let t0 = Instant::now();
        let m = CircuitBreakerBuilder::new()
            .time_window(SEC, 10)
            .minimum_calls(10)
            .build_state_machine_at(t0)
            .unwrap();
        calls(&m, 5, Outcome::Failure, t0);
        let later = t0 + Duration::from_millis(500);
        calls(&m, 5, Outcome::Success, later);
        let ahead = Duration::from_millis(100);
        // At 850 ms every call is still in the window 100 ms on: all published.
        let at = t0 + Duration::from_millis(850);
        assert_eq!(fleet_part(&m, at, 3, ahead), ((10, 5, 0), (10, 5, 0)));
        // At 950 ms the window still holds the failures, but not 100 ms on: a reader would
        // count them after they left its own window. Published: the successes only.
        let at = t0 + Duration::from_millis(950);
        assert_eq!(m.newest_counts_at(at, u64::MAX), (10, 5, 0));
        assert_eq!(fleet_part(&m, at, 3, ahead), ((5, 0, 0), (10, 5, 0)));
        // A count window is cut by calls, not time: its newest W / instances, both ways.
        let counted = machine(t0);
        calls(&counted, 6, Outcome::Failure, t0);
        assert_eq!(fleet_part(&counted, at, 3, ahead), ((4, 4, 0), (4, 4, 0)));
    }

    #[test]
    fn the_fleets_failure_rate_trips_where_no_instance_alone_would() {
        let t0 = Instant::now();
        let m = machine(t0);
        // Locally 4 failures in 6 calls: under minimum_calls, so the breaker stays closed.
        calls(&m, 2, Outcome::Success, t0);
        calls(&m, 4, Outcome::Failure, t0);
        assert_eq!(m.state(), State::Closed);
        let mut ledger = Ledger::default();
        let quiet = hash(&[("b", entry(1_000, 6, 1, 0))]); // 12 calls, 5 failures: under 50%
        assert_eq!(judge(&mut ledger, &m, t0, &quiet, 1_000).trip, None);
        let bad = hash(&[("b", entry(1_000, 6, 2, 0))]); // 12 calls, 6 failures
        let verdict = judge(&mut ledger, &m, t0, &bad, 1_000);
        assert_eq!((verdict.trip, verdict.peers), (Some(Why::FleetRate), 1));
    }

    #[test]
    fn stale_and_unreadable_entries_do_not_count_and_are_listed_for_removal() {
        let t0 = Instant::now();
        let m = machine(t0);
        calls(&m, 4, Outcome::Failure, t0);
        let mut ledger = Ledger::default();
        let mut h = hash(&[
            ("old", entry(1_000, 10, 10, 0)),
            ("me", entry(5_000, 99, 99, 0)), // our own field: never counted twice
        ]);
        h.insert("junk".to_owned(), "v9".to_owned());
        let verdict = judge(&mut ledger, &m, t0, &h, 1_000 + STALE + 1);
        assert_eq!(verdict.trip, None);
        assert_eq!(verdict.peers, 0);
        let mut stale = verdict.stale;
        stale.sort();
        assert_eq!(stale, ["junk", "old"]);
        // Exactly at the limit, it still counts.
        let verdict = judge(&mut ledger, &m, t0, &h, 1_000 + STALE);
        assert_eq!(verdict.trip, Some(Why::FleetRate));
    }

    #[test]
    fn a_peers_opening_trips_once_and_a_new_opening_trips_again() {
        let t0 = Instant::now();
        let m = machine(t0);
        let mut ledger = Ledger::default();
        let h = hash(&[("b", entry(1_000, 0, 0, 900))]);
        assert_eq!(
            judge(&mut ledger, &m, t0, &h, 1_000).trip,
            Some(Why::PeerOpened)
        );
        assert!(m.trip_at(t0));
        ledger.tripped(m.metrics_at(t0).since, Why::PeerOpened);
        // Our probe succeeds and closes the breaker; b still shows the same opening: no trip.
        let later = t0 + 10 * SEC;
        let probe = m.try_acquire_at(later).unwrap();
        m.record_at(probe, Outcome::Success, later);
        assert_eq!(m.state(), State::Closed);
        let h = hash(&[("b", entry(11_000, 0, 0, 900))]);
        assert_eq!(judge(&mut ledger, &m, later, &h, 11_000).trip, None);
        // b reopens (its probe failed): a new opening.
        let h = hash(&[("b", entry(12_000, 0, 0, 11_500))]);
        assert_eq!(
            judge(&mut ledger, &m, later, &h, 12_000).trip,
            Some(Why::PeerOpened)
        );
    }

    #[test]
    fn openings_seen_while_not_closed_do_not_trip_later() {
        let t0 = Instant::now();
        let m = machine(t0);
        calls(&m, 10, Outcome::Failure, t0);
        assert_eq!(m.state(), State::Open);
        let mut ledger = Ledger::default();
        let h = hash(&[("b", entry(1_000, 0, 0, 900))]);
        assert_eq!(judge(&mut ledger, &m, t0, &h, 1_000).trip, None);
        let later = t0 + 10 * SEC;
        let probe = m.try_acquire_at(later).unwrap();
        m.record_at(probe, Outcome::Success, later);
        assert_eq!(judge(&mut ledger, &m, later, &h, 1_500).trip, None);
    }

    #[test]
    fn following_openings_can_be_switched_off() {
        let t0 = Instant::now();
        let m = machine(t0);
        let mut ledger = Ledger::default();
        let h = hash(&[("b", entry(1_000, 0, 0, 900))]);
        let verdict = ledger.judge(
            &m.metrics_at(t0),
            whole(&m, t0),
            &h,
            rules(1_000, false),
            |c, f, s| m.crosses_threshold(c, f, s),
        );
        assert_eq!(verdict.trip, None);
    }

    #[test]
    fn the_entry_publishes_counts_only_while_closed_and_openings_only_of_its_own() {
        let t0 = Instant::now();
        let m = machine(t0);
        let mut ledger = Ledger::default();
        calls(&m, 3, Outcome::Failure, t0);
        let e = ledger.entry(&m.metrics_at(t0), whole(&m, t0), t0, 50_000);
        assert_eq!((e.at_ms, e.calls, e.failures, e.opened), (50_000, 3, 3, 0));
        // Open on its own window, 2 s ago: published with the wall-clock time it opened,
        // the same id on every sync.
        calls(&m, 7, Outcome::Failure, t0);
        let e = ledger.entry(
            &m.metrics_at(t0 + 2 * SEC),
            whole(&m, t0 + 2 * SEC),
            t0 + 2 * SEC,
            52_000,
        );
        assert_eq!((e.calls, e.failures, e.opened), (0, 0, 50_000));
        let e = ledger.entry(
            &m.metrics_at(t0 + 3 * SEC),
            whole(&m, t0 + 3 * SEC),
            t0 + 3 * SEC,
            53_001,
        );
        assert_eq!(e.opened, 50_000);
        // Tripped by the fleet: not published as an opening.
        let m = machine(t0);
        let mut ledger = Ledger::default();
        assert!(m.trip_at(t0));
        ledger.tripped(m.metrics_at(t0).since, Why::PeerOpened);
        assert_eq!(
            ledger
                .entry(&m.metrics_at(t0), whole(&m, t0), t0, 50_000)
                .opened,
            0
        );
        // Tripped on the fleet's rate: published, marked so, for the others to follow.
        let m = machine(t0);
        let mut ledger = Ledger::default();
        assert!(m.trip_at(t0));
        ledger.tripped(m.metrics_at(t0).since, Why::FleetRate);
        let e = ledger.entry(&m.metrics_at(t0), whole(&m, t0), t0, 50_000);
        assert_eq!((e.opened, e.by_rate), (50_000, true));
    }

    #[test]
    fn an_opening_on_the_fleets_rate_is_followed_even_when_openings_are_not() {
        // Once one instance opens on the fleet's rate it stops counting, and the rest may no
        // longer see the rate: they follow its opening instead.
        let t0 = Instant::now();
        let m = machine(t0);
        let mut ledger = Ledger::default();
        let mut by_rate = entry(1_000, 0, 0, 900);
        by_rate.by_rate = true;
        let h = hash(&[("b", by_rate)]);
        let verdict = ledger.judge(
            &m.metrics_at(t0),
            whole(&m, t0),
            &h,
            rules(1_000, false),
            |c, f, s| m.crosses_threshold(c, f, s),
        );
        assert_eq!(verdict.trip, Some(Why::PeerSawRate));
    }
}
