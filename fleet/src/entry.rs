//! One instance's published entry for one breaker: the value of its field in the breaker's
//! Redis hash.

/// What one instance reports about one breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    /// When it was published, in milliseconds since the Unix epoch on the publisher's clock.
    pub(crate) at_ms: u64,
    /// Calls in the publisher's window (zero unless its breaker is closed or disabled).
    pub(crate) calls: u64,
    /// Failed calls among them.
    pub(crate) failures: u64,
    /// Slow calls among them.
    pub(crate) slow: u64,
    /// Nonzero while the publisher's breaker is open on its own evidence (not tripped by the
    /// fleet): an id of that open period (the wall-clock millisecond it opened), so a reader
    /// can tell a new opening from one it has already followed.
    pub(crate) opened: u64,
    /// Whether that open period began with the fleet's failure rate crossing the threshold
    /// (seen by this publisher), rather than the publisher's own window or probes.
    pub(crate) by_rate: bool,
}

use crate::value::{self, VERSION};

impl Entry {
    /// `1:at_ms:calls:failures:slow:opened:by_rate`.
    pub(crate) fn encode(&self) -> String {
        format!(
            "{VERSION}:{}:{}:{}:{}:{}:{}",
            self.at_ms,
            self.calls,
            self.failures,
            self.slow,
            self.opened,
            u8::from(self.by_rate)
        )
    }

    /// The entry, or `None` for a value of another version or shape (ignored, and aged out
    /// like a stale one once it is old: it has no time, so it is removed at once).
    pub(crate) fn decode(value: &str) -> Option<Entry> {
        let [at_ms, calls, failures, slow, opened, by_rate] = value::fields(value)?;
        Some(Entry {
            at_ms: value::unsigned(at_ms)?,
            calls: value::unsigned(calls)?,
            failures: value::unsigned(failures)?,
            slow: value::unsigned(slow)?,
            opened: value::unsigned(opened)?,
            by_rate: match by_rate {
                "0" => false,
                "1" => true,
                _ => return None,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip() {
        let entry = Entry {
            at_ms: 1_764_000_000_123,
            calls: 100,
            failures: 7,
            slow: 3,
            opened: 0,
            by_rate: true,
        };
        assert_eq!(entry.encode(), "1:1764000000123:100:7:3:0:1");
        assert_eq!(Entry::decode(&entry.encode()), Some(entry));
    }

    #[test]
    fn foreign_values_are_refused() {
        for value in [
            "",
            "2:1:2:3:4:5",
            "1:1:2:3:4",
            "1:1:2:3:4:5:6",
            "1:x:2:3:4:5",
            "1:-1:2:3:4:5",
            "1:+1:2:3:4:5:0",
        ] {
            assert_eq!(Entry::decode(value), None, "{value:?}");
        }
    }
}
