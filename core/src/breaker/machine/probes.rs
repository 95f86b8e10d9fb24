//! Half-open: admitting exactly `half_open_calls` probes, reclaiming the ones that outlive
//! `half_open_timeout`, and judging each round (close when enough succeeded, reopen as soon as
//! that has become impossible).

use super::*;

impl StateMachine {
    pub(super) fn admit_probe(
        &self,
        control: &mut Control,
        word: u64,
        now: Instant,
    ) -> Result<Ticket, Rejected> {
        let slot = self.probe_room(control, now)?;
        let id = control.next_probe_id;
        control.next_probe_id = id.wrapping_add(1);
        control.probes[slot] = Some(Probe { id, started: now });
        control.probes_in_flight += 1;
        Ok(Ticket {
            generation: word >> 8,
            started: self.nanos(now),
            slot: slot as u32,
            id,
        })
    }

    /// The free probe slot a probe admitted at `now` would take, or the rejection (counted)
    /// if the round has no room. Takes nothing.
    pub(super) fn probe_room(&self, control: &Control, now: Instant) -> Result<usize, Rejected> {
        let taken = control.probes_in_flight + control.probe_successes + control.probe_failures;
        let free = control.probes.iter().position(Option::is_none);
        match free {
            Some(slot) if taken < self.config.half_open_calls => Ok(slot),
            _ => {
                let oldest = control.probes.iter().flatten().map(|p| p.started).min();
                let retry_after = oldest.map_or(Duration::ZERO, |started| {
                    deadline_after(started, self.config.half_open_timeout)
                        .saturating_duration_since(now)
                });
                Err(self.reject(State::HalfOpen, Some(retry_after)))
            }
        }
    }

    /// Counts every probe older than `half_open_timeout` as failed. Returns the new state word
    /// if that reopened the breaker.
    pub(super) fn expire_probes(
        &self,
        control: &mut Control,
        word: u64,
        now: Instant,
        notes: &mut Notes,
    ) -> Option<u64> {
        let timeout = self.config.half_open_timeout;
        let mut expired = 0;
        for probe in control.probes.iter_mut() {
            if matches!(probe, Some(p) if deadline_after(p.started, timeout) <= now) {
                *probe = None;
                expired += 1;
            }
        }
        if expired == 0 {
            return None;
        }
        control.probes_in_flight -= expired;
        control.probe_failures += expired;
        self.judge_round(control, word, now, Reason::ProbeTimedOut, notes)
    }

    /// Closes or reopens once the probe round is decided. Returns the new state word if it did.
    pub(super) fn judge_round(
        &self,
        control: &mut Control,
        word: u64,
        now: Instant,
        failure: Reason,
        notes: &mut Notes,
    ) -> Option<u64> {
        let probes = self.config.half_open_calls;
        let needed = self.config.probes_to_close;
        if control.probe_successes >= needed {
            Some(self.enter(
                control,
                word,
                State::Closed,
                Reason::ProbesSucceeded,
                now,
                notes,
            ))
        } else if control.probe_failures > probes - needed {
            Some(self.enter(control, word, State::Open, failure, now, notes))
        } else {
            None
        }
    }

    #[cold]
    #[inline(never)]
    pub(super) fn record_probe(&self, ticket: Ticket, outcome: Outcome, now: Instant) {
        let mut notes = Notes::default();
        {
            let mut control = self.lock();
            let word = self.state.load(Ordering::Acquire);
            let Some(started) = self.take_probe(
                &mut control,
                word,
                ticket.generation,
                ticket.slot,
                ticket.id,
            ) else {
                return;
            };
            let slow = match self.config.slow_call {
                Some((limit, _)) => now.saturating_duration_since(started) >= limit,
                None => false,
            };
            match outcome {
                Outcome::Ignored => return,
                Outcome::Success if !slow => control.probe_successes += 1,
                Outcome::Success | Outcome::Failure => control.probe_failures += 1,
            }
            self.judge_round(&mut control, word, now, Reason::ProbeFailed, &mut notes);
        }
        self.notify(notes);
    }

    #[cold]
    #[inline(never)]
    pub(super) fn release_probe(&self, generation: u64, slot: u32, id: u32) {
        let mut control = self.lock();
        let word = self.state.load(Ordering::Acquire);
        self.take_probe(&mut control, word, generation, slot, id);
    }

    /// Frees the probe's slot if the probe is still current; returns when it started.
    pub(super) fn take_probe(
        &self,
        control: &mut Control,
        word: u64,
        generation: u64,
        slot: u32,
        id: u32,
    ) -> Option<Instant> {
        if word != generation << 8 | HALF_OPEN {
            return None;
        }
        let entry = control.probes.get_mut(slot as usize)?;
        match *entry {
            Some(probe) if probe.id == id => {
                *entry = None;
                control.probes_in_flight -= 1;
                Some(probe.started)
            }
            _ => None,
        }
    }
}
