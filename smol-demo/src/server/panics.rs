//! A panic in a request handler ends that request, not the connection or the server.
//!
//! [`Guarded`] runs a handler future inside [`catch_unwind`](std::panic::catch_unwind): a panic
//! becomes an `Err` the caller answers with 500. The process's panic hook would still print the
//! panic with a full backtrace when `RUST_BACKTRACE` is set, once per request, so [`install`]
//! wraps the hook once per process: a panic raised while a handler is polled on this thread is
//! logged as one line (where and why) instead; every other panic goes to the previous hook
//! unchanged.

use std::any::Any;
use std::cell::Cell;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Once;
use std::task::{Context, Poll};

thread_local! {
    /// Whether this thread is polling a handler right now.
    static IN_HANDLER: Cell<bool> = const { Cell::new(false) };
}

/// Wraps the panic hook (once per process) so that handler panics are logged as one line.
pub(super) fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if IN_HANDLER.with(Cell::get) {
                let place = info
                    .location()
                    .map_or_else(String::new, |l| format!(" at {}:{}", l.file(), l.line()));
                super::log(format_args!(
                    "a request handler panicked{place}: {}; answered 500",
                    message(info.payload())
                ));
            } else {
                previous(info);
            }
        }));
    });
}

/// The text of a panic's payload (`panic!("...")` gives a `&str` or a `String`).
fn message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// A handler future whose panic is caught: it completes with `Err` instead of unwinding.
#[pin_project::pin_project]
pub(super) struct Guarded<F> {
    #[pin]
    inner: F,
}

impl<F> Guarded<F> {
    pub(super) fn new(inner: F) -> Self {
        Guarded { inner }
    }
}

impl<F: Future> Future for Guarded<F> {
    type Output = Result<F::Output, ()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.project().inner;
        let was = IN_HANDLER.with(|flag| flag.replace(true));
        // The future is never polled again after a panic (the caller answers 500 and drops
        // it), so no broken state can be observed: asserting unwind safety is sound here.
        let polled = panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx)));
        IN_HANDLER.with(|flag| flag.set(was));
        match polled {
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(_) => Poll::Ready(Err(())),
        }
    }
}
