//! Sharing a retry budget, sans IO: the value an instance publishes (`1:at_ms:units`, see
//! SCHEMA.md) and the merge rule that turns the fleet's values into this instance's remote
//! balance. The background thread feeds it the hash it read and the wall-clock time.

use std::collections::HashMap;
use std::time::Instant;

use tailguard::retry::RetryBudget;

/// The format's version, the first field of every value.
const VERSION: &str = "1";

/// One instance's published balance of one budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BudgetEntry {
    /// When it was published, in milliseconds since the Unix epoch on the publisher's clock.
    pub(crate) at_ms: u64,
    /// The publisher's own balance in thousandths of a retry (`RetryBudget::balance_at`).
    pub(crate) units: i64,
}

impl BudgetEntry {
    /// `1:at_ms:units`.
    pub(crate) fn encode(&self) -> String {
        format!("{VERSION}:{}:{}", self.at_ms, self.units)
    }

    /// The entry, or `None` for a value of another version or shape.
    pub(crate) fn decode(value: &str) -> Option<BudgetEntry> {
        let mut parts = value.split(':');
        if parts.next()? != VERSION {
            return None;
        }
        let at_ms = parts.next()?.parse::<u64>().ok()?;
        let units = parts.next()?;
        // `i64::from_str` accepts a leading `+`; the schema does not.
        if units.starts_with('+') {
            return None;
        }
        let units = units.parse::<i64>().ok()?;
        parts
            .next()
            .is_none()
            .then_some(BudgetEntry { at_ms, units })
    }
}

/// What a read of a budget's hash decided.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Merge {
    /// The remote balance to set: this instance's equal share of the fleet's balance, less
    /// its own.
    pub(crate) remote: i64,
    /// Fields too old (or unreadable) to count: remove them.
    pub(crate) stale: Vec<String>,
    /// Other instances with fresh values.
    pub(crate) peers: usize,
}

/// The merge rule (SCHEMA.md, "Retry budgets"): `F = own + Σ fresh peers' units`,
/// `n = 1 + fresh peers`; this instance's view is `floor(F / n)`, so the remote balance is
/// `floor(F / n) - own`. Values older than `stale_after_ms` on `now_ms`, or unreadable, are
/// ignored and listed for removal; `me`'s own field is never counted twice.
pub(crate) fn merge(
    own: i64,
    hash: &HashMap<String, String>,
    me: &str,
    now_ms: u64,
    stale_after_ms: u64,
) -> Merge {
    let mut merge = Merge::default();
    let mut fleet = i128::from(own);
    for (id, value) in hash {
        if id == me {
            continue;
        }
        match BudgetEntry::decode(value) {
            Some(entry) if now_ms.saturating_sub(entry.at_ms) <= stale_after_ms => {
                merge.peers += 1;
                fleet += i128::from(entry.units);
            }
            _ => merge.stale.push(id.clone()),
        }
    }
    let n = 1 + merge.peers as i128;
    let view = fleet.div_euclid(n);
    let remote = view - i128::from(own);
    merge.remote = i64::try_from(remote).unwrap_or(if remote < 0 { i64::MIN } else { i64::MAX });
    merge
}

/// A budget as the thread sees it: its handle and the clock its instants come from.
pub(crate) struct BudgetSlot {
    pub(crate) budget: RetryBudget,
    pub(crate) now: Box<dyn Fn() -> Instant + Send>,
    pub(crate) key: String,
}

impl BudgetSlot {
    /// This instance's value to publish now.
    pub(crate) fn entry(&self, now_ms: u64) -> BudgetEntry {
        BudgetEntry {
            at_ms: now_ms,
            units: self.budget.balance_at((self.now)()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const STALE: u64 = 3_000;

    fn hash(entries: &[(&str, &str)]) -> HashMap<String, String> {
        entries
            .iter()
            .map(|(id, v)| ((*id).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn entries_round_trip_and_foreign_values_are_refused() {
        for units in [0, 1_500, -2_000, i64::MIN, i64::MAX] {
            let entry = BudgetEntry {
                at_ms: 1_764_000_000_123,
                units,
            };
            assert_eq!(BudgetEntry::decode(&entry.encode()), Some(entry));
        }
        assert_eq!(
            BudgetEntry {
                at_ms: 5,
                units: -7
            }
            .encode(),
            "1:5:-7"
        );
        for value in [
            "", "2:1:2", "1:1", "1:1:2:3", "1:-1:2", "1:1:+2", "1:1:x", "1:1:1.5",
        ] {
            assert_eq!(BudgetEntry::decode(value), None, "{value:?}");
        }
    }

    #[test]
    fn the_fleets_balance_is_divided_equally() {
        // Own 1.0 retries, peers 4.0 and -2.0: the fleet holds 3.0, each instance 1.0.
        let h = hash(&[
            ("b", "1:1000:4000"),
            ("c", "1:1000:-2000"),
            ("me", "1:1000:99"),
        ]);
        let m = merge(1_000, &h, "me", 1_000, STALE);
        assert_eq!((m.remote, m.peers), (0, 2));
        // Own 0: it may spend a third of the others' surplus.
        let h = hash(&[("b", "1:1000:6000"), ("c", "1:1000:3000")]);
        let m = merge(0, &h, "me", 1_000, STALE);
        assert_eq!(m.remote, 3_000);
        // A fleet in debt: each instance carries its share, rounded down (the safe side).
        let h = hash(&[("b", "1:1000:-1000")]);
        let m = merge(0, &h, "me", 1_000, STALE);
        assert_eq!(m.remote, -500);
        let h = hash(&[("b", "1:1000:-1001")]);
        assert_eq!(merge(0, &h, "me", 1_000, STALE).remote, -501);
        // The shares add up to no more than the fleet holds.
        let own = [7_001, -3_000, 2_000];
        let total: i64 = own.iter().sum();
        let values: Vec<String> = own.iter().map(|u| format!("1:1000:{u}")).collect();
        let ids = ["a", "b", "c"];
        let h: HashMap<String, String> = ids.iter().map(|s| (*s).to_owned()).zip(values).collect();
        let views: i64 = ids
            .iter()
            .zip(own)
            .map(|(id, units)| units + merge(units, &h, id, 1_000, STALE).remote)
            .sum();
        assert!(views <= total && views > total - 3, "{views} vs {total}");
    }

    #[test]
    fn alone_or_with_only_stale_peers_the_remote_balance_is_zero() {
        assert_eq!(merge(5_000, &HashMap::new(), "me", 1_000, STALE).remote, 0);
        let mut h = hash(&[("old", "1:1000:50000")]);
        h.insert("junk".to_owned(), "v2".to_owned());
        let m = merge(5_000, &h, "me", 1_000 + STALE + 1, STALE);
        assert_eq!((m.remote, m.peers), (0, 0));
        let mut stale = m.stale;
        stale.sort();
        assert_eq!(stale, ["junk", "old"]);
        // Exactly at the limit it still counts.
        let m = merge(5_000, &h, "me", 1_000 + STALE, STALE);
        assert_eq!((m.remote, m.peers), (22_500, 1));
    }

    #[test]
    fn the_published_entry_is_the_budgets_own_balance_in_its_clock() {
        let t0 = Instant::now();
        let budget = RetryBudget::builder()
            .ratio(0.5)
            .min_per_second(0)
            .window(Duration::from_secs(1))
            .build_at(t0)
            .unwrap();
        for _ in 0..3 {
            budget.deposit_at(t0);
        }
        budget.set_remote_balance(10_000);
        let slot = BudgetSlot {
            budget: budget.clone(),
            now: Box::new(move || t0),
            key: "k".to_owned(),
        };
        assert_eq!(
            slot.entry(42),
            BudgetEntry {
                at_ms: 42,
                units: 1_500
            }
        );
        let later = BudgetSlot {
            now: Box::new(move || t0 + Duration::from_secs(2)),
            ..slot
        };
        assert_eq!(later.entry(43).units, 0, "the window slid past the calls");
    }
}
