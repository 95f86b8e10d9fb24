//! A call's remaining time over the wire: the `tailguard-timeout` request header.
//!
//! A client that has a [`Deadline`] sends the time it has left with each request; the server
//! reads it, bounds its handler by it, and refuses at once work that cannot finish in time.
//! This module is the format only (no IO, no clock), so every transport and the Python binding
//! share it.
//!
//! ## The format
//!
//! The syntax is `grpc-timeout`'s ([gRPC over HTTP/2]):
//!
//! ```text
//! tailguard-timeout: <value><unit>
//! value = 1 to 8 ASCII digits (0-9)          leading zeros allowed; 0 means "already expired"
//! unit  = H (hours) | M (minutes) | S (seconds) | m (milliseconds) | u (microseconds) | n (nanoseconds)
//! ```
//!
//! Nothing else is accepted: no sign, no spaces inside, no fraction, no second unit, no other
//! letter (`ms` and `s` are errors: the unit is one character, and case matters). The largest
//! value, `99999999H`, is over 11 000 years. [`decode`] says exactly what is wrong with a value
//! it refuses ([`HeaderError`]); a server answers such a request `400` with that reason.
//!
//! [`encode`] writes the **finest unit whose value fits in 8 digits** (`n` below 0.1 s, `u`
//! below 100 s, `m` below about 27.8 hours, then `S`, `M`, `H`), and **rounds down**, so the
//! receiver never believes it has more time than the sender had: the loss is under one unit
//! (under a microsecond for anything below 100 s). The value is the time left when the header
//! was written; the time the request then spends in flight is not in it, so a server's view of
//! the deadline is late by the one-way network delay.
//!
//! ```
//! use std::time::Duration;
//! use tailguard::deadline_header::{decode, encode, HEADER_NAME};
//!
//! assert_eq!(HEADER_NAME, "tailguard-timeout");
//! assert_eq!(encode(Duration::from_millis(250)).as_str(), "250000u");
//! assert_eq!(encode(Duration::from_millis(40)).as_str(), "40000000n");
//! assert_eq!(encode(Duration::from_secs(3600)).as_str(), "3600000m");
//!
//! assert_eq!(decode("250m"), Ok(Duration::from_millis(250)));
//! assert_eq!(decode(b"2S"), Ok(Duration::from_secs(2)));
//! let error = decode("250ms").unwrap_err();
//! assert_eq!(
//!     error.to_string(),
//!     "the timeout has a character after its unit 'm': \
//!      expected 1 to 8 digits then one unit (H, M, S, m, u or n), e.g. 250m"
//! );
//! ```
//!
//! [gRPC over HTTP/2]: https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md

use std::fmt;
use std::str;
use std::time::{Duration, Instant};

use crate::time::deadline_after;
use crate::timeout::Deadline;

/// The header's name, lower case as HTTP/2 and HTTP/3 require (HTTP/1 is case-insensitive).
pub const HEADER_NAME: &str = "tailguard-timeout";

/// The most digits a value may have, as in `grpc-timeout`.
pub const MAX_DIGITS: usize = 8;

/// The largest value of 8 digits.
const MAX_VALUE: u64 = 99_999_999;

/// A unit, with its length in nanoseconds, finest first.
const UNITS: [(u8, u64); 6] = [
    (b'n', 1),
    (b'u', 1_000),
    (b'm', 1_000_000),
    (b'S', 1_000_000_000),
    (b'M', 60 * 1_000_000_000),
    (b'H', 3_600 * 1_000_000_000),
];

/// What to say after every reason: the accepted form.
const EXPECTED: &str = "expected 1 to 8 digits then one unit (H, M, S, m, u or n), e.g. 250m";

/// The encoded form of a remaining time, made by [`encode`]: at most 9 ASCII bytes, kept on the
/// stack (encoding allocates nothing).
///
/// ```
/// use std::time::Duration;
/// use tailguard::deadline_header::encode;
///
/// let value = encode(Duration::from_nanos(1_234_567_891));
/// assert_eq!(value.as_str(), "1234567u"); // rounded down to the microsecond
/// assert_eq!(value.duration(), Duration::from_micros(1_234_567));
/// assert_eq!(value.to_string(), "1234567u");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Encoded {
    bytes: [u8; MAX_DIGITS + 1],
    len: u8,
    duration: Duration,
}

impl Encoded {
    /// The header value, e.g. `250000u`.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits and a unit letter are ever written.
        str::from_utf8(self.as_bytes()).unwrap_or_default()
    }

    /// The header value as bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// The time the value stands for: the encoded duration, rounded down to its unit.
    pub fn duration(&self) -> Duration {
        self.duration
    }
}

impl fmt::Display for Encoded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Encoded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Encoded({:?})", self.as_str())
    }
}

/// The header value for `remaining`: the finest unit whose value fits in 8 digits, rounded down
/// (see the [module documentation](self)). Zero is `0n`; anything past `99999999H` is written as
/// `99999999H`, the format's largest value (over 11 000 years: no deadline in practice).
///
/// ```
/// use std::time::Duration;
/// use tailguard::deadline_header::encode;
///
/// assert_eq!(encode(Duration::ZERO).as_str(), "0n");
/// assert_eq!(encode(Duration::from_micros(99_999_999)).as_str(), "99999999u");
/// assert_eq!(encode(Duration::from_secs(100)).as_str(), "100000m");
/// assert_eq!(encode(Duration::MAX).as_str(), "99999999H");
/// ```
pub fn encode(remaining: Duration) -> Encoded {
    let nanos = remaining.as_nanos();
    let (unit, value) = UNITS
        .iter()
        .map(|&(unit, length)| (unit, length, nanos / u128::from(length)))
        .find(|&(_, _, value)| value <= u128::from(MAX_VALUE))
        .map_or((UNITS[5], MAX_VALUE), |(unit, length, value)| {
            ((unit, length), value as u64)
        });
    let mut bytes = [0u8; MAX_DIGITS + 1];
    let mut digits = [0u8; MAX_DIGITS];
    let mut n = 0;
    let mut rest = value;
    loop {
        digits[n] = b'0' + (rest % 10) as u8;
        n += 1;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    for (i, digit) in digits[..n].iter().rev().enumerate() {
        bytes[i] = *digit;
    }
    bytes[n] = unit.0;
    Encoded {
        bytes,
        len: (n + 1) as u8,
        duration: nanos_of(value, unit.1),
    }
}

/// `value` units of `length` nanoseconds each (at most `99999999H`, which fits a `Duration`).
fn nanos_of(value: u64, length: u64) -> Duration {
    let total = u128::from(value) * u128::from(length);
    Duration::new(
        (total / 1_000_000_000) as u64,
        (total % 1_000_000_000) as u32,
    )
}

/// The header value for the time left until `deadline` at `now` (`0n` once it has passed).
///
/// ```
/// use std::time::{Duration, Instant};
/// use tailguard::deadline_header::encode_deadline_at;
/// use tailguard::timeout::Deadline;
///
/// let now = Instant::now();
/// let deadline = Deadline::at(now + Duration::from_millis(30));
/// assert_eq!(encode_deadline_at(deadline, now).as_str(), "30000000n");
/// assert_eq!(encode_deadline_at(deadline, now + Duration::from_secs(1)).as_str(), "0n");
/// ```
pub fn encode_deadline_at(deadline: Deadline, now: Instant) -> Encoded {
    encode(deadline.instant().saturating_duration_since(now))
}

/// The remaining time a header value stands for, or why it is not a valid value (see the
/// [module documentation](self) for the format). Takes the raw bytes (`&str`, `&[u8]`, an
/// `http::HeaderValue`'s `as_bytes()`), since a header value need not be UTF-8.
///
/// ```
/// use std::time::Duration;
/// use tailguard::deadline_header::{decode, HeaderError};
///
/// assert_eq!(decode("0n"), Ok(Duration::ZERO));
/// assert_eq!(decode("007S"), Ok(Duration::from_secs(7)));
/// assert_eq!(decode("99999999H"), Ok(Duration::from_secs(99_999_999 * 3600)));
/// assert_eq!(decode("123456789m"), Err(HeaderError::TooManyDigits(9)));
/// assert_eq!(decode("5s"), Err(HeaderError::UnknownUnit(b's')));
/// assert_eq!(decode("m"), Err(HeaderError::NoDigits));
/// assert_eq!(decode(" 5m"), Err(HeaderError::NotADigit(b' ')));
/// ```
pub fn decode(value: impl AsRef<[u8]>) -> Result<Duration, HeaderError> {
    let value = value.as_ref();
    let Some((&unit, digits)) = value.split_last() else {
        return Err(HeaderError::Empty);
    };
    if let Some(at) = digits.iter().position(|b| !b.is_ascii_digit()) {
        let byte = digits[at];
        // `250ms`: a unit, then more. Say so rather than "'m' is not a digit".
        return Err(if UNITS.iter().any(|&(u, _)| u == byte) {
            HeaderError::AfterUnit(byte)
        } else {
            HeaderError::NotADigit(byte)
        });
    }
    let Some(&(_, length)) = UNITS.iter().find(|&&(u, _)| u == unit) else {
        return Err(if unit.is_ascii_digit() {
            HeaderError::NoUnit
        } else {
            HeaderError::UnknownUnit(unit)
        });
    };
    if digits.is_empty() {
        return Err(HeaderError::NoDigits);
    }
    if digits.len() > MAX_DIGITS {
        return Err(HeaderError::TooManyDigits(digits.len()));
    }
    let value = digits
        .iter()
        .fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0'));
    Ok(nanos_of(value, length))
}

/// The deadline a header value sets for a request received at `now`, or why the value is not
/// valid (as [`decode`]). A value too far ahead for the clock gives a deadline a century away.
///
/// ```
/// use std::time::{Duration, Instant};
/// use tailguard::deadline_header::decode_deadline_at;
///
/// let received = Instant::now();
/// let deadline = decode_deadline_at("250m", received)?;
/// assert_eq!(deadline.instant(), received + Duration::from_millis(250));
/// # Ok::<(), tailguard::deadline_header::HeaderError>(())
/// ```
pub fn decode_deadline_at(value: impl AsRef<[u8]>, now: Instant) -> Result<Deadline, HeaderError> {
    decode(value).map(|remaining| Deadline::at(deadline_after(now, remaining)))
}

/// Why a header value was refused by [`decode`]. Its `Display` is one sentence that quotes the
/// value's problem and the accepted form, fit to send back in a `400`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HeaderError {
    /// The value is empty.
    Empty,
    /// The value ends in a digit: it has no unit.
    NoUnit,
    /// The last character is not one of the six units (the byte).
    UnknownUnit(u8),
    /// A unit with no digits before it.
    NoDigits,
    /// More than [`MAX_DIGITS`] digits (how many).
    TooManyDigits(usize),
    /// A byte before the unit that is not an ASCII digit (a sign, a space, a dot...).
    NotADigit(u8),
    /// A unit followed by more characters, as in `250ms` (the unit).
    AfterUnit(u8),
}

/// `byte` as a quoted character if printable ASCII, else as hex.
struct Byte(u8);

impl fmt::Display for Byte {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_ascii_graphic() {
            write!(f, "'{}'", char::from(self.0))
        } else {
            write!(f, "byte 0x{:02x}", self.0)
        }
    }
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            HeaderError::Empty => write!(f, "the timeout is empty: {EXPECTED}"),
            HeaderError::NoUnit => write!(f, "the timeout has no unit: {EXPECTED}"),
            HeaderError::UnknownUnit(unit) => {
                write!(
                    f,
                    "the timeout ends in {}, which is not a unit: {EXPECTED}",
                    Byte(unit)
                )
            }
            HeaderError::NoDigits => write!(f, "the timeout has no digits: {EXPECTED}"),
            HeaderError::TooManyDigits(n) => {
                write!(
                    f,
                    "the timeout has {n} digits, more than {MAX_DIGITS}: {EXPECTED}"
                )
            }
            HeaderError::NotADigit(byte) => {
                write!(
                    f,
                    "the timeout has {} where a digit belongs: {EXPECTED}",
                    Byte(byte)
                )
            }
            HeaderError::AfterUnit(unit) => write!(
                f,
                "the timeout has a character after its unit {}: {EXPECTED}",
                Byte(unit)
            ),
        }
    }
}

impl std::error::Error for HeaderError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unit_decodes_to_its_length() {
        assert_eq!(decode("3H"), Ok(Duration::from_secs(3 * 3600)));
        assert_eq!(decode("3M"), Ok(Duration::from_secs(180)));
        assert_eq!(decode("3S"), Ok(Duration::from_secs(3)));
        assert_eq!(decode("3m"), Ok(Duration::from_millis(3)));
        assert_eq!(decode("3u"), Ok(Duration::from_micros(3)));
        assert_eq!(decode("3n"), Ok(Duration::from_nanos(3)));
        assert_eq!(decode("00000000n"), Ok(Duration::ZERO));
        assert_eq!(decode("99999999n"), Ok(Duration::from_nanos(MAX_VALUE)));
    }

    #[test]
    fn every_malformed_value_says_what_is_wrong() {
        let cases: [(&[u8], HeaderError); 12] = [
            (b"", HeaderError::Empty),
            (b"250", HeaderError::NoUnit),
            (b"250x", HeaderError::UnknownUnit(b'x')),
            (b"250s", HeaderError::UnknownUnit(b's')),
            (b"250 ", HeaderError::UnknownUnit(b' ')),
            (b"H", HeaderError::NoDigits),
            (b"123456789n", HeaderError::TooManyDigits(9)),
            (b"-5m", HeaderError::NotADigit(b'-')),
            (b"+5m", HeaderError::NotADigit(b'+')),
            (b"2.5S", HeaderError::NotADigit(b'.')),
            (b"250ms", HeaderError::AfterUnit(b'm')),
            (b"\xff5m", HeaderError::NotADigit(0xff)),
        ];
        for (value, expected) in cases {
            let error = decode(value).unwrap_err();
            assert_eq!(error, expected, "{value:?}");
            let message = error.to_string();
            assert!(message.starts_with("the timeout "), "{message}");
            assert!(message.ends_with(EXPECTED), "{message}");
        }
        assert!(HeaderError::NotADigit(0xff)
            .to_string()
            .contains("byte 0xff"));
        assert!(HeaderError::UnknownUnit(b'x').to_string().contains("'x'"));
    }

    #[test]
    fn encoding_picks_the_finest_unit_that_fits_and_rounds_down() {
        let cases = [
            (Duration::from_nanos(1), "1n"),
            (Duration::from_nanos(99_999_999), "99999999n"),
            (Duration::from_nanos(100_000_000), "100000u"),
            (Duration::from_nanos(100_000_999), "100000u"),
            (Duration::from_secs(99), "99000000u"),
            (Duration::from_secs(100), "100000m"),
            (Duration::from_millis(99_999_999), "99999999m"),
            (Duration::from_millis(100_000_000), "100000S"),
            (Duration::from_secs(99_999_999), "99999999S"),
            (Duration::from_secs(100_000_000), "1666666M"),
            (Duration::from_secs(99_999_999 * 60), "99999999M"),
            (Duration::from_secs(100_000_000 * 60), "1666666H"),
            (Duration::from_secs(99_999_999 * 3600), "99999999H"),
            (Duration::from_secs(100_000_000 * 3600), "99999999H"),
        ];
        for (duration, expected) in cases {
            let encoded = encode(duration);
            assert_eq!(encoded.as_str(), expected, "{duration:?}");
            assert!(encoded.duration() <= duration, "{duration:?}: rounded up");
        }
    }

    #[test]
    fn what_is_encoded_decodes_to_its_duration_never_more_than_given() {
        let mut rng = fastrand::Rng::with_seed(11);
        for _ in 0..10_000 {
            let shift = rng.u32(0..64);
            let duration = Duration::from_nanos(rng.u64(..u64::MAX >> shift));
            let encoded = encode(duration);
            assert!(encoded.len as usize <= MAX_DIGITS + 1);
            let decoded = decode(encoded.as_bytes()).unwrap();
            assert_eq!(decoded, encoded.duration(), "{encoded:?}");
            assert!(decoded <= duration);
            // Under one unit lost, and the unit is the finest that fits: a coarser unit is
            // used only from 10^8 of the finer one, so at most 1000 times coarser, the loss is
            // under 1/10^5 of the value.
            let lost = duration - decoded;
            assert!(
                lost.as_nanos() * 100_000 <= duration.as_nanos(),
                "{duration:?} -> {encoded:?}"
            );
        }
    }

    #[test]
    fn a_deadline_decodes_relative_to_now_and_encodes_back() {
        let now = Instant::now();
        let deadline = decode_deadline_at("1500m", now).unwrap();
        assert_eq!(deadline.instant(), now + Duration::from_millis(1500));
        let later = now + Duration::from_millis(500);
        assert_eq!(encode_deadline_at(deadline, later).as_str(), "1000000u");
        assert!(decode_deadline_at("99999999H", now).unwrap().instant() > now);
        assert_eq!(
            decode_deadline_at("x", now),
            Err(HeaderError::UnknownUnit(b'x'))
        );
    }
}
