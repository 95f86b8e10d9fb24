//! Property tests: hedged calls finish exactly when the model says, and budgets never allow
//! more than their ratio.

use std::time::Duration;

use proptest::prelude::*;
use tailguard::hedge::{Hedge, HedgeBudget};
use tailguard::time::{ManualTimer, Timer};

proptest! {
    /// With a fixed delay `d` and attempts taking `latency[i]`, attempt `i + 1` (attempts are
    /// numbered from 1) starts at `i * d` (while no one has answered), and the call ends at the
    /// earliest `i * d + latency[i]`.
    #[test]
    fn a_call_ends_at_the_first_answer_of_the_schedule(
        delay_ms in 0u64..50,
        latencies in prop::collection::vec(0u64..200, 1..5),
    ) {
        let attempts = latencies.len() as u32;
        let timer = ManualTimer::new();
        let hedge = Hedge::builder()
            .fixed_delay(Duration::from_millis(delay_ms))
            .max_attempts(attempts)
            .unbudgeted()
            .build()
            .unwrap();
        // The model: attempt i + 1 is sent at i * d if nobody answered before that instant
        // (answers at the same instant as a send win: attempts are polled before the timer).
        let mut best: Option<(u64, u32)> = None;
        for (n, &latency) in latencies.iter().enumerate() {
            let sent = n as u64 * delay_ms;
            if let Some((done, _)) = best {
                if done <= sent {
                    break;
                }
            }
            let done = sent + latency;
            if best.is_none_or(|(b, _)| done < b) {
                best = Some((done, n as u32 + 1));
            }
        }
        let (expected_end, expected_winner) = best.unwrap();

        let t = timer.clone();
        let plan = latencies.clone();
        let winner = timer.block_on(hedge.run_with(timer.clone(), move |n| {
            let sleep = t.sleep(Duration::from_millis(plan[n as usize - 1]));
            async move {
                sleep.await;
                Ok::<u32, ()>(n)
            }
        }));
        prop_assert_eq!(timer.elapsed(), Duration::from_millis(expected_end));
        // Ties between attempts finishing at the same instant may go either way.
        let winner = winner.unwrap();
        let index = winner as usize - 1;
        let winner_end = index as u64 * delay_ms + latencies[index];
        prop_assert_eq!(winner_end, expected_end, "winner {} vs model {}", winner, expected_winner);
        prop_assert_eq!(timer.pending_sleeps(), 0);
        let stats = hedge.stats();
        prop_assert_eq!(stats.hedges_won, u64::from(winner > 1));
    }

    /// However deposits and withdrawals interleave across clones, hedges never exceed
    /// `ratio × primaries` with no floor (and the budget never refuses while a whole hedge is
    /// saved).
    #[test]
    fn a_budget_never_allows_more_than_its_ratio(
        per_mille in 0u32..=1000,
        ops in prop::collection::vec((any::<bool>(), 0usize..3), 0..500),
    ) {
        let budget = HedgeBudget::builder()
            .ratio(f64::from(per_mille) / 1000.0)
            .max_burst(1_000)
            .min_per_second(0)
            .build()
            .unwrap();
        let clones = [budget.clone(), budget.clone(), budget];
        let (mut deposits, mut hedges) = (0u64, 0u64);
        for (deposit, which) in ops {
            if deposit {
                clones[which].deposit();
                deposits += 1;
            } else {
                let allowed = deposits * u64::from(per_mille) / 1000 - hedges;
                let granted = clones[which].try_withdraw();
                prop_assert_eq!(granted, allowed >= 1);
                hedges += u64::from(granted);
            }
        }
        prop_assert!(hedges * 1000 <= deposits * u64::from(per_mille));
    }
}
