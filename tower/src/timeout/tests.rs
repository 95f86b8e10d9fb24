use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tailguard::time::ManualTimer;
use tailguard::timeout::Elapsed;
use tower::{Layer, ServiceExt};

use super::*;

/// Sets its flag when dropped: proves a future was cancelled.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[test]
fn a_ready_response_arms_no_timer() {
    let timer = ManualTimer::new();
    let service = TimeoutLayer::new_with(timer.clone(), Duration::from_millis(10)).layer(
        tower::service_fn(|n: u32| async move { Ok::<_, std::io::Error>(n + 1) }),
    );
    assert_eq!(timer.block_on(service.oneshot(1)).unwrap(), 2);
    assert_eq!(timer.pending_sleeps(), 0);
    assert_eq!(timer.elapsed(), Duration::ZERO);
}

#[test]
fn a_slow_call_fails_with_elapsed_at_the_limit_and_is_dropped() {
    let timer = ManualTimer::new();
    let dropped = Arc::new(AtomicBool::new(false));
    let (sleeper, flag) = (timer.clone(), dropped.clone());
    let slow = tower::service_fn(move |_: ()| {
        let sleep = sleeper.sleep(Duration::from_secs(5));
        let guard = DropFlag(flag.clone());
        async move {
            sleep.await;
            drop(guard);
            Ok::<_, std::io::Error>(())
        }
    });
    let service = Timeout::new_with(timer.clone(), slow, Duration::from_millis(250));
    let err = timer.block_on(service.oneshot(())).unwrap_err();
    assert!(err.is::<Elapsed>(), "{err}");
    assert_eq!(timer.elapsed(), Duration::from_millis(250));
    assert!(dropped.load(Ordering::SeqCst));
    assert_eq!(timer.pending_sleeps(), 0);
}

#[test]
fn the_inner_error_passes_through_boxed() {
    let timer = ManualTimer::new();
    let failing = tower::service_fn(|_: ()| async { Err::<(), _>(std::io::Error::other("boom")) });
    let service = Timeout::new_with(timer.clone(), failing, Duration::from_secs(1));
    let err = timer.block_on(service.oneshot(())).unwrap_err();
    assert_eq!(
        err.downcast_ref::<std::io::Error>().unwrap().to_string(),
        "boom"
    );
}
