//! Criticality classes, so that under overload the least important work is shed first.
//!
//! Every request carries one of three classes (the names follow Google's criticality levels):
//!
//! | class | meaning | under overload |
//! |---|---|---|
//! | [`Critical`](Criticality::Critical) | a user is waiting and the product fails without it (a login, a checkout) | shed last: may use the whole limit |
//! | [`Default`](Criticality::Default) | ordinary traffic; what a request is when it says nothing | shed after sheddable: may use [`Shares::default_share`] of the limit |
//! | [`Sheddable`](Criticality::Sheddable) | work that can be dropped or redone later (prefetch, batch, analytics, a retry) | shed first: may use [`Shares::sheddable_share`] of the limit |
//!
//! A [`Shares`] gives each class the fraction of the concurrency limit it may fill: a call of
//! a class is admitted only while the calls in flight (of every class) are fewer than its
//! share of the limit. The part of the limit above a class's share is headroom reserved for
//! the classes above it, so as load rises, sheddable work is refused first, then default
//! work, and critical work keeps the whole limit. The
//! [`AdaptiveLimiter`](crate::limit::AdaptiveLimiter) applies them.
//!
//! Over HTTP the class travels in the [`HEADER`] (`tailguard-criticality`), spelled as
//! [`Criticality::as_str`] gives it and read back with [`str::parse`]:
//!
//! ```
//! use tailguard::priority::{Criticality, HEADER};
//!
//! assert_eq!(HEADER, "tailguard-criticality");
//! let class: Criticality = "sheddable".parse()?;
//! assert_eq!(class, Criticality::Sheddable);
//! assert_eq!(Criticality::Critical.to_string(), "critical");
//! assert_eq!(Criticality::default(), Criticality::Default);
//! assert!("urgent".parse::<Criticality>().is_err());
//! # Ok::<(), tailguard::priority::ParseCriticalityError>(())
//! ```

use std::fmt;
use std::str::FromStr;

use crate::validate;
use crate::ConfigError;

/// The request header that carries a request's [`Criticality`]: `tailguard-criticality`.
pub const HEADER: &str = "tailguard-criticality";

/// How important a request is, for shedding under overload; see the [module
/// documentation](self). Ordered from least to most important.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Criticality {
    /// Work that may be dropped under overload (prefetch, batch jobs, retries): shed first.
    Sheddable,
    /// Ordinary traffic, and what a request without a class is.
    #[default]
    Default,
    /// Work the product cannot do without: shed last, may use the whole limit.
    Critical,
}

impl Criticality {
    /// Every class, least important first (the order of [`index`](Self::index)).
    pub const ALL: [Criticality; 3] = [
        Criticality::Sheddable,
        Criticality::Default,
        Criticality::Critical,
    ];

    /// The header spelling: `"critical"`, `"default"` or `"sheddable"`.
    ///
    /// ```
    /// use tailguard::priority::Criticality;
    /// assert_eq!(Criticality::Sheddable.as_str(), "sheddable");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            Criticality::Sheddable => "sheddable",
            Criticality::Default => "default",
            Criticality::Critical => "critical",
        }
    }

    /// 0 for sheddable, 1 for default, 2 for critical: an index into per-class tables.
    ///
    /// ```
    /// use tailguard::priority::Criticality;
    /// assert_eq!(Criticality::Critical.index(), 2);
    /// ```
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Criticality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A header value that is not a criticality class.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseCriticalityError {
    got: String,
}

impl fmt::Display for ParseCriticalityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "criticality must be critical, default or sheddable, got {:?}",
            self.got
        )
    }
}

impl std::error::Error for ParseCriticalityError {}

impl FromStr for Criticality {
    type Err = ParseCriticalityError;

    /// Parses `critical`, `default` or `sheddable`, ignoring ASCII case and surrounding
    /// whitespace (as HTTP header values allow).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let trimmed = s.trim();
        Criticality::ALL
            .into_iter()
            .find(|class| class.as_str().eq_ignore_ascii_case(trimmed))
            .ok_or_else(|| ParseCriticalityError {
                got: s.chars().take(64).collect(),
            })
    }
}

/// The fraction of a concurrency limit each class may fill; critical work always may fill
/// all of it. See the [module documentation](self).
///
/// ```
/// use tailguard::priority::{Criticality, Shares};
///
/// let shares = Shares::new(0.5, 0.9)?;
/// // With a limit of 20: sheddable work is admitted below 10 in flight, default below 18.
/// assert_eq!(shares.cap(Criticality::Sheddable, 20), 10);
/// assert_eq!(shares.cap(Criticality::Default, 20), 18);
/// assert_eq!(shares.cap(Criticality::Critical, 20), 20);
/// // A class's cap is never 0, so no class starves at a tiny limit.
/// assert_eq!(shares.cap(Criticality::Sheddable, 1), 1);
/// assert!(Shares::new(0.9, 0.5).is_err()); // sheddable may not get more than default
/// # Ok::<(), tailguard::ConfigError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Shares {
    sheddable: f64,
    default: f64,
}

impl Shares {
    /// Sheddable work may fill `sheddable` of the limit and default work `default`, both in
    /// (0, 1] with `sheddable ≤ default`. Fields: `shares.sheddable`, `shares.default`.
    pub fn new(sheddable: f64, default: f64) -> Result<Self, ConfigError> {
        let sheddable = validate::rate("shares.sheddable", sheddable, "a fraction of the limit")?;
        let default = validate::rate("shares.default", default, "a fraction of the limit")?;
        if sheddable > default {
            return Err(ConfigError::new(
                "shares.sheddable",
                format!(
                    "must be at most shares.default ({}; sheddable work is shed first), got {}",
                    validate::Float(default),
                    validate::Float(sheddable)
                ),
            ));
        }
        Ok(Shares { sheddable, default })
    }

    /// Every class may fill the whole limit: no priority (what a plain bulkhead does).
    pub const fn equal() -> Self {
        Shares {
            sheddable: 1.0,
            default: 1.0,
        }
    }

    /// The fraction sheddable work may fill.
    pub fn sheddable_share(&self) -> f64 {
        self.sheddable
    }

    /// The fraction default work may fill.
    pub fn default_share(&self) -> f64 {
        self.default
    }

    /// How many calls may be in flight (of every class) for a call of `class` to be admitted
    /// under `limit`: its share of the limit, rounded down but at least 1.
    pub fn cap(&self, class: Criticality, limit: u32) -> u32 {
        let share = match class {
            Criticality::Sheddable => self.sheddable,
            Criticality::Default => self.default,
            Criticality::Critical => return limit,
        };
        ((f64::from(limit) * share) as u32).clamp(1, limit.max(1))
    }
}

impl Default for Shares {
    /// Sheddable work may fill half the limit, default work 90 %: the top tenth is kept for
    /// critical work.
    fn default() -> Self {
        Shares {
            sheddable: 0.5,
            default: 0.9,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_format_round_trip() {
        for class in Criticality::ALL {
            assert_eq!(class.as_str().parse::<Criticality>(), Ok(class));
            assert_eq!(class.to_string(), class.as_str());
        }
        assert_eq!(" Critical ".parse(), Ok(Criticality::Critical));
        assert_eq!("SHEDDABLE".parse(), Ok(Criticality::Sheddable));
        let err = "".parse::<Criticality>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "criticality must be critical, default or sheddable, got \"\""
        );
        let long = "x".repeat(1000);
        assert!(long.parse::<Criticality>().unwrap_err().to_string().len() < 200);
    }

    #[test]
    fn ordered_least_important_first() {
        assert!(Criticality::Sheddable < Criticality::Default);
        assert!(Criticality::Default < Criticality::Critical);
        for (i, class) in Criticality::ALL.into_iter().enumerate() {
            assert_eq!(class.index(), i);
        }
    }

    #[test]
    fn shares_are_checked() {
        assert_eq!(
            Shares::new(0.0, 0.5).unwrap_err().field(),
            "shares.sheddable"
        );
        assert_eq!(Shares::new(0.5, 1.5).unwrap_err().field(), "shares.default");
        assert_eq!(
            Shares::new(f64::NAN, 1.0).unwrap_err().field(),
            "shares.sheddable"
        );
        let err = Shares::new(0.8, 0.6).unwrap_err();
        assert_eq!(err.field(), "shares.sheddable");
        assert!(err.message().contains("at most shares.default"), "{err}");
    }

    #[test]
    fn caps_keep_headroom_for_higher_classes() {
        let shares = Shares::default();
        assert_eq!(shares.cap(Criticality::Sheddable, 100), 50);
        assert_eq!(shares.cap(Criticality::Default, 100), 90);
        assert_eq!(shares.cap(Criticality::Critical, 100), 100);
        for class in Criticality::ALL {
            assert_eq!(Shares::equal().cap(class, 7), 7);
            assert_eq!(shares.cap(class, 1), 1);
        }
    }
}
