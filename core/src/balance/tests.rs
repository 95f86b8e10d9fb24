use std::time::{Duration, Instant};

use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Runs `calls` sequential calls through the balancer in virtual time, each to the endpoint it
/// picks, taking `latency[endpoint]`; returns the calls each endpoint got.
fn share(balancer: &Balancer<usize>, latency: &[Duration], calls: usize) -> Vec<usize> {
    let mut now = Instant::now();
    let mut got = vec![0; latency.len()];
    for _ in 0..calls {
        let i = balancer.pick_at(now).unwrap();
        got[*balancer.key(i).unwrap()] += 1;
        let load = balancer.start_at(i, now).unwrap();
        now += latency[*balancer.key(i).unwrap()];
        load.finish_at(now);
    }
    got
}

#[test]
fn builder_refuses_bad_values_by_field() {
    let field = |b: BalancerBuilder| b.build([1]).unwrap_err().field();
    assert_eq!(field(Balancer::builder().decay(Duration::ZERO)), "decay");
    assert_eq!(field(Balancer::builder().decay(Duration::MAX)), "decay");
    assert_eq!(field(Balancer::builder().slow_factor(0.5)), "slow_factor");
    assert_eq!(
        field(Balancer::builder().slow_factor(f64::NAN)),
        "slow_factor"
    );
    assert_eq!(
        field(Balancer::builder().initial_rtt(Duration::MAX)),
        "initial_rtt"
    );
}

#[test]
fn empty_and_single_sets() {
    let now = Instant::now();
    let mut balancer = Balancer::builder().seed(1).build(Vec::<u8>::new()).unwrap();
    assert_eq!(balancer.pick_at(now), None);
    assert!(balancer.start_at(0, now).is_none());
    assert_eq!(balancer.mean_latency_at(now), Duration::ZERO);
    assert_eq!(balancer.insert(9), 0);
    assert_eq!(balancer.insert(9), 0, "inserting twice keeps one");
    assert_eq!(balancer.pick_at(now), Some(0));
    assert!(balancer.remove(&9));
    assert!(!balancer.remove(&9));
    assert!(balancer.is_empty());
}

#[test]
fn a_much_slower_endpoint_gets_a_vanishing_share() {
    let balancer = Balancer::builder().seed(3).build(0..4usize).unwrap();
    let latency = [ms(2), ms(2), ms(2), ms(40)];
    let got = share(&balancer, &latency, 10_000);
    // Only its first call and the rare times the decay brings it back.
    assert!(got[3] < 50, "{got:?}");
    assert!(got[..3].iter().all(|&n| n > 2500), "{got:?}");
}

#[test]
fn equal_endpoints_share_evenly() {
    let balancer = Balancer::builder().seed(4).build(0..4usize).unwrap();
    let got = share(&balancer, &[ms(2); 4], 8_000);
    assert!(got.iter().all(|&n| (1000..=3000).contains(&n)), "{got:?}");
}

#[test]
fn outstanding_calls_steer_picks_away_before_any_answer() {
    let t0 = Instant::now();
    let balancer = Balancer::builder().seed(5).build(["a", "b"]).unwrap();
    // "a" holds three calls that have been out 30 ms: a stall, with no answer yet.
    let stuck: Vec<Load> = (0..3).map(|_| balancer.start_at(0, t0).unwrap()).collect();
    let now = t0 + ms(30);
    for _ in 0..20 {
        assert_eq!(balancer.pick_at(now), Some(1));
    }
    assert_eq!(balancer.pending(0), Some(3));
    assert!(balancer.is_slow_at(0, now));
    drop(stuck); // cancellation releases every one
    assert_eq!(balancer.pending(0), Some(0));
    assert!(!balancer.is_slow_at(0, now));
}

#[test]
fn a_cancelled_call_teaches_a_lower_bound() {
    let t0 = Instant::now();
    let balancer = Balancer::builder().seed(6).build(["a", "b"]).unwrap();
    balancer.start_at(0, t0).unwrap().cancel_at(t0 + ms(80));
    assert_eq!(balancer.latency_at(0, t0 + ms(80)), Some(ms(80)));
    assert_eq!(balancer.pending(0), Some(0));
    // A short lower bound teaches nothing.
    balancer
        .start_at(1, t0)
        .unwrap()
        .cancel_at(t0 + Duration::from_micros(10));
    assert_eq!(balancer.latency_at(1, t0), Some(ms(1)));
}

#[test]
fn pick_where_never_picks_an_excluded_endpoint() {
    let now = Instant::now();
    let balancer = Balancer::builder().seed(8).build(0..5usize).unwrap();
    for _ in 0..200 {
        let i = balancer
            .pick_where_at(now, |_, &k| k != 1 && k != 3)
            .unwrap();
        assert!(![1, 3].contains(balancer.key(i).unwrap()));
    }
    assert_eq!(balancer.pick_where_at(now, |_, &k| k == 4), Some(4));
    assert_eq!(balancer.pick_where_at(now, |_, _| false), None);
}

#[test]
fn seeded_balancers_pick_the_same_sequence() {
    let now = Instant::now();
    let picks = |seed| {
        let b = Balancer::builder().seed(seed).build(0..10usize).unwrap();
        (0..50).map(|_| b.pick_at(now).unwrap()).collect::<Vec<_>>()
    };
    assert_eq!(picks(11), picks(11));
    assert_ne!(picks(11), picks(12));
}

#[test]
fn the_set_can_change_between_picks_and_old_loads_end_cleanly() {
    let t0 = Instant::now();
    let mut balancer = Balancer::builder().seed(9).build(["a", "b", "c"]).unwrap();
    let on_b = balancer.start_at(1, t0).unwrap();
    assert!(balancer.remove(&"b"));
    assert_eq!(balancer.index_of(&"c"), Some(1));
    on_b.finish_at(t0 + ms(5)); // ends on the removed endpoint: no effect on the others
    assert_eq!(balancer.pending(1), Some(0));
    for _ in 0..50 {
        let i = balancer.pick_at(t0).unwrap();
        assert_ne!(balancer.key(i), Some(&"b"));
    }
    assert_eq!(balancer.insert("d"), 2);
    assert_eq!(balancer.len(), 3);
}

#[test]
fn slow_is_judged_against_the_mean() {
    let t0 = Instant::now();
    let balancer = Balancer::builder()
        .seed(10)
        .slow_factor(2.0)
        .build(0..4usize)
        .unwrap();
    for (i, latency) in [2, 2, 2, 20].into_iter().enumerate() {
        balancer
            .start_at(i, t0)
            .unwrap()
            .finish_at(t0 + ms(latency));
    }
    let now = t0 + ms(20);
    let mean = balancer.mean_latency_at(now);
    assert!(mean > ms(6) && mean < ms(7), "{mean:?}");
    assert!(balancer.is_slow_against_at(3, now, mean));
    assert!(!balancer.is_slow_against_at(0, now, mean));
    assert!(!balancer.is_slow_against_at(99, now, mean));
}
