//! The executor × timer matrix the runtime tests share: every scenario of the including file
//! (`scenarios(timer)`, an async fn taking any `Timer`) runs under smol (`block_on` and spawned),
//! the futures executor (`block_on` and a thread pool), and tokio (current- and multi-thread),
//! each with the `AsyncIoTimer`, the `FuturesTimer` and the `HeapTimer`.
//!
//! Include with `#[macro_use] mod executors;` and call `every_executor!(COPIES);` at the top level
//! of the test file, `COPIES` being how many copies of the scenarios run concurrently when
//! spawned. The file must have `scenarios`, and `AsyncIoTimer`, `FuturesTimer`, `HeapTimer`, `Timer`,
//! `Future` and `Duration` in scope.

macro_rules! on_every_timer {
    ($name:ident, |$timer:ident| $body:expr) => {
        mod $name {
            use super::*;

            #[test]
            fn async_io_timer() {
                let $timer = AsyncIoTimer;
                $body
            }

            #[test]
            fn futures_timer() {
                let $timer = FuturesTimer;
                $body
            }

            #[test]
            fn heap_timer() {
                let $timer = HeapTimer;
                $body
            }
        }
    };
}

macro_rules! every_executor {
    ($copies:expr) => {
        const COPIES: usize = $copies;

        /// Runs the scenarios several times concurrently, as spawned `Send` tasks.
        fn spawned<T: Timer>(
            timer: T,
            spawn: impl Fn(std::pin::Pin<Box<dyn Future<Output = ()> + Send>>),
        ) {
            for _ in 0..COPIES {
                spawn(Box::pin(scenarios(timer.clone())));
            }
        }

        on_every_timer!(smol_block_on, |timer| smol::block_on(scenarios(timer)));

        on_every_timer!(smol_spawned, |timer| {
            let tasks = std::sync::Mutex::new(Vec::new());
            spawned(timer, |f| tasks.lock().unwrap().push(smol::spawn(f)));
            smol::block_on(futures::future::join_all(tasks.into_inner().unwrap()));
        });

        on_every_timer!(futures_block_on, |timer| futures::executor::block_on(
            scenarios(timer)
        ));

        on_every_timer!(futures_thread_pool, |timer| {
            let pool = futures::executor::ThreadPool::builder()
                .pool_size(2)
                .create()
                .unwrap();
            let (tx, rx) = std::sync::mpsc::channel();
            spawned(timer, |f| {
                let tx = tx.clone();
                pool.spawn_ok(async move {
                    f.await;
                    tx.send(()).unwrap();
                })
            });
            for _ in 0..COPIES {
                rx.recv_timeout(Duration::from_secs(60))
                    .expect("task finished");
            }
        });

        on_every_timer!(tokio_current_thread, |timer| {
            tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap()
                .block_on(scenarios(timer))
        });

        on_every_timer!(tokio_multi_thread, |timer| {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .build()
                .unwrap();
            let handles = std::sync::Mutex::new(Vec::new());
            spawned(timer, |f| handles.lock().unwrap().push(rt.spawn(f)));
            rt.block_on(async {
                for h in handles.into_inner().unwrap() {
                    h.await.expect("task did not panic");
                }
            });
        });
    };
}
