//! A concurrency limit of `n` slots, as small as a `Limiter` can be (one atomic, no allocation):
//! the standalone limiter of the pipeline's bench, its instruction-count example and its
//! allocation test. Included with `#[path = ".../tests/common/slots.rs"] mod slots;`.

use std::future::{ready, Ready};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tailguard::pipeline::{Limiter, LimiterPermit, LimiterRejected, Outcome};

/// `n` slots shared by clones.
#[derive(Clone)]
pub struct Slots(pub Arc<AtomicUsize>);

impl Slots {
    /// A limit of `n` slots.
    pub fn new(n: usize) -> Self {
        Slots(Arc::new(AtomicUsize::new(n)))
    }
}

/// One slot, given back on drop.
pub struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }
}

impl LimiterPermit for Slot {
    fn finish(self, _: Outcome, _: Duration) {}
}

impl Limiter for Slots {
    type Permit = Slot;
    type Acquire<'a> = Ready<Result<Slot, LimiterRejected>>;

    fn acquire_at(&self, _: Instant, _: Option<Instant>) -> Self::Acquire<'_> {
        let taken = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        ready(match taken {
            Ok(_) => Ok(Slot(self.0.clone())),
            Err(_) => Err(LimiterRejected::new("full")),
        })
    }
}
