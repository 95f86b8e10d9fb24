//! Per-replica overload control in the gateway: an adaptive concurrency limit
//! ([`tailguard::limit::AdaptiveLimiter`]) and client-side throttling
//! ([`tailguard::throttle::Throttle`]) in front of each replica, and how a call's outcome is
//! reported to them.
//!
//! The rules (the order of the checks, what a refusal does, and the table of what each outcome
//! tells the limit and the throttle) are in the [gateway's documentation](super).

use std::fmt;
use std::str::FromStr;
use std::time::Instant;

use http::{HeaderMap, HeaderValue, StatusCode};
use tailguard::limit::{AdaptiveLimiter, Aimd, Gradient2, Outcome, Permit, Reason};
use tailguard::priority::{Criticality, HEADER};
use tailguard::throttle::Throttle;
use tailguard::time::DefaultTimer;
use tailguard::ConfigError;

use super::{GatewayConfig, Inner, Replica};
use crate::metrics::{Counter, Kind, PromText};

/// The adaptive concurrency limit in front of each replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReplicaLimit {
    /// No limit (the pool size still bounds the connections).
    #[default]
    Off,
    /// Gradient2: the limit follows the ratio of the replica's no-load latency to its latest.
    Gradient2,
    /// AIMD: one more per sample, halved on a drop (503, 429 or a timeout).
    Aimd,
}

impl FromStr for ReplicaLimit {
    type Err = String;

    /// `off`, `gradient2` or `aimd`.
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "off" => Ok(ReplicaLimit::Off),
            "gradient2" => Ok(ReplicaLimit::Gradient2),
            "aimd" => Ok(ReplicaLimit::Aimd),
            _ => Err(format!(
                "`{text}` is not a replica limit: write off, gradient2 or aimd"
            )),
        }
    }
}

impl fmt::Display for ReplicaLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReplicaLimit::Off => "off",
            ReplicaLimit::Gradient2 => "gradient2",
            ReplicaLimit::Aimd => "aimd",
        })
    }
}

/// A replica's limiter, as configured (`None`: off).
pub(super) fn limiter(config: &GatewayConfig) -> Result<Option<AdaptiveLimiter>, ConfigError> {
    let builder = AdaptiveLimiter::builder()
        .initial_limit(config.replica_limit_initial)
        .max_limit(config.replica_limit_max);
    let builder = match config.replica_limit {
        ReplicaLimit::Off => return Ok(None),
        ReplicaLimit::Gradient2 => builder.algorithm(Gradient2::new()),
        ReplicaLimit::Aimd => builder.algorithm(Aimd::new(0.5)?),
    };
    let builder = match config.seed {
        Some(seed) => builder.seed(seed),
        None => builder,
    };
    builder.build().map(Some).map_err(|error| {
        let field = match error.field() {
            "initial_limit" => "replica_limit_initial",
            "max_limit" | "min_limit" => "replica_limit_max",
            other => other,
        };
        ConfigError::new(field, error.message().to_owned())
    })
}

/// A replica's throttle, as configured (`None`: off).
pub(super) fn throttle(
    config: &GatewayConfig,
    index: usize,
) -> Result<Option<Throttle<DefaultTimer>>, ConfigError> {
    let Some(k) = config.throttle_k else {
        return Ok(None);
    };
    let builder = Throttle::builder().k(k);
    let builder = match config.seed {
        Some(seed) => builder.seed(seed.wrapping_add(index as u64)),
        None => builder,
    };
    builder
        .build_with(DefaultTimer::default())
        .map(Some)
        .map_err(|error| ConfigError::new("throttle_k", error.message().to_owned()))
}

/// The header forwarding the caller's class to a replica (`None` for
/// [`Default`](Criticality::Default), which is what no header means).
pub(super) fn class_headers() -> [Option<HeaderMap>; 3] {
    Criticality::ALL.map(|class| {
        (class != Criticality::Default).then(|| {
            let mut headers = HeaderMap::new();
            headers.insert(HEADER, HeaderValue::from_static(class.as_str()));
            headers
        })
    })
}

/// What a call got, for the limiter and the throttle (see the table in the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Answered 2xx.
    Success,
    /// Refused for overload (503, 429) or timed out.
    Overload,
    /// Answered, but not with a success: the replica took the request.
    Answered,
    /// Says nothing about the replica's load.
    Nothing,
}

impl Verdict {
    /// The verdict of a reply with `status`.
    pub(super) fn of_status(status: StatusCode) -> Verdict {
        if status.is_success() {
            Verdict::Success
        } else if status == StatusCode::SERVICE_UNAVAILABLE
            || status == StatusCode::TOO_MANY_REQUESTS
        {
            Verdict::Overload
        } else {
            Verdict::Answered
        }
    }
}

/// The limiter's and the throttle's permits for one call to one replica; dropped without a
/// verdict (the call was cancelled), both are released without a sample.
pub(super) struct Admitted<'a> {
    pub(super) limit: Option<Permit>,
    pub(super) throttle: Option<tailguard::throttle::Permit<'a, DefaultTimer>>,
}

impl Admitted<'_> {
    /// Neither a limit nor a throttle.
    pub(super) fn none() -> Self {
        Admitted {
            limit: None,
            throttle: None,
        }
    }

    /// Reports the call's `verdict` now.
    pub(super) fn finish(mut self, verdict: Verdict) {
        if self.limit.is_none() && self.throttle.is_none() {
            return;
        }
        let now = Instant::now();
        if let Some(permit) = self.limit.take() {
            let outcome = match verdict {
                Verdict::Success => Outcome::Success,
                Verdict::Overload => Outcome::Dropped,
                Verdict::Answered | Verdict::Nothing => Outcome::Ignored,
            };
            permit.record_at(outcome, now);
        }
        if let Some(permit) = self.throttle.take() {
            match verdict {
                Verdict::Success | Verdict::Answered => permit.record_at(true, now),
                Verdict::Overload => permit.record_at(false, now),
                // Dropped unrecorded: counts as nothing.
                Verdict::Nothing => drop(permit),
            }
        }
    }
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        // Cancelled: not a drop for the limit (a hedge that lost measured nothing).
        if let Some(permit) = self.limit.take() {
            permit.ignore();
        }
    }
}

impl Inner {
    /// Asks `replica`'s adaptive limit (for a call of `class`), then its throttle: both
    /// permits, or the kind of the refusal (`replica_limit`, `throttled`), counted.
    pub(super) fn admit<'a>(
        &self,
        replica: &'a Replica,
        class: Criticality,
    ) -> Result<Admitted<'a>, &'static str> {
        if replica.limiter.is_none() && replica.throttle.is_none() {
            return Ok(Admitted::none());
        }
        let now = Instant::now();
        let limit = match &replica.limiter {
            None => None,
            // The limiter counts its refusals by reason and class itself.
            Some(limiter) => match limiter.try_acquire_class_at(class, now) {
                Ok(permit) => Some(permit),
                Err(_) => return Err("replica_limit"),
            },
        };
        let throttle = match &replica.throttle {
            None => None,
            Some(throttle) => match throttle.try_acquire_at(now) {
                Ok(permit) => Some(permit),
                Err(_) => {
                    replica.refusals.throttled[class.index()].bump();
                    // Dropping the limit's permit with `Admitted` ignores it: no sample.
                    drop(Admitted {
                        limit,
                        throttle: None,
                    });
                    return Err("throttled");
                }
            },
        };
        Ok(Admitted { limit, throttle })
    }
}

/// Why a replica's limiter or throttle refused, by class.
#[derive(Default)]
pub(super) struct Refusals {
    /// Throttled locally, by [`Criticality::index`].
    pub(super) throttled: [Counter; 3],
}

/// Writes the replicas' limits, calls in flight, refusals by reason and class, and throttle
/// refusal probabilities.
pub(super) fn write_metrics(replicas: &[Replica], out: &mut PromText) {
    let now = Instant::now();
    let limited = || {
        replicas
            .iter()
            .filter_map(|r| r.limiter.as_ref().map(|l| (r.index, l)))
    };
    if limited().next().is_some() {
        out.family(
            "tailguard_replica_limit",
            Kind::Gauge,
            "Each replica's adaptive concurrency limit now (--replica-limit).",
        );
        for (i, limiter) in limited() {
            out.sample(
                "tailguard_replica_limit",
                &[("replica", &i.to_string())],
                limiter.limit(),
            );
        }
        out.family(
            "tailguard_replica_limit_in_flight",
            Kind::Gauge,
            "Calls in flight to each replica, as its adaptive limit counts them.",
        );
        for (i, limiter) in limited() {
            out.sample(
                "tailguard_replica_limit_in_flight",
                &[("replica", &i.to_string())],
                limiter.in_flight(),
            );
        }
    }
    let throttled = || {
        replicas
            .iter()
            .filter_map(|r| r.throttle.as_ref().map(|t| (r.index, t)))
    };
    if throttled().next().is_some() {
        out.family(
            "tailguard_replica_throttle_probability",
            Kind::Gauge,
            "The probability that a call to each replica is refused locally now (--throttle-k).",
        );
        for (i, throttle) in throttled() {
            out.sample(
                "tailguard_replica_throttle_probability",
                &[("replica", &i.to_string())],
                throttle.rejection_probability_at(now),
            );
        }
    }
    if limited().next().is_none() && throttled().next().is_none() {
        return;
    }
    out.family(
        "tailguard_replica_rejections_total",
        Kind::Counter,
        "Calls a replica's adaptive limit (reason limit, shed or probe) or throttle (reason \
         throttle) refused locally, by the caller's class; the call moved to another replica.",
    );
    for replica in replicas {
        let index = replica.index.to_string();
        if let Some(limiter) = &replica.limiter {
            let metrics = limiter.metrics();
            for reason in Reason::ALL {
                for class in Criticality::ALL {
                    out.sample(
                        "tailguard_replica_rejections_total",
                        &[
                            ("replica", &index),
                            ("reason", reason.as_str()),
                            ("class", class.as_str()),
                        ],
                        metrics.rejected(reason, class) as f64,
                    );
                }
            }
        }
        if replica.throttle.is_some() {
            for class in Criticality::ALL {
                out.sample(
                    "tailguard_replica_rejections_total",
                    &[
                        ("replica", &index),
                        ("reason", "throttle"),
                        ("class", class.as_str()),
                    ],
                    replica.refusals.throttled[class.index()].get() as f64,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replica_limits_parse_and_print() {
        for mode in [
            ReplicaLimit::Off,
            ReplicaLimit::Gradient2,
            ReplicaLimit::Aimd,
        ] {
            assert_eq!(mode.to_string().parse::<ReplicaLimit>(), Ok(mode));
        }
        assert!("vegas"
            .parse::<ReplicaLimit>()
            .unwrap_err()
            .contains("gradient2"));
    }

    #[test]
    fn the_callers_class_is_forwarded_unless_it_is_the_default() {
        let headers = class_headers();
        for class in Criticality::ALL {
            let sent = headers[class.index()]
                .as_ref()
                .and_then(|h| h.get(HEADER))
                .map(|v| v.to_str().unwrap().to_owned());
            let expected = (class != Criticality::Default).then(|| class.as_str().to_owned());
            assert_eq!(sent, expected, "{class}");
        }
    }

    #[test]
    fn overload_is_503_or_429_and_the_rest_was_taken() {
        assert_eq!(Verdict::of_status(StatusCode::OK), Verdict::Success);
        assert_eq!(
            Verdict::of_status(StatusCode::SERVICE_UNAVAILABLE),
            Verdict::Overload
        );
        assert_eq!(
            Verdict::of_status(StatusCode::TOO_MANY_REQUESTS),
            Verdict::Overload
        );
        assert_eq!(
            Verdict::of_status(StatusCode::INTERNAL_SERVER_ERROR),
            Verdict::Answered
        );
        assert_eq!(Verdict::of_status(StatusCode::NOT_FOUND), Verdict::Answered);
    }

    #[test]
    fn a_cancelled_call_gives_its_slot_back_without_a_drop() {
        let config = GatewayConfig {
            replica_limit: ReplicaLimit::Aimd,
            replica_limit_initial: 4,
            ..GatewayConfig::default()
        };
        let limiter = limiter(&config).unwrap().unwrap();
        let now = Instant::now();
        let admitted = Admitted {
            limit: Some(limiter.try_acquire_at(now).unwrap()),
            throttle: None,
        };
        assert_eq!(limiter.in_flight(), 1);
        drop(admitted);
        assert_eq!(limiter.in_flight(), 0);
        assert_eq!(limiter.metrics().samples, 0, "no sample, so no back-off");
        assert_eq!(limiter.limit(), 4);
    }

    #[test]
    fn bad_settings_are_refused_naming_the_gateways_field() {
        let bad = GatewayConfig {
            replica_limit: ReplicaLimit::Gradient2,
            replica_limit_initial: 0,
            ..GatewayConfig::default()
        };
        assert_eq!(limiter(&bad).unwrap_err().field(), "replica_limit_initial");
        let bad = GatewayConfig {
            throttle_k: Some(-1.0),
            ..GatewayConfig::default()
        };
        assert_eq!(throttle(&bad, 0).unwrap_err().field(), "throttle_k");
    }
}
