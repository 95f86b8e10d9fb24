//! `tailguard.Bulkhead`: the core's [`Bulkhead`](tailguard::bulkhead::Bulkhead). Taking a free
//! slot, the sync decorator and `with bulkhead:` run here; a sync wait parks the thread (the
//! GIL released) until the core's queue hands it a slot; an async wait polls a
//! [`BulkheadWaiter`] whose waker schedules the event loop.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::Duration;

use pyo3::gc::{PyTraverseError, PyVisit};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};
use tailguard::bulkhead::{self, AcquireOwned, OwnedPermit, QueueOrder, Reason, Rejected};
use tailguard::time::DefaultTimer;

use crate::{convert, errors};

/// How often a parked sync waiter looks for Ctrl-C.
const SIGNAL_CHECK: Duration = Duration::from_millis(50);

fn full_error(py: Python<'_>, rejected: Rejected) -> PyErr {
    static FULL: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    let reason = match rejected.reason() {
        Reason::Deadline => "deadline",
        _ => "full",
    };
    super::error(
        py,
        &FULL,
        "BulkheadFullError",
        (rejected.to_string(), reason),
    )
}

fn order_name(order: QueueOrder) -> &'static str {
    match order {
        QueueOrder::Lifo => "lifo",
        _ => "fifo",
    }
}

/// At most `max_concurrent` calls at once, and at most `max_queue` callers waiting for a slot.
#[pyclass(frozen, subclass, module = "tailguard._native", name = "Bulkhead")]
pub(crate) struct Bulkhead {
    inner: bulkhead::Bulkhead<DefaultTimer>,
    max_wait: Option<Duration>,
    /// The slots of the `with bulkhead:` blocks open now (slots are interchangeable, so a block
    /// that ends gives back any one of them).
    blocks: Mutex<Vec<OwnedPermit>>,
}

impl Bulkhead {
    /// The longest wait: `timeout`, or the default `max_wait`, or (neither) thirty years.
    fn longest_wait(&self, timeout: Option<Duration>) -> Duration {
        timeout
            .or(self.max_wait)
            .unwrap_or(Duration::from_secs(86_400 * 365 * 30))
    }

    /// A slot, waiting (the GIL released) if the queue allows, at most `timeout` (or
    /// `max_wait`).
    fn take_blocking(&self, py: Python<'_>, timeout: Option<Duration>) -> PyResult<OwnedPermit> {
        block_on(
            py,
            self.inner.acquire_within_owned(self.longest_wait(timeout)),
        )
    }
    fn permit(py: Python<'_>, permit: OwnedPermit) -> PyResult<Py<BulkheadPermit>> {
        Py::new(
            py,
            BulkheadPermit {
                permit: Mutex::new(Some(permit)),
            },
        )
    }
}

/// Runs a wait for a slot to its end on this thread. The first poll takes a free slot (no
/// clock read, no allocation, the waker a no-op); only a caller who must wait makes a waker that
/// unparks this thread, re-polls with it (which re-registers the waiter, or finds a slot handed
/// over meanwhile) and parks with the GIL released, looking for Ctrl-C now and then (an error
/// drops the wait, which leaves the queue).
fn block_on<F, P>(py: Python<'_>, mut wait: F) -> PyResult<P>
where
    F: Future<Output = Result<P, Rejected>> + Unpin,
{
    if let Poll::Ready(out) = Pin::new(&mut wait).poll(&mut Context::from_waker(Waker::noop())) {
        return out.map_err(|rejected| full_error(py, rejected));
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        match Pin::new(&mut wait).poll(&mut cx) {
            Poll::Ready(out) => return out.map_err(|rejected| full_error(py, rejected)),
            Poll::Pending => {
                py.detach(|| std::thread::park_timeout(SIGNAL_CHECK));
                py.check_signals()?;
            }
        }
    }
}

/// Wakes a parked thread.
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

#[pymethods]
impl Bulkhead {
    #[new]
    #[pyo3(signature = (max_concurrent = None, *, max_queue = None, queue_order = None, max_wait = None))]
    fn new(
        py: Python<'_>,
        max_concurrent: Option<&Bound<'_, PyAny>>,
        max_queue: Option<&Bound<'_, PyAny>>,
        queue_order: Option<&Bound<'_, PyAny>>,
        max_wait: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let mut builder = bulkhead::Bulkhead::builder();
        if let Some(n) = max_concurrent {
            builder = builder.max_concurrent(convert::u32_at_least("max_concurrent", n, 0)?);
        }
        if let Some(n) = max_queue {
            builder = builder.max_queue(convert::u32_at_least("max_queue", n, 0)?);
        }
        if let Some(order) = queue_order.filter(|o| !o.is_none()) {
            let text: String = order
                .extract()
                .map_err(|_| convert::type_error("queue_order", "\"fifo\" or \"lifo\"", order))?;
            builder = builder.queue_order(match text.as_str() {
                "fifo" => QueueOrder::Fifo,
                "lifo" => QueueOrder::Lifo,
                _ => {
                    return Err(errors::config_error(
                        py,
                        "queue_order",
                        format!("must be \"fifo\" or \"lifo\", got {text:?}"),
                    ))
                }
            });
        }
        let max_wait = convert::opt_seconds("max_wait", max_wait)?;
        let inner = builder
            .build_with(DefaultTimer::default())
            .map_err(|e| errors::from_core(py, &e))?;
        Ok(Bulkhead {
            inner,
            max_wait,
            blocks: Mutex::new(Vec::new()),
        })
    }

    /// Takes a slot, waiting in the queue (at most ``timeout`` seconds, by default
    /// ``max_wait``; ``None``: until a slot frees) if every slot is taken. Raises
    /// ``BulkheadFullError`` if the queue is full or the wait runs out. Release the permit
    /// with ``release()`` or a ``with`` block.
    #[pyo3(signature = (timeout = None))]
    fn acquire(
        &self,
        py: Python<'_>,
        timeout: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<BulkheadPermit>> {
        let timeout = convert::opt_seconds("timeout", timeout)?;
        let permit = self.take_blocking(py, timeout)?;
        Bulkhead::permit(py, permit)
    }

    /// A slot now, or ``None`` (never waits, never raises).
    fn try_acquire(&self, py: Python<'_>) -> PyResult<Option<Py<BulkheadPermit>>> {
        match self.inner.try_acquire_owned() {
            Ok(permit) => Bulkhead::permit(py, permit).map(Some),
            Err(_) => Ok(None),
        }
    }

    /// Internal, for ``acquire_async``: starts a wait for a slot (at most ``timeout``, or
    /// ``max_wait``) and polls it once: a permit if a slot was free, else the waiter, queued
    /// (poll it again with the task's waker); raises ``BulkheadFullError`` if refused.
    #[pyo3(signature = (timeout = None))]
    fn _start(&self, py: Python<'_>, timeout: Option<&Bound<'_, PyAny>>) -> PyResult<Py<PyAny>> {
        let timeout = convert::opt_seconds("timeout", timeout)?;
        let mut wait = self.inner.acquire_within_owned(self.longest_wait(timeout));
        match Pin::new(&mut wait).poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(Ok(permit)) => Ok(Bulkhead::permit(py, permit)?.into_any()),
            Poll::Ready(Err(rejected)) => Err(full_error(py, rejected)),
            Poll::Pending => Ok(Py::new(
                py,
                BulkheadWaiter {
                    wait: Mutex::new(Some(wait)),
                },
            )?
            .into_any()),
        }
    }

    /// Internal, for ``async with``: keeps a permit's slot as a ``with`` block's.
    fn _push(&self, permit: &BulkheadPermit) {
        if let Some(permit) = permit.take() {
            lock(&self.blocks).push(permit);
        }
    }

    fn __enter__(&self, py: Python<'_>) -> PyResult<()> {
        let permit = self.take_blocking(py, None)?;
        lock(&self.blocks).push(permit);
        Ok(())
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, _exc: &Bound<'_, PyTuple>) {
        let permit = lock(&self.blocks).pop();
        drop(permit);
    }

    /// Decorates a function: a sync function gets a native wrapper, an ``async def`` a
    /// coroutine function. Each call holds a slot while it runs.
    fn __call__(slf: &Bound<'_, Self>, func: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        if !func.is_callable() {
            return Err(convert::type_error("func", "a callable", func));
        }
        static WRAP_ASYNC: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        if convert::is_coroutine_function(func)? {
            let wrap = WRAP_ASYNC.import(py, "tailguard._limits", "wrap_bulkhead_async")?;
            return Ok(wrap.call1((slf, func))?.unbind());
        }
        let wrapper = Bound::new(
            py,
            Bulkheaded {
                bulkhead: slf.clone().unbind(),
                func: func.clone().unbind(),
            },
        )?;
        convert::update_wrapper(wrapper.as_any(), func)
    }

    /// Calls allowed at once.
    #[getter]
    fn max_concurrent(&self) -> u32 {
        self.inner.max_concurrent()
    }

    /// Callers allowed to wait at once.
    #[getter]
    fn max_queue(&self) -> u32 {
        self.inner.max_queue()
    }

    /// ``"fifo"`` or ``"lifo"``: which waiter a released slot goes to.
    #[getter]
    fn queue_order(&self) -> &'static str {
        order_name(self.inner.queue_order())
    }

    /// The default wait, in seconds (``None``: until a slot frees).
    #[getter]
    fn max_wait(&self) -> Option<f64> {
        self.max_wait.map(convert::secs)
    }

    /// Calls holding a slot now.
    #[getter]
    fn in_flight(&self) -> u32 {
        self.inner.metrics().in_flight
    }

    /// Callers waiting for a slot now.
    #[getter]
    fn queued(&self) -> u32 {
        self.inner.metrics().queued
    }

    /// Calls refused so far: ``(full, deadline)``.
    #[getter]
    fn rejected(&self) -> (u64, u64) {
        let m = self.inner.metrics();
        (m.rejected_full, m.rejected_deadline)
    }

    fn __repr__(&self) -> String {
        format!(
            "Bulkhead(max_concurrent={}, max_queue={}, queue_order={:?}, in_flight={}, queued={})",
            self.inner.max_concurrent(),
            self.inner.max_queue(),
            order_name(self.inner.queue_order()),
            self.in_flight(),
            self.queued()
        )
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// One of a bulkhead's slots, held until ``release()`` (or the end of a ``with`` block, or
/// garbage collection).
#[pyclass(frozen, module = "tailguard._native", name = "BulkheadPermit")]
pub(crate) struct BulkheadPermit {
    permit: Mutex<Option<OwnedPermit>>,
}

impl BulkheadPermit {
    fn take(&self) -> Option<OwnedPermit> {
        lock(&self.permit).take()
    }
}

#[pymethods]
impl BulkheadPermit {
    /// Gives the slot back (once; later calls do nothing).
    fn release(&self) {
        drop(self.take());
    }

    /// Whether the slot is still held.
    #[getter]
    fn held(&self) -> bool {
        lock(&self.permit).is_some()
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, _exc: &Bound<'_, PyTuple>) {
        self.release();
    }

    fn __repr__(&self) -> String {
        format!("BulkheadPermit(held={})", self.held())
    }
}

/// Internal: one async caller's wait for a slot, polled by ``tailguard._limits``.
#[pyclass(frozen, module = "tailguard._native", name = "_BulkheadWaiter")]
pub(crate) struct BulkheadWaiter {
    wait: Mutex<Option<AcquireOwned<DefaultTimer>>>,
}

/// Wakes an asyncio task: schedules ``wake(future)`` on its loop, from any thread.
struct LoopWaker {
    event_loop: Py<PyAny>,
    future: Py<PyAny>,
    wake: Py<PyAny>,
}

impl Wake for LoopWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        Python::attach(|py| {
            // A closed loop raises: its task is gone, and so is the wait.
            let _ = self.event_loop.call_method1(
                py,
                pyo3::intern!(py, "call_soon_threadsafe"),
                (self.wake.clone_ref(py), self.future.clone_ref(py)),
            );
        });
    }
}

#[pymethods]
impl BulkheadWaiter {
    /// Polls the wait: a permit, ``None`` (then ``wake(future)`` is scheduled on
    /// ``event_loop`` when it should be polled again), or ``BulkheadFullError``.
    fn poll(
        &self,
        py: Python<'_>,
        event_loop: Py<PyAny>,
        future: Py<PyAny>,
        wake: Py<PyAny>,
    ) -> PyResult<Option<Py<BulkheadPermit>>> {
        let mut slot = lock(&self.wait);
        let Some(wait) = slot.as_mut() else {
            return Err(pyo3::exceptions::PyRuntimeError::new_err(
                "this wait has already finished",
            ));
        };
        let waker = Waker::from(Arc::new(LoopWaker {
            event_loop,
            future,
            wake,
        }));
        let polled = Pin::new(wait).poll(&mut Context::from_waker(&waker));
        match polled {
            Poll::Pending => Ok(None),
            Poll::Ready(out) => {
                *slot = None;
                drop(slot);
                match out {
                    Ok(permit) => Bulkhead::permit(py, permit).map(Some),
                    Err(rejected) => Err(full_error(py, rejected)),
                }
            }
        }
    }

    /// Gives up the wait (leaving the queue; a slot handed over meanwhile goes on).
    fn cancel(&self) {
        let wait = lock(&self.wait).take();
        drop(wait);
    }
}

/// A sync function behind a bulkhead: take a slot, call, give it back, all here.
#[pyclass(frozen, dict, module = "tailguard", name = "Bulkheaded")]
pub(crate) struct Bulkheaded {
    bulkhead: Py<Bulkhead>,
    func: Py<PyAny>,
}

#[pymethods]
impl Bulkheaded {
    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.bulkhead)?;
        visit.call(&self.func)
    }

    #[pyo3(signature = (*args, **kwargs))]
    fn __call__(
        &self,
        py: Python<'_>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        let bulkhead = self.bulkhead.get();
        // Borrowed, not owned: no reference count to move on the fast path.
        let permit = block_on(
            py,
            bulkhead.inner.acquire_within(bulkhead.longest_wait(None)),
        )?;
        let out = self.func.bind(py).call(args, kwargs);
        drop(permit);
        out.map(Bound::unbind)
    }

    fn __get__(
        slf: &Bound<'_, Self>,
        instance: &Bound<'_, PyAny>,
        _owner: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        convert::bind_method(slf.as_any(), instance)
    }

    /// The bulkhead guarding this function.
    #[getter]
    fn bulkhead(&self, py: Python<'_>) -> Py<Bulkhead> {
        self.bulkhead.clone_ref(py)
    }
}
