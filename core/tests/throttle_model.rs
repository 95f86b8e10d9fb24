//! Model-based test of the client-side throttle: random sequences of requests (sent and
//! recorded accepted or not, or cancelled), bare records and advances of virtual time, run
//! against the real throttle and a reference model written from the module documentation: a
//! list of every counted request with its bucket, the window being the last `buckets` buckets
//! up to the newest, and the same seeded generator drawn once per call when the probability is
//! above zero. They must agree on every probability and every decision.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use tailguard::throttle::Throttle;
use tailguard::time::{ManualTimer, Timer};

#[derive(Clone, Debug)]
enum Op {
    /// Ask; if sent, record `accepted` (or drop the permit if `None`).
    Request(Option<bool>),
    /// Count a request without a permit.
    Record(bool),
    Advance {
        ms: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => prop_oneof![Just(Some(true)), Just(Some(false)), Just(None)].prop_map(Op::Request),
        2 => any::<bool>().prop_map(Op::Record),
        1 => (0u64..3_000).prop_map(|ms| Op::Advance { ms }),
    ]
}

struct Model {
    k: f64,
    bucket_ms: u64,
    buckets: u64,
    /// (bucket, accepted) of every counted request.
    counted: Vec<(u64, bool)>,
    head: u64,
    rng: fastrand::Rng,
}

impl Model {
    fn at(&mut self, ms: u64) {
        self.head = self.head.max(ms / self.bucket_ms);
    }

    fn probability(&self) -> f64 {
        let live = |&&(bucket, _): &&(u64, bool)| bucket + self.buckets > self.head;
        let requests = self.counted.iter().filter(live).count() as f64;
        let accepts = self.counted.iter().filter(live).filter(|c| c.1).count() as f64;
        ((requests - self.k * accepts) / (requests + 1.0)).max(0.0)
    }

    fn count(&mut self, accepted: bool) {
        self.counted.push((self.head, accepted));
    }
}

fn run(k_tenths: u32, buckets: u32, bucket_ms: u64, seed: u64, ops: Vec<Op>) {
    let k = f64::from(k_tenths) / 10.0;
    let timer = ManualTimer::new();
    let throttle = Throttle::builder()
        .k(k)
        .window(Duration::from_millis(bucket_ms * u64::from(buckets)))
        .buckets(buckets)
        .seed(seed)
        .build_with(timer.clone())
        .unwrap();
    let start: Instant = timer.now();
    let mut model = Model {
        k,
        bucket_ms,
        buckets: u64::from(buckets),
        counted: Vec::new(),
        head: 0,
        rng: fastrand::Rng::with_seed(seed),
    };
    let mut ms = 0;
    for op in ops {
        let now = start + Duration::from_millis(ms);
        model.at(ms);
        match op {
            Op::Advance { ms: by } => ms += by,
            Op::Record(accepted) => {
                throttle.record_at(accepted, now);
                model.count(accepted);
            }
            Op::Request(outcome) => {
                let p = model.probability();
                let refuse = p > 0.0 && model.rng.f64() < p;
                match (throttle.try_acquire_at(now), refuse) {
                    (Ok(permit), false) => {
                        if let Some(accepted) = outcome {
                            permit.record_at(accepted, now);
                            model.count(accepted);
                        }
                    }
                    (Err(e), true) => {
                        assert_eq!(e.probability(), p);
                        model.count(false);
                    }
                    (got, want) => panic!("throttle {got:?}, model refuses: {want}"),
                }
            }
        }
        assert_eq!(throttle.rejection_probability_at(now), model.probability());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn the_throttle_follows_the_model(
        k_tenths in 10u32..40,
        buckets in 1u32..8,
        bucket_ms in 1u64..1_000,
        seed in any::<u64>(),
        ops in prop::collection::vec(op(), 1..200),
    ) {
        run(k_tenths, buckets, bucket_ms, seed, ops);
    }
}
