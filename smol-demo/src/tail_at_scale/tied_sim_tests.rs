//! Tests of the `tied` mode of the simulation ([`tied_sim`](super)).

use super::super::sim::{run_modes, Mode, SimConfig};
use super::{Pair, Pairs};
use tailguard::tied::TiedCall;

fn pair(request: u32) -> Pair {
    Pair {
        call: TiedCall::new([0, 1], [0, 1]),
        request,
        hash: 0,
    }
}

#[test]
fn the_pair_window_finds_what_is_in_flight_whatever_order_reads_end_in() {
    let mut pairs = Pairs::default();
    for id in 10..20 {
        pairs.insert(id, pair(id as u32));
    }
    assert!(pairs.get(9).is_none() && pairs.get(20).is_none());
    // Ends out of order: the window keeps everything from the oldest read in flight.
    pairs.remove(12);
    pairs.remove(10);
    assert!(pairs.get(10).is_none() && pairs.get(12).is_none());
    assert_eq!(pairs.get(11).unwrap().request, 11);
    assert_eq!(pairs.slots.len(), 9);
    pairs.remove(11);
    assert_eq!((pairs.base, pairs.slots.len()), (13, 7));
    // Removing what is not there changes nothing.
    pairs.remove(11);
    pairs.remove(1_000);
    assert_eq!((pairs.base, pairs.slots.len()), (13, 7));
    // An insert below the window, and one past its end, both land.
    pairs.insert(5, pair(5));
    pairs.insert(30, pair(30));
    pairs.get_mut(30).unwrap().request = 31;
    assert_eq!(pairs.get(5).unwrap().request, 5);
    assert_eq!(pairs.get(30).unwrap().request, 31);
    for id in (13..20).chain([5, 30]) {
        pairs.remove(id);
    }
    assert!(pairs.slots.is_empty());
    // Empty, the window starts again at the next insert.
    pairs.insert(1 << 40, pair(7));
    assert_eq!(pairs.slots.len(), 1);
    assert_eq!(pairs.get(1 << 40).unwrap().request, 7);
}

fn small() -> SimConfig {
    SimConfig {
        requests: 1000,
        // Ten keys per replica and request, as in the default model.
        keys_per_request: 100,
        replicas: 10,
        // Stalls ten times as often as the default, so a few hundred requests meet some.
        stall_every: std::time::Duration::from_secs(200),
        ..SimConfig::default()
    }
}

#[test]
fn tied_requests_route_around_stalls_with_little_duplicate_work() {
    let config = small();
    let reports = run_modes(&config, &[Mode::None, Mode::Tied]).unwrap();
    let (none, tied) = (&reports[0], &reports[1]);
    assert_eq!(tied.requests, 1000);
    // Without tying, the slowest requests wait out stalls (hundreds of ms); tied, a
    // stalled replica's copy is cancelled and the twin answers.
    assert!(
        none.p99.unwrap() > std::time::Duration::from_millis(100),
        "{none:?}"
    );
    assert!(
        tied.p99.unwrap() < none.p99.unwrap() / 4,
        "{tied:?} vs {none:?}"
    );
    assert!(tied.duplicate_work_pct < 1.0, "{tied:?}");
    assert_eq!(none.duplicate_work_pct, 0.0);
    // Second copies are sent for the keys not answered within the tied delay.
    assert!(tied.extra_pct > 10.0 && tied.extra_pct <= 100.0, "{tied:?}");
}

#[test]
fn the_backup_frees_reads_frozen_mid_service_within_the_duplicate_work_bound() {
    // Reads twenty times as long as the default's (and stalls ten times as often): a
    // read in service is frozen by a stall that begins after it started about once in
    // 10,000, its twin already cancelled. The backup is due after 60 ms, three times the
    // mean service time.
    let ms = std::time::Duration::from_millis;
    let config = SimConfig {
        service_base: ms(10),
        service_mean_extra: ms(10),
        tied_backup: Some(ms(60)),
        ..small()
    };
    let without = SimConfig {
        tied_backup: None,
        ..config.clone()
    };
    let reports = run_modes(&config, &[Mode::Tied]).unwrap();
    let plain = &run_modes(&without, &[Mode::Tied]).unwrap()[0];
    let backed = &reports[0];
    eprintln!("{plain:?}\n{backed:?}");
    assert_eq!(plain.backups.sent, 0);
    // Backups were sent, and some answered first: the frozen reads' keys.
    assert!(
        backed.backups.sent > 0 && backed.backups.won > 0,
        "{backed:?}"
    );
    assert!(backed.backups.won <= backed.backups.sent);
    // Fewer of the slowest requests wait out a stall (seed 2013: p99 479 vs 568 ms, the
    // slowest 1.49 vs 2.17 s; the rest of the tail is queueing, and stalls of both
    // copies' replicas at once, which no backup is sent for: no copy started).
    let p99 = |r: &super::super::sim::ModeReport| r.p99.unwrap().as_secs_f64();
    assert!(p99(backed) < 0.9 * p99(plain), "{backed:?} vs {plain:?}");
    assert!(backed.max < plain.max * 3 / 4, "{backed:?} vs {plain:?}");
    // Every backup is extra work (the copy it backs up runs on), but few are sent: a
    // backup only goes out for a copy that started and overran 10 ms.
    let added = backed.duplicate_work_pct - plain.duplicate_work_pct;
    assert!(added > 0.0 && added < 0.5, "{added} {backed:?}");
    assert_eq!(
        backed.stats.hedges_sent,
        plain.stats.hedges_sent + backed.backups.sent,
        "extra reads count the backups"
    );
}

#[test]
fn the_tied_mode_is_deterministic_for_a_seed() {
    let config = small();
    let a = run_modes(&config, &[Mode::Tied]).unwrap();
    let b = run_modes(&config, &[Mode::Tied]).unwrap();
    assert_eq!(a, b);
}

#[test]
fn a_queue_that_overflows_fails_the_run() {
    // Reads of a second at one worker per replica, a request every 2 s with ~20 copies per
    // replica: the queues grow by ~18 reads a request, past their 256.
    let config = SimConfig {
        requests: 100,
        service_base: std::time::Duration::from_secs(1),
        ..small()
    };
    assert_eq!(super::queue_capacity(&config), 256);
    let err = run_modes(&config, &[Mode::Tied]).unwrap_err();
    assert_eq!(err.field(), "keys", "{err}");
    assert!(err.to_string().contains("256"), "{err}");
}

#[test]
fn a_cancel_slower_than_the_delay_duplicates_work() {
    // The cancel takes longer than the second copy's delay: idle replicas start both.
    let config = SimConfig {
        cancel_delay: std::time::Duration::from_millis(5),
        ..small()
    };
    let tied = &run_modes(&config, &[Mode::Tied]).unwrap()[0];
    assert!(tied.duplicate_work_pct > 10.0, "{tied:?}");
}
