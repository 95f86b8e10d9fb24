//! What to start: replicas, their profiles, the seed, outages.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;
use std::time::Duration;

use tailguard::ConfigError;

use super::profile::Profile;
use crate::args::parse_duration;

/// The most replicas one process starts.
pub const MAX_REPLICAS: usize = 256;

/// What a replica does while it is down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutageMode {
    /// Like a crashed process: the listener is closed, so new connections are refused, and
    /// open connections are dropped (calls in flight on them fail). When the replica comes
    /// back, it listens on the same port again.
    #[default]
    Refuse,
    /// Like an overloaded or draining process: connections stay open and every request is
    /// answered `503 Service Unavailable` at once.
    Unavailable,
}

impl FromStr for OutageMode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "refuse" => Ok(OutageMode::Refuse),
            "503" | "unavailable" => Ok(OutageMode::Unavailable),
            _ => Err(format!("unknown outage mode `{text}`: use refuse or 503")),
        }
    }
}

impl fmt::Display for OutageMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OutageMode::Refuse => "refuse",
            OutageMode::Unavailable => "503",
        })
    }
}

/// A scheduled outage: replica `replica` is down from `from` to `to` after the start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outage {
    /// The replica's index, from 0.
    pub replica: usize,
    /// When it goes down, after the backends started.
    pub from: Duration,
    /// When it comes back.
    pub to: Duration,
}

impl FromStr for Outage {
    type Err = String;

    /// `R@FROM..TO`, e.g. `1@5s..10s`: replica 1 is down from 5 s to 10 s after the start.
    fn from_str(text: &str) -> Result<Self, String> {
        let usage = "write REPLICA@FROM..TO, like 1@5s..10s";
        let (replica, window) = text
            .split_once('@')
            .ok_or_else(|| format!("`{text}` is not an outage: {usage}"))?;
        let (from, to) = window
            .split_once("..")
            .ok_or_else(|| format!("`{text}` has no time range: {usage}"))?;
        let outage = Outage {
            replica: replica
                .trim()
                .parse()
                .map_err(|_| format!("`{replica}` is not a replica index: {usage}"))?,
            from: parse_duration(from)?,
            to: parse_duration(to)?,
        };
        if outage.to <= outage.from {
            return Err(format!("`{text}` ends before it starts: {usage}"));
        }
        Ok(outage)
    }
}

/// Everything [`Backends::start`](super::Backends::start) needs.
#[derive(Debug, Clone, PartialEq)]
pub struct BackendConfig {
    /// The address every replica listens on.
    pub host: IpAddr,
    /// Replica `i` listens on `base_port + i`; 0 gives each replica any free port.
    pub base_port: u16,
    /// One profile per replica; their number is the number of replicas.
    pub profiles: Vec<Profile>,
    /// Seeds latency samples, errors and stall schedules.
    pub seed: u64,
    /// Scheduled outages.
    pub outages: Vec<Outage>,
    /// What a replica that is down does.
    pub outage_mode: OutageMode,
    /// Whether to serve the control endpoint (on `base_port + replicas`, or any free port).
    pub control: bool,
}

impl BackendConfig {
    /// `replicas` replicas on free loopback ports, all with `profile`, seed 1, no outages,
    /// refusing connections while down, with a control endpoint.
    pub fn uniform(replicas: usize, profile: Profile) -> Self {
        BackendConfig {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            base_port: 0,
            profiles: vec![profile; replicas],
            seed: 1,
            outages: Vec::new(),
            outage_mode: OutageMode::Refuse,
            control: true,
        }
    }

    /// The number of replicas.
    pub fn replicas(&self) -> usize {
        self.profiles.len()
    }

    /// Checks the replica count, the ports, every profile, and that outages name existing
    /// replicas and do not overlap.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let n = self.profiles.len();
        if !(1..=MAX_REPLICAS).contains(&n) {
            return Err(ConfigError::new(
                "replicas",
                format!("must be in 1..={MAX_REPLICAS}, got {n}"),
            ));
        }
        if self.base_port != 0 {
            let last = self.base_port as usize + n - 1 + usize::from(self.control);
            if last > u16::MAX as usize {
                return Err(ConfigError::new(
                    "port",
                    format!(
                        "{n} replicas{} from port {} run past port 65535",
                        if self.control {
                            " and the control port"
                        } else {
                            ""
                        },
                        self.base_port
                    ),
                ));
            }
        }
        for profile in &self.profiles {
            profile.validate()?;
        }
        for (i, outage) in self.outages.iter().enumerate() {
            if outage.replica >= n {
                return Err(ConfigError::new(
                    "outage",
                    format!(
                        "replica {} does not exist: replicas are 0..={}",
                        outage.replica,
                        n - 1
                    ),
                ));
            }
            if outage.to <= outage.from {
                return Err(ConfigError::new(
                    "outage",
                    format!("an outage must end after it starts, got {outage:?}"),
                ));
            }
            let overlaps = self.outages[..i].iter().any(|other| {
                other.replica == outage.replica && other.from < outage.to && outage.from < other.to
            });
            if overlaps {
                return Err(ConfigError::new(
                    "outage",
                    format!(
                        "two outages of replica {} overlap; merge them",
                        outage.replica
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outages_parse() {
        assert_eq!(
            "1@5s..10s".parse::<Outage>(),
            Ok(Outage {
                replica: 1,
                from: Duration::from_secs(5),
                to: Duration::from_secs(10)
            })
        );
        assert!("1@10s..5s"
            .parse::<Outage>()
            .unwrap_err()
            .contains("ends before"));
        assert!("x@1s..2s".parse::<Outage>().is_err());
        assert!("1@1s".parse::<Outage>().is_err());
    }

    #[test]
    fn configs_are_validated_by_field() {
        let ok = BackendConfig::uniform(3, Profile::default());
        assert!(ok.validate().is_ok());
        assert_eq!(
            BackendConfig::uniform(0, Profile::default())
                .validate()
                .unwrap_err()
                .field(),
            "replicas"
        );
        let mut c = ok.clone();
        c.outages.push("3@1s..2s".parse().unwrap());
        assert_eq!(c.validate().unwrap_err().field(), "outage");
        let mut c = ok.clone();
        c.outages.push("1@1s..3s".parse().unwrap());
        c.outages.push("1@2s..4s".parse().unwrap());
        assert!(c.validate().unwrap_err().to_string().contains("overlap"));
        let mut c = ok;
        c.base_port = 65534;
        assert_eq!(c.validate().unwrap_err().field(), "port");
    }
}
