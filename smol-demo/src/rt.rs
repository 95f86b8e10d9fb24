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
    // The calling thread is one of the `threads`; the runtime's workers are the others, and
    // stop (joined) when it drops at the end.
    let runtime = Runtime::with_workers(threads.get() - 1);
    let ex = runtime.executor().clone();
    smol::block_on(ex.run(main(ex.clone())))
}

/// The number of threads to use by default: one per available core.
pub fn default_threads() -> NonZeroUsize {
    std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN)
}

/// An executor served by background threads, for code that is not itself async: tests, and
/// experiments that start backends, a gateway and load side by side.
///
/// Spawn tasks with [`spawn`](Runtime::spawn) (or on [`executor`](Runtime::executor)) and wait
/// for a future with [`block_on`](Runtime::block_on). Dropping the runtime stops its threads;
/// tasks still running are dropped with the executor.
///
/// ```
/// use tailguard_demo::rt::Runtime;
///
/// let rt = Runtime::new(2.try_into().unwrap());
/// let task = rt.spawn(async { 6 * 7 });
/// assert_eq!(rt.block_on(task), 42);
/// ```
pub struct Runtime {
    ex: Exec,
    stop: Option<smol::channel::Sender<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Runtime {
    /// Starts `threads` worker threads running a fresh executor.
    pub fn new(threads: NonZeroUsize) -> Runtime {
        Runtime::with_workers(threads.get())
    }

    /// `workers` threads (possibly none: then only `block_on` callers that run the executor,
    /// as [`run`] does, make progress).
    fn with_workers(workers: usize) -> Runtime {
        let ex: Exec = Arc::new(Executor::new());
        let (stop, stopped) = smol::channel::bounded::<()>(1);
        let threads = (0..workers)
            .map(|i| {
                let ex = ex.clone();
                let stopped = stopped.clone();
                std::thread::Builder::new()
                    .name(format!("tailguard-rt-{i}"))
                    .spawn(move || {
                        // Ends when `stop` is dropped: recv then fails.
                        let _ = smol::block_on(ex.run(stopped.recv()));
                    })
                    .expect("spawning an executor thread")
            })
            .collect();
        Runtime {
            ex,
            stop: Some(stop),
            threads,
        }
    }

    /// The executor the worker threads run.
    pub fn executor(&self) -> &Exec {
        &self.ex
    }

    /// Spawns `future` on the executor; the task is cancelled if dropped, see
    /// [`smol::Task::detach`].
    pub fn spawn<T: Send + 'static>(
        &self,
        future: impl Future<Output = T> + Send + 'static,
    ) -> smol::Task<T> {
        self.ex.spawn(future)
    }

    /// Runs `future` on the calling thread until it completes; the workers keep running the
    /// executor's tasks meanwhile.
    pub fn block_on<T>(&self, future: impl Future<Output = T>) -> T {
        smol::block_on(future)
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        drop(self.stop.take());
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("threads", &self.threads.len())
            .finish()
    }
}
