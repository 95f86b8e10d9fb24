//! The event queue of the `tied` mode's simulation: events in order of `(time, seq)`, a unique
//! key, with FIFO lanes for the events scheduled a fixed delay after the present.
//!
//! Most of the tied mode's events are cancels, each due `cancel_delay` after the event that
//! sends it. Handled in time order, such events are scheduled in `(time, seq)` order too, so a
//! FIFO holds them sorted: pushing and popping cost next to nothing, where a heap of thousands
//! pays a sift each way. The queue pops the least of the heap's top and the lanes' fronts: the
//! same order as one heap of every event, so the simulation's output does not change.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// Events of type `E` by `(time, seq)`; lane `i` of `LANES` takes events the caller schedules
/// in order (a push that would break the order goes to the heap instead).
pub(super) struct Events<E, const LANES: usize> {
    heap: BinaryHeap<Reverse<(u64, u64, E)>>,
    lanes: [VecDeque<(u64, u64, E)>; LANES],
}

impl<E: Ord, const LANES: usize> Events<E, LANES> {
    pub(super) fn new() -> Self {
        Events {
            heap: BinaryHeap::new(),
            lanes: std::array::from_fn(|_| VecDeque::new()),
        }
    }

    /// Queues `event` at `(t, seq)` in the heap.
    pub(super) fn push(&mut self, t: u64, seq: u64, event: E) {
        self.heap.push(Reverse((t, seq, event)));
    }

    /// Queues `event` at `(t, seq)` in lane `lane`, or in the heap if it would come before the
    /// lane's last event.
    pub(super) fn push_in(&mut self, lane: usize, t: u64, seq: u64, event: E) {
        let queue = &mut self.lanes[lane];
        match queue.back() {
            Some(&(last_t, last_seq, _)) if (t, seq) < (last_t, last_seq) => {
                self.push(t, seq, event)
            }
            _ => queue.push_back((t, seq, event)),
        }
    }

    /// The first event by `(t, seq)`, taken out.
    pub(super) fn pop(&mut self) -> Option<(u64, u64, E)> {
        let mut first = self.heap.peek().map(|Reverse((t, seq, _))| (*t, *seq));
        let mut from = None;
        for (i, lane) in self.lanes.iter().enumerate() {
            if let Some(&(t, seq, _)) = lane.front() {
                if first.is_none_or(|f| (t, seq) < f) {
                    first = Some((t, seq));
                    from = Some(i);
                }
            }
        }
        match from {
            Some(i) => self.lanes[i].pop_front(),
            None => self.heap.pop().map(|Reverse(e)| e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Events;

    #[test]
    fn events_pop_by_time_then_seq_whichever_lane_holds_them() {
        let mut events = Events::<char, 2>::new();
        let mut model = Vec::new();
        let mut rng = fastrand::Rng::with_seed(15);
        let mut seq = 0;
        let mut now = 0;
        for round in 0..2000 {
            // A few events from the present: some a fixed delay on (lanes 0 and 1), some at
            // random times (the heap), some due now.
            for _ in 0..rng.usize(0..4) {
                seq += 1;
                let (t, event) = match rng.u8(0..4) {
                    0 => (now + 100, 'a'),
                    1 => (now + 1000, 'b'),
                    2 => (now + rng.u64(0..5000), 'h'),
                    _ => (now, 'n'),
                };
                match event {
                    'a' => events.push_in(0, t, seq, event),
                    'b' => events.push_in(1, t, seq, event),
                    _ => events.push(t, seq, event),
                }
                model.push((t, seq, event));
            }
            // An out-of-order push to a lane lands in the heap, still in order.
            if round % 97 == 0 {
                seq += 1;
                events.push_in(0, now + 50, seq, 'o');
                model.push((now + 50, seq, 'o'));
            }
            if rng.bool() {
                model.sort_unstable_by(|a, b| b.cmp(a));
                let expected = model.pop();
                let got = events.pop();
                assert_eq!(got, expected);
                if let Some((t, ..)) = got {
                    now = t;
                }
            }
        }
        model.sort_unstable_by(|a, b| b.cmp(a));
        while let Some(expected) = model.pop() {
            assert_eq!(events.pop(), Some(expected));
        }
        assert_eq!(events.pop(), None);
    }
}
