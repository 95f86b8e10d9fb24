//! Running futures on a multi-threaded smol executor.

use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::Arc;

use smol::Executor;

/// The executor every server task runs on.
pub type Exec = Arc<Executor<'static>>;

/// Runs `main` to completion on a fresh executor served by `threads` threads (the calling thread
/// included). Tasks that `main` spawns on the executor it is given keep running until `main`
/// returns; then the worker threads stop and unfinished tasks are dropped.
pub fn run<T, F, Fut>(threads: NonZeroUsize, main: F) -> T
where
    F: FnOnce(Exec) -> Fut,
    Fut: Future<Output = T>,
{
    let ex: Exec = Arc::new(Executor::new());
    let (stop, stopped) = smol::channel::bounded::<()>(1);
    std::thread::scope(|scope| {
        for i in 1..threads.get() {
            let ex = ex.clone();
            let stopped = stopped.clone();
            std::thread::Builder::new()
                .name(format!("tailguard-worker-{i}"))
                .spawn_scoped(scope, move || {
                    // Ends when `stop` is dropped: recv then fails.
                    let _ = smol::block_on(ex.run(stopped.recv()));
                })
                .expect("spawning an executor thread");
        }
        let output = smol::block_on(ex.run(main(ex.clone())));
        drop(stop);
        output
    })
}

/// The number of threads to use by default: one per available core.
pub fn default_threads() -> NonZeroUsize {
    std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN)
}
