//! `HedgeCall`: one async call's hedge state, for the loop in `tailguard/_hedge.py`.

use std::sync::{Mutex, MutexGuard};

use pyo3::prelude::*;
use tailguard::hedge::{AttemptOutcome, Hedge as CoreHedge, HedgeState as CoreHedgeState};

use crate::clock::Clock;

/// One hedged call's decisions (the core's `HedgeState`), driven by the loop in
/// `tailguard/_hedge.py`, on the policy's clock.
#[pyclass(frozen, module = "tailguard")]
pub(crate) struct HedgeCall {
    state: Mutex<CoreHedgeState<CoreHedge>>,
    clock: Clock,
}

impl HedgeCall {
    /// The state of a call its policy has just started.
    pub(super) fn new(state: CoreHedgeState<CoreHedge>, clock: Clock) -> Self {
        HedgeCall {
            state: Mutex::new(state),
            clock,
        }
    }

    fn state(&self) -> MutexGuard<'_, CoreHedgeState<CoreHedge>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[pymethods]
impl HedgeCall {
    /// Seconds until the next hedge is due (0 if it is), or `None` if none will be sent on time
    /// (the attempt cap, a refusal by the budget, or an adaptive policy short of samples).
    fn timeout(&self) -> Option<f64> {
        let due = self.state().next_hedge_at()?;
        Some(
            due.saturating_duration_since(self.clock.now())
                .as_secs_f64(),
        )
    }

    /// Asks to start another attempt now (the delay passed, or an attempt failed): its number if
    /// the attempt cap and the budget allow (it is counted as a hedge sent), else `None`.
    fn try_hedge(&self) -> Option<u32> {
        let mut state = self.state();
        if !state.may_hedge() {
            return None;
        }
        state.try_hedge_at(self.clock.now())
    }

    /// Attempt `attempt` (1 is the primary) ended, successfully if `ok`: records the primary's
    /// latency and counts a hedge's win.
    fn done(&self, attempt: u32, ok: bool) {
        let outcome = if ok {
            AttemptOutcome::Succeeded
        } else {
            AttemptOutcome::Failed
        };
        self.state()
            .attempt_done_at(self.clock.now(), attempt, outcome);
    }

    /// The call is abandoned (cancelled): a primary still out is recorded at the time it had been
    /// out, a lower bound. Does nothing once the call is over.
    fn cancel(&self) {
        self.state().cancel_at(self.clock.now());
    }

    /// Attempts started so far, the primary included.
    #[getter]
    fn attempts(&self) -> u32 {
        self.state().attempts()
    }

    /// Attempts started and not yet done.
    #[getter]
    fn in_flight(&self) -> u32 {
        self.state().in_flight()
    }

    /// The attempt that succeeded (1 is the primary), once one has.
    #[getter]
    fn winner(&self) -> Option<u32> {
        self.state().winner()
    }

    fn __repr__(&self) -> String {
        let state = self.state();
        let winner = state
            .winner()
            .map_or_else(|| "None".to_owned(), |n| n.to_string());
        format!(
            "HedgeCall(attempts={}, in_flight={}, winner={winner})",
            state.attempts(),
            state.in_flight(),
        )
    }
}
