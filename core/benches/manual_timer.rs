//! The virtual clock, `ManualTimer`: what a sleep costs to register, fire and cancel, with a
//! thousand others pending, as in a simulation of many timed requests (`tail-at-scale --sim`).
//!
//! Run: `cargo bench -p tailguard --bench manual_timer -- --warm-up-time 1 --measurement-time 3`
//!
//! Every row handles `N` sleeps per iteration; divide by `N` for the cost of one.

use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::task::{Context, Waker};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures::stream::{FuturesUnordered, StreamExt};
use tailguard::time::{ManualTimer, Timer};

const N: u64 = 1000;

/// `N` distinct offsets spread over about a second, in no particular order.
fn offsets() -> Vec<Duration> {
    (0..N)
        .map(|i| Duration::from_nanos((i * 7_919_993) % 997_000_003 + 1))
        .collect()
}

fn manual_timer(c: &mut Criterion) {
    let offsets = offsets();
    let last = *offsets.iter().max().unwrap();
    let mut cx = Context::from_waker(Waker::noop());
    let mut g = c.benchmark_group("manual_timer");
    g.throughput(Throughput::Elements(N));

    // Register every sleep, then fire them one deadline at a time (as block_on does: next
    // deadline, advance to it), then poll each to completion.
    g.bench_function("register, fire one deadline at a time, complete", |b| {
        let timer = ManualTimer::new();
        b.iter(|| {
            let base = timer.now();
            let mut sleeps: Vec<_> = offsets
                .iter()
                .map(|&d| timer.sleep_until(base + d))
                .collect();
            for sleep in &mut sleeps {
                assert!(Pin::new(sleep).poll(&mut cx).is_pending());
            }
            while let Some(deadline) = timer.next_deadline() {
                timer.advance_to(deadline);
            }
            for sleep in &mut sleeps {
                assert!(Pin::new(sleep).poll(&mut cx).is_ready());
            }
        })
    });

    // Register every sleep, then one advance past all of them.
    g.bench_function("register, fire all in one advance, complete", |b| {
        let timer = ManualTimer::new();
        b.iter(|| {
            let base = timer.now();
            let mut sleeps: Vec<_> = offsets
                .iter()
                .map(|&d| timer.sleep_until(base + d))
                .collect();
            for sleep in &mut sleeps {
                assert!(Pin::new(sleep).poll(&mut cx).is_pending());
            }
            timer.advance(last);
            for sleep in &mut sleeps {
                assert!(Pin::new(sleep).poll(&mut cx).is_ready());
            }
        })
    });

    // A hedge's delay or a timeout that is not needed: register, then drop before it fires,
    // with `N` other sleeps pending.
    g.bench_function("register and cancel, N others pending", |b| {
        let timer = ManualTimer::new();
        let base = timer.now();
        let mut others: Vec<_> = offsets
            .iter()
            .map(|&d| timer.sleep_until(base + Duration::from_secs(3600) + d))
            .collect();
        for sleep in &mut others {
            assert!(Pin::new(sleep).poll(&mut cx).is_pending());
        }
        b.iter(|| {
            for &d in &offsets {
                let mut sleep = timer.sleep_until(base + d);
                black_box(Pin::new(&mut sleep).poll(&mut cx).is_pending());
            }
        });
        drop(others);
    });

    // The simulation's shape: `N` tasks in a FuturesUnordered, each sleeping once, under
    // block_on, which jumps the clock from deadline to deadline.
    g.bench_function("block_on, N tasks each sleeping once", |b| {
        let timer = ManualTimer::new();
        b.iter(|| {
            let t = timer.clone();
            let base = timer.now();
            let offsets = &offsets;
            timer.block_on(async move {
                let mut tasks: FuturesUnordered<_> =
                    offsets.iter().map(|&d| t.sleep_until(base + d)).collect();
                let mut done = 0u64;
                while tasks.next().await.is_some() {
                    done += 1;
                }
                done
            })
        })
    });
    g.finish();
}

criterion_group!(benches, manual_timer);
criterion_main!(benches);
