//! The rolling window: requests and accepts in time buckets, with running totals.

/// Requests and accepts over the last `buckets` buckets of `bucket_nanos` each.
#[derive(Debug)]
pub(super) struct Window {
    /// (requests, accepts) per bucket; bucket `i` (since the origin) lives at `i % len`.
    counts: Box<[(u64, u64)]>,
    bucket_nanos: u64,
    /// The newest bucket index seen.
    head: u64,
    requests: u64,
    accepts: u64,
}

impl Window {
    pub(super) fn new(buckets: u32, bucket_nanos: u64) -> Self {
        Window {
            counts: vec![(0, 0); buckets as usize].into_boxed_slice(),
            bucket_nanos,
            head: 0,
            requests: 0,
            accepts: 0,
        }
    }

    /// Slides the window to time `t` (nanoseconds since the origin): the buckets that fell out
    /// are emptied. A time before the newest bucket counts in the newest bucket.
    pub(super) fn advance(&mut self, t: u64) {
        let index = t / self.bucket_nanos;
        if index <= self.head {
            return;
        }
        let len = self.counts.len() as u64;
        if index - self.head >= len {
            self.counts.iter_mut().for_each(|c| *c = (0, 0));
            self.requests = 0;
            self.accepts = 0;
        } else {
            for i in self.head + 1..=index {
                let slot = &mut self.counts[(i % len) as usize];
                self.requests -= slot.0;
                self.accepts -= slot.1;
                *slot = (0, 0);
            }
        }
        self.head = index;
    }

    /// Counts one request (at the newest bucket), accepted or not.
    pub(super) fn count(&mut self, accepted: bool) {
        let len = self.counts.len() as u64;
        let slot = &mut self.counts[(self.head % len) as usize];
        slot.0 += 1;
        self.requests += 1;
        if accepted {
            slot.1 += 1;
            self.accepts += 1;
        }
    }

    pub(super) fn requests(&self) -> u64 {
        self.requests
    }

    pub(super) fn accepts(&self) -> u64 {
        self.accepts
    }
}
