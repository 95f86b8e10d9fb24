//! The worker pattern on a real executor: workers select on the shutdown signal between jobs,
//! `main` triggers shutdown and waits on the tracker with a deadline.
//!
//! Run: `cargo run -p tailguard --example graceful_workers`

use std::time::Duration;

use futures::future::{select, Either};
use tailguard::shutdown::{Shutdown, TaskTracker};
use tailguard::time::{AsyncIoTimer, Timer};

fn main() {
    let shutdown = Shutdown::new();
    let tracker = TaskTracker::new();

    smol::block_on(async {
        for id in 0..3u64 {
            let signal = shutdown.signal();
            let job = tracker.track_future(async move {
                let mut done = 0;
                loop {
                    // One job of (10 + id) ms; a job that has started always finishes.
                    let work = AsyncIoTimer.sleep(Duration::from_millis(10 + id));
                    match select(work, signal.clone()).await {
                        Either::Left(_) => done += 1,
                        Either::Right(_) => break,
                    }
                }
                println!("worker {id}: finished {done} jobs, stopping");
            });
            smol::spawn(job).detach();
        }

        AsyncIoTimer.sleep(Duration::from_millis(100)).await;
        println!("main: shutting down, {} workers running", tracker.len());
        shutdown.trigger();
        match tracker.graceful(Duration::from_secs(1)).await {
            Ok(()) => println!("main: every worker stopped cleanly"),
            Err(unfinished) => println!("main: {unfinished}"),
        }
    });
}
