//! The wait queue: a doubly linked list threaded through a slab of nodes, so that pushing,
//! popping from either end and removing a cancelled waiter from the middle are all O(1), and
//! nodes are reused (the slab grows only when more callers wait at once than ever before).

use std::task::Waker;

/// "No node": the end of a list.
const NONE: u32 = u32::MAX;

/// Which waiter a released slot goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum QueueOrder {
    /// The longest waiting caller first: fair, the usual choice when the queue is short.
    #[default]
    Fifo,
    /// The newest caller first. Under sustained overload the oldest waiters are the ones
    /// closest to their deadline, or already given up on by their callers; serving the newest
    /// keeps the latency of the calls that do get through low, and the old ones time out.
    Lifo,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    /// On the free list.
    Free,
    /// Waiting in the queue.
    Queued,
    /// Unlinked and handed a slot; the waiter has not taken it yet.
    Granted,
}

#[derive(Debug)]
struct Node {
    waker: Option<Waker>,
    status: Status,
    prev: u32,
    next: u32,
}

/// What [`Waiters::poll`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Polled {
    /// Still waiting (its waker is updated).
    Waiting,
    /// A slot was handed over; the node is freed and the slot is the caller's.
    Granted,
}

/// The queue of callers waiting for a slot. Always used under the bulkhead's lock.
#[derive(Debug)]
pub(super) struct Waiters {
    nodes: Vec<Node>,
    head: u32,
    tail: u32,
    /// Head of the free list, linked through `next`.
    free: u32,
    len: u32,
}

impl Waiters {
    /// A queue with room for `capacity` waiters before it allocates.
    pub(super) fn with_capacity(capacity: usize) -> Self {
        Waiters {
            nodes: Vec::with_capacity(capacity),
            head: NONE,
            tail: NONE,
            free: NONE,
            len: 0,
        }
    }

    /// Waiters in the queue (not counting granted ones not yet collected).
    pub(super) fn len(&self) -> u32 {
        self.len
    }

    /// Adds a waiter at the tail; returns its node.
    pub(super) fn push(&mut self, waker: Waker) -> u32 {
        let index = if self.free == NONE {
            self.nodes.push(Node {
                waker: None,
                status: Status::Free,
                prev: NONE,
                next: NONE,
            });
            (self.nodes.len() - 1) as u32
        } else {
            let index = self.free;
            self.free = self.nodes[index as usize].next;
            index
        };
        let node = &mut self.nodes[index as usize];
        node.waker = Some(waker);
        node.status = Status::Queued;
        node.prev = self.tail;
        node.next = NONE;
        if self.tail == NONE {
            self.head = index;
        } else {
            self.nodes[self.tail as usize].next = index;
        }
        self.tail = index;
        self.len += 1;
        index
    }

    /// Unlinks the waiter `order` picks, marks it granted and returns its waker to wake (after
    /// the lock is released). `None` if the queue is empty.
    pub(super) fn grant_next(&mut self, order: QueueOrder) -> Option<Option<Waker>> {
        let index = match order {
            QueueOrder::Fifo => self.head,
            QueueOrder::Lifo => self.tail,
        };
        if index == NONE {
            return None;
        }
        self.unlink(index);
        let node = &mut self.nodes[index as usize];
        node.status = Status::Granted;
        Some(node.waker.take())
    }

    /// The waiter at `index` polls: granted (and freed) or still waiting with `waker`.
    pub(super) fn poll(&mut self, index: u32, waker: &Waker) -> Polled {
        let node = &mut self.nodes[index as usize];
        match node.status {
            Status::Granted => {
                self.release_node(index);
                Polled::Granted
            }
            Status::Queued => {
                match &mut node.waker {
                    Some(old) if old.will_wake(waker) => {}
                    slot => *slot = Some(waker.clone()),
                }
                Polled::Waiting
            }
            Status::Free => unreachable!("a waiter polled a node it no longer owns"),
        }
    }

    /// The waiter at `index` gives up: it leaves the queue and its node is freed. Returns
    /// whether it had been granted a slot already, which the caller must then pass on.
    pub(super) fn cancel(&mut self, index: u32) -> bool {
        let granted = match self.nodes[index as usize].status {
            Status::Queued => {
                self.unlink(index);
                false
            }
            Status::Granted => true,
            Status::Free => unreachable!("a waiter cancelled a node it no longer owns"),
        };
        self.release_node(index);
        granted
    }

    fn unlink(&mut self, index: u32) {
        let (prev, next) = {
            let node = &self.nodes[index as usize];
            (node.prev, node.next)
        };
        if prev == NONE {
            self.head = next;
        } else {
            self.nodes[prev as usize].next = next;
        }
        if next == NONE {
            self.tail = prev;
        } else {
            self.nodes[next as usize].prev = prev;
        }
        self.len -= 1;
    }

    fn release_node(&mut self, index: u32) {
        let node = &mut self.nodes[index as usize];
        node.waker = None;
        node.status = Status::Free;
        node.prev = NONE;
        node.next = self.free;
        self.free = index;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(w: &mut Waiters, how: QueueOrder) -> Vec<u32> {
        let mut out = Vec::new();
        while w.grant_next(how).is_some() {
            out.push(out.len() as u32);
        }
        out
    }

    #[test]
    fn fifo_and_lifo_pick_opposite_ends_and_cancel_unlinks_from_the_middle() {
        let waker = Waker::noop();
        let mut w = Waiters::with_capacity(0);
        let a = w.push(waker.clone());
        let b = w.push(waker.clone());
        let c = w.push(waker.clone());
        assert_eq!(w.len(), 3);
        assert!(!w.cancel(b));
        assert_eq!(w.len(), 2);
        assert!(w.grant_next(QueueOrder::Lifo).is_some());
        assert_eq!(w.poll(c, waker), Polled::Granted);
        assert_eq!(w.poll(a, waker), Polled::Waiting);
        assert!(w.grant_next(QueueOrder::Fifo).is_some());
        // Granted, then cancelled before it polled: the caller must pass the slot on.
        assert!(w.cancel(a));
        assert_eq!(w.len(), 0);
        assert!(w.grant_next(QueueOrder::Fifo).is_none());
        // Freed nodes are reused: no growth.
        let d = w.push(waker.clone());
        let e = w.push(waker.clone());
        let f = w.push(waker.clone());
        assert_eq!(w.nodes.len(), 3);
        assert_eq!([d, e, f].iter().filter(|&&i| i < 3).count(), 3);
        assert_eq!(order(&mut w, QueueOrder::Fifo).len(), 3);
    }
}
