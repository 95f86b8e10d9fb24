//! The consecutive-failure streak: one atomic word, epoch (8 bits) | count (56 bits), so a
//! closed period's count never leaks into the next one.

use super::*;

impl StateMachine {
    pub(super) fn extend_streak(&self, epoch: u8) -> u64 {
        let mut streak = self.streak.load(Ordering::Relaxed);
        loop {
            if (streak >> 56) as u8 != epoch {
                return 0;
            }
            let next = (streak & STREAK_MASK).saturating_add(1).min(STREAK_MASK);
            match self.streak.compare_exchange_weak(
                streak,
                u64::from(epoch) << 56 | next,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return next,
                Err(actual) => streak = actual,
            }
        }
    }

    #[inline]
    pub(super) fn end_streak(&self, epoch: u8) {
        // Read first: in the common case there is no streak and the line stays shared.
        let streak = self.streak.load(Ordering::Relaxed);
        if streak & STREAK_MASK != 0 && (streak >> 56) as u8 == epoch {
            let _ = self.streak.compare_exchange(
                streak,
                u64::from(epoch) << 56,
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
        }
    }
}
