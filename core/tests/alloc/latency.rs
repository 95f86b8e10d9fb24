//! Recording into and reading from a histogram never allocates after construction.
//!
//! Allocations are counted by the allocator in `support`.

use std::time::{Duration, Instant};

use crate::support::allocations_in;
use tailguard::latency::{LatencyHistogram, RollingHistogram};
use tailguard::time::process_nanos;

#[test]
fn histogram_record_read_merge_reset_do_not_allocate() {
    let a = LatencyHistogram::new();
    let b = LatencyHistogram::new();
    let n = allocations_in(|| {
        for i in 0..10_000u64 {
            a.record(Duration::from_nanos(i * 7919));
            b.record_nanos(i);
        }
        std::hint::black_box(a.quantile(0.99));
        std::hint::black_box((a.min(), a.max(), a.mean(), a.count()));
        a.merge(&b);
        b.reset();
    });
    assert_eq!(n, 0);
}

#[test]
fn rolling_record_and_read_do_not_allocate() {
    let t0 = Instant::now();
    let rolling = RollingHistogram::new(Duration::from_secs(1), 10).unwrap();
    let n = allocations_in(|| {
        for i in 0..5_000u64 {
            let now = t0 + Duration::from_millis(i);
            rolling.record_at(now, Duration::from_micros(i));
            rolling.record_nanos_at(process_nanos(now), Duration::from_micros(i));
            if i % 100 == 0 {
                std::hint::black_box(rolling.quantile_at(now, 0.95));
                std::hint::black_box(rolling.count_at(now));
            }
        }
    });
    assert_eq!(n, 0);
}
