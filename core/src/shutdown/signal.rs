use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};

use event_listener::{Event, EventListener};

/// One node of the shutdown tree: a flag, the event its waiters listen on, and its children.
struct Node {
    triggered: AtomicBool,
    event: Event,
    children: Mutex<Vec<Weak<Node>>>,
}

impl Node {
    fn new(triggered: bool) -> Arc<Node> {
        Arc::new(Node {
            triggered: AtomicBool::new(triggered),
            event: Event::new(),
            children: Mutex::new(Vec::new()),
        })
    }

    fn is_triggered(&self) -> bool {
        self.triggered.load(Ordering::Acquire)
    }

    fn trigger(&self) {
        if self.triggered.swap(true, Ordering::AcqRel) {
            return;
        }
        self.event.notify(usize::MAX);
        // Set the flag before taking the lock: a child added concurrently either sees the flag
        // under the lock, or is in the list taken here.
        let children = std::mem::take(&mut *lock(&self.children));
        for child in children.iter().filter_map(Weak::upgrade) {
            child.trigger();
        }
    }

    fn child(self: &Arc<Node>) -> Arc<Node> {
        let mut children = lock(&self.children);
        let child = Node::new(self.is_triggered());
        if !child.is_triggered() {
            // Forget children that are gone, so a long-lived parent with many short-lived
            // children (one per connection) does not grow without bound.
            if children.len() == children.capacity() {
                children.retain(|c| c.strong_count() > 0);
            }
            children.push(Arc::downgrade(&child));
        }
        child
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The trigger of a graceful shutdown. Hand out [`ShutdownSignal`]s, then [`trigger`] once.
///
/// Triggering is idempotent and never blocks. Dropping a `Shutdown` does not trigger it (keep
/// it alive for as long as its signals should be able to fire).
///
/// [`trigger`]: Shutdown::trigger
///
/// ```
/// use tailguard::shutdown::Shutdown;
///
/// let server = Shutdown::new();
/// let connection = server.child();
/// let signal = connection.signal();
/// assert!(!signal.is_triggered());
///
/// server.trigger(); // fires every child too
/// assert!(signal.is_triggered());
/// futures::executor::block_on(signal); // completes at once
/// ```
#[derive(Clone)]
pub struct Shutdown {
    node: Arc<Node>,
}

impl Shutdown {
    /// A trigger that has not fired.
    pub fn new() -> Self {
        Shutdown {
            node: Node::new(false),
        }
    }

    /// A signal that completes when this trigger (or an ancestor) fires.
    pub fn signal(&self) -> ShutdownSignal {
        ShutdownSignal {
            node: self.node.clone(),
            listener: None,
        }
    }

    /// Fires the signal: every [`ShutdownSignal`] of this trigger and of all its children
    /// completes. Calling it again does nothing.
    pub fn trigger(&self) {
        self.node.trigger();
    }

    /// Whether this trigger, or one of its ancestors, has fired.
    pub fn is_triggered(&self) -> bool {
        self.node.is_triggered()
    }

    /// A child trigger: it fires when this one does, and can also be fired on its own without
    /// affecting this one. A child of a trigger that already fired is born triggered.
    pub fn child(&self) -> Shutdown {
        Shutdown {
            node: self.node.child(),
        }
    }
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown::new()
    }
}

impl fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shutdown")
            .field("triggered", &self.is_triggered())
            .finish()
    }
}

/// A future that completes once its [`Shutdown`] fires. Cheap to clone; each clone waits on its
/// own.
///
/// Await it (or `select` on it) to stop at a clean point. It is also a plain flag through
/// [`is_triggered`](ShutdownSignal::is_triggered), for loops that poll rather than wait.
///
/// ```
/// use std::time::Duration;
/// use futures::future::{select, Either};
/// use tailguard::shutdown::Shutdown;
///
/// let shutdown = Shutdown::new();
/// let signal = shutdown.signal();
/// shutdown.trigger();
/// let work = futures::future::pending::<()>();
/// let stopped = futures::executor::block_on(async {
///     match select(Box::pin(work), signal).await {
///         Either::Left(_) => false,
///         Either::Right(_) => true,
///     }
/// });
/// assert!(stopped);
/// ```
#[must_use = "a shutdown signal does nothing unless awaited or checked"]
pub struct ShutdownSignal {
    node: Arc<Node>,
    listener: Option<EventListener>,
}

impl ShutdownSignal {
    /// Whether the trigger (or an ancestor) has fired.
    pub fn is_triggered(&self) -> bool {
        self.node.is_triggered()
    }

    /// A child trigger of this signal's trigger: it fires with it, or on its own. Lets a worker
    /// that only holds a signal scope the shutdown of its own sub-tasks.
    pub fn child(&self) -> Shutdown {
        Shutdown {
            node: self.node.child(),
        }
    }
}

impl Clone for ShutdownSignal {
    fn clone(&self) -> Self {
        ShutdownSignal {
            node: self.node.clone(),
            listener: None,
        }
    }
}

impl Future for ShutdownSignal {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let node = &this.node;
        super::poll_until(|| node.is_triggered(), &node.event, &mut this.listener, cx)
    }
}

impl fmt::Debug for ShutdownSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShutdownSignal")
            .field("triggered", &self.is_triggered())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::task::noop_waker;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn signal_completes_after_trigger_and_wakes_waiters() {
        let shutdown = Shutdown::new();
        let mut signals: Vec<_> = (0..3).map(|_| shutdown.signal()).collect();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = std::task::Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        for s in &mut signals {
            assert!(Pin::new(s).poll(&mut cx).is_pending());
        }
        shutdown.trigger();
        assert_eq!(count.0.load(Ordering::SeqCst), 3);
        for s in &mut signals {
            assert!(Pin::new(s).poll(&mut cx).is_ready());
        }
    }

    #[test]
    fn child_fires_with_parent_but_not_the_other_way() {
        let parent = Shutdown::new();
        let child = parent.child();
        let grandchild = child.signal().child();
        child.trigger();
        assert!(child.is_triggered());
        assert!(grandchild.is_triggered());
        assert!(!parent.is_triggered());

        let sibling = parent.child();
        parent.trigger();
        assert!(sibling.is_triggered());
        assert!(parent.child().is_triggered(), "born triggered");
    }

    #[test]
    fn dead_children_are_forgotten() {
        let parent = Shutdown::new();
        for _ in 0..10_000 {
            drop(parent.child());
        }
        assert!(lock(&parent.node.children).len() <= 64);
    }

    #[test]
    fn trigger_is_idempotent() {
        let shutdown = Shutdown::new();
        shutdown.trigger();
        shutdown.trigger();
        let waker = noop_waker();
        assert!(Pin::new(&mut shutdown.signal())
            .poll(&mut Context::from_waker(&waker))
            .is_ready());
    }

    #[test]
    fn trigger_from_another_thread_is_seen() {
        let shutdown = Shutdown::new();
        let signal = shutdown.signal();
        let handle = std::thread::spawn(move || futures::executor::block_on(signal));
        shutdown.trigger();
        handle.join().unwrap();
    }
}
