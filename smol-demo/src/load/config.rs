//! What a load run sends, how fast, for how long.

use std::time::Duration;

use http::Uri;
use tailguard::ConfigError;

/// The highest rate accepted, in requests per second.
pub const MAX_RATE: f64 = 1_000_000.0;
/// The longest run accepted.
pub const MAX_DURATION: Duration = Duration::from_secs(3600);
/// The most requests in flight accepted.
pub const MAX_CONCURRENCY: usize = 100_000;

/// What to send, how fast, for how long.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadConfig {
    /// `http://host:port/path?query`; every request is a `GET` of it.
    pub url: String,
    /// Requests per second, in (0, 1e6].
    pub rate: f64,
    /// How long to send for, in (0, 1 h].
    pub duration: Duration,
    /// The most requests in flight, in 1..=100000.
    pub concurrency: usize,
    /// Longest wait for one response (connecting included).
    pub timeout: Duration,
    /// Draw a progress bar on stderr, if it is a terminal.
    pub progress: bool,
}

impl LoadConfig {
    /// `rate` requests per second to `url` for `duration`, at most 256 in flight, a 10 s
    /// timeout, no progress bar.
    pub fn new(url: impl Into<String>, rate: f64, duration: Duration) -> Self {
        LoadConfig {
            url: url.into(),
            rate,
            duration,
            concurrency: 256,
            timeout: Duration::from_secs(10),
            progress: false,
        }
    }

    /// The number of requests the run sends (if none is dropped): `⌊rate × duration⌋`.
    pub fn requests(&self) -> u64 {
        (self.rate * self.duration.as_secs_f64()).floor() as u64
    }

    /// Checks every value (not the URL's host, which is resolved when the run starts).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(self.rate > 0.0 && self.rate <= MAX_RATE) {
            return Err(ConfigError::new(
                "rate",
                format!(
                    "must be in (0, {MAX_RATE}] requests per second, got {}",
                    self.rate
                ),
            ));
        }
        if self.duration.is_zero() || self.duration > MAX_DURATION {
            return Err(ConfigError::new(
                "duration",
                format!("must be in (0, {MAX_DURATION:?}], got {:?}", self.duration),
            ));
        }
        if self.requests() == 0 {
            return Err(ConfigError::new(
                "duration",
                format!(
                    "rate × duration must make at least one request, got {} × {:?}",
                    self.rate, self.duration
                ),
            ));
        }
        if !(1..=MAX_CONCURRENCY).contains(&self.concurrency) {
            return Err(ConfigError::new(
                "concurrency",
                format!("must be in 1..={MAX_CONCURRENCY}, got {}", self.concurrency),
            ));
        }
        if self.timeout.is_zero() {
            return Err(ConfigError::new("timeout", "must be longer than zero"));
        }
        parse_url(&self.url)?;
        Ok(())
    }
}

/// The parts of an `http://` URL: host, port, path and query.
pub(super) fn parse_url(url: &str) -> Result<(String, u16, String), ConfigError> {
    let bad = |why: &str| {
        ConfigError::new(
            "url",
            format!("{why}, got `{url}`: write http://host:port/path"),
        )
    };
    let uri: Uri = url.parse().map_err(|_| bad("not a URL"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some(_) => return Err(bad("only http:// is supported")),
        None => return Err(bad("the URL needs http://")),
    }
    let host = uri.host().ok_or_else(|| bad("the URL has no host"))?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let path = uri
        .path_and_query()
        .map_or_else(|| "/".to_string(), |p| p.as_str().to_string());
    let path = if path.is_empty() {
        "/".to_string()
    } else {
        path
    };
    Ok((host, uri.port_u16().unwrap_or(80), path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse() {
        assert_eq!(
            parse_url("http://127.0.0.1:8080/fanout?keys=8").unwrap(),
            ("127.0.0.1".into(), 8080, "/fanout?keys=8".into())
        );
        assert_eq!(
            parse_url("http://localhost").unwrap(),
            ("localhost".into(), 80, "/".into())
        );
        assert_eq!(parse_url("http://[::1]:9/x").unwrap().0, "::1");
        assert!(parse_url("https://x/")
            .unwrap_err()
            .to_string()
            .contains("only http"));
        assert!(parse_url("127.0.0.1:80/x").is_err());
    }

    #[test]
    fn configs_are_validated_by_field() {
        let ok = LoadConfig::new("http://127.0.0.1:1/", 100.0, Duration::from_secs(1));
        assert!(ok.validate().is_ok());
        assert_eq!(ok.requests(), 100);
        for (config, field) in [
            (
                LoadConfig {
                    rate: 0.0,
                    ..ok.clone()
                },
                "rate",
            ),
            (
                LoadConfig {
                    rate: f64::NAN,
                    ..ok.clone()
                },
                "rate",
            ),
            (
                LoadConfig {
                    rate: 2e6,
                    ..ok.clone()
                },
                "rate",
            ),
            (
                LoadConfig {
                    duration: Duration::ZERO,
                    ..ok.clone()
                },
                "duration",
            ),
            (
                LoadConfig {
                    rate: 0.5,
                    ..ok.clone()
                },
                "duration",
            ),
            (
                LoadConfig {
                    concurrency: 0,
                    ..ok.clone()
                },
                "concurrency",
            ),
            (
                LoadConfig {
                    timeout: Duration::ZERO,
                    ..ok.clone()
                },
                "timeout",
            ),
            (
                LoadConfig {
                    url: "ftp://x".into(),
                    ..ok.clone()
                },
                "url",
            ),
        ] {
            assert_eq!(config.validate().unwrap_err().field(), field, "{config:?}");
        }
    }
}
