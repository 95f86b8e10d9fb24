//! Model tests of the tied-request queue: random pushes, starts, cancels and removals against
//! a plain model. A cancelled request never starts, every started request names its twin at
//! most once, the queue never holds more than its capacity, and starts come in arrival order.

use std::collections::{HashSet, VecDeque};
use std::time::Instant;

use proptest::prelude::*;
use tailguard::tied::{Cancelled, Refusal, Tag, Ticket, TiedQueue, Twin};

#[derive(Debug, Clone)]
enum Op {
    /// A request with this id (tied to twin `id + 1000`), or untagged.
    Push(Option<u64>),
    Start,
    Cancel(u64),
    /// Removes the n-th ticket handed out so far (its client went away).
    Remove(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => prop::option::weighted(0.8, 0u64..40).prop_map(Op::Push),
        2 => Just(Op::Start),
        2 => (0u64..40).prop_map(Op::Cancel),
        1 => (0usize..64).prop_map(Op::Remove),
    ]
}

proptest! {
    #[test]
    fn the_queue_behaves_like_its_model(
        capacity in 1usize..6,
        ops in prop::collection::vec(op(), 1..200),
    ) {
        // Remember everything: the model never forgets.
        let mut queue = TiedQueue::<u64, &str>::remembering(capacity, 4096).unwrap();
        let now = Instant::now();
        // The model: (serial, id) in arrival order; ids started; ids cancelled before arrival.
        let mut model: VecDeque<(u64, Option<u64>)> = VecDeque::new();
        let mut started: HashSet<u64> = HashSet::new();
        let mut cancelled: HashSet<u64> = HashSet::new();
        let mut twins_named: Vec<u64> = Vec::new();
        let mut tickets: Vec<(Ticket, u64)> = Vec::new();
        let mut serial = 0u64;
        let mut untagged_started = 0usize;
        for op in ops {
            match op {
                Op::Push(id) => {
                    serial += 1;
                    let tag = id.map(|id| Tag::tied(id, Twin { replica: "twin", id: id + 1000 }));
                    let result = queue.push_at(now, serial, tag);
                    let queued = id.is_some_and(|id| model.iter().any(|&(_, m)| m == Some(id)));
                    let expected = match id {
                        Some(id) if cancelled.contains(&id) => Some(Refusal::Cancelled(id)),
                        Some(id) if started.contains(&id) || queued => Some(Refusal::DuplicateId(id)),
                        _ if model.len() == capacity => Some(Refusal::Full { capacity }),
                        _ => None,
                    };
                    match (result, expected) {
                        (Ok(ticket), None) => {
                            model.push_back((serial, id));
                            tickets.push((ticket, serial));
                        }
                        (Err(rejected), Some(reason)) => {
                            prop_assert_eq!(rejected.reason, reason);
                            prop_assert_eq!(rejected.item, serial);
                        }
                        (result, expected) => prop_assert!(false, "{:?} vs {:?}", result, expected),
                    }
                }
                Op::Start => {
                    let got = queue.start_next_at(now);
                    match model.pop_front() {
                        None => prop_assert!(got.is_none()),
                        Some((serial, id)) => {
                            let got = got.unwrap();
                            prop_assert_eq!(got.item, serial);
                            prop_assert_eq!(got.id, id);
                            if let Some(id) = id {
                                prop_assert!(!cancelled.contains(&id), "a cancelled request started");
                                prop_assert!(started.insert(id));
                                prop_assert_eq!(got.cancel_twin.map(|t| t.id), Some(id + 1000));
                                twins_named.push(id);
                            } else {
                                untagged_started += 1;
                                prop_assert!(got.cancel_twin.is_none());
                            }
                        }
                    }
                }
                Op::Cancel(id) => {
                    let got = queue.cancel(id);
                    if let Some(at) = model.iter().position(|&(_, m)| m == Some(id)) {
                        let (serial, _) = model.remove(at).unwrap();
                        prop_assert_eq!(got, Cancelled::InQueue(serial));
                        cancelled.insert(id);
                    } else if started.contains(&id) {
                        prop_assert_eq!(got, Cancelled::TooLate);
                    } else {
                        prop_assert_eq!(got, Cancelled::NotHere);
                        cancelled.insert(id);
                    }
                }
                Op::Remove(n) => {
                    if let Some(&(ticket, serial)) = tickets.get(n) {
                        let got = queue.remove(ticket);
                        match model.iter().position(|&(s, _)| s == serial) {
                            Some(at) => {
                                model.remove(at);
                                prop_assert_eq!(got, Some(serial));
                            }
                            None => prop_assert_eq!(got, None),
                        }
                    }
                }
            }
            prop_assert!(queue.len() <= capacity);
            prop_assert_eq!(queue.len(), model.len());
        }
        // Every started request named its twin exactly once.
        let distinct: HashSet<u64> = twins_named.iter().copied().collect();
        prop_assert_eq!(distinct.len(), twins_named.len());
        prop_assert_eq!(queue.stats().started as usize, started.len() + untagged_started);
    }
}
