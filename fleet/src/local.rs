//! A throwaway `redis-server` on 127.0.0.1, for tests and demos: started on a free port with
//! no persistence, stopped when dropped.

use std::fmt;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How to get the server, for messages.
pub const INSTALL_HINT: &str =
    "install Redis's server (Debian/Ubuntu: `apt-get install redis-server`; or valkey-server)";

/// A `redis-server` this process started on 127.0.0.1 (`--save '' --appendonly no`); killed
/// when dropped.
///
/// ```no_run
/// use tailguard_fleet::local::LocalRedis;
///
/// let mut redis = LocalRedis::start()?;
/// println!("{}", redis.url());
/// redis.stop(); // an outage...
/// redis.restart()?; // ...and the same port again
/// # Ok::<(), String>(())
/// ```
pub struct LocalRedis {
    port: u16,
    binary: String,
    child: Option<Child>,
}

impl LocalRedis {
    /// Whether `redis-server` (or `valkey-server`) can be run, and which.
    pub fn binary() -> Option<String> {
        ["redis-server", "valkey-server"]
            .into_iter()
            .find_map(|name| {
                Command::new(name)
                    .arg("--version")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .ok()
                    .filter(|status| status.success())
                    .map(|_| name.to_owned())
            })
    }

    /// Starts a server on a free port and waits (up to 10 s) until it answers `PING`.
    ///
    /// # Errors
    ///
    /// Why not, in words (not installed: with [`INSTALL_HINT`]).
    pub fn start() -> Result<LocalRedis, String> {
        let binary =
            Self::binary().ok_or_else(|| format!("no redis-server found: {INSTALL_HINT}"))?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let mut server = LocalRedis {
            port,
            binary,
            child: None,
        };
        server.restart()?;
        Ok(server)
    }

    /// `redis://127.0.0.1:{port}/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the server is running (started and not stopped).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the server (an outage); [`restart`](Self::restart) brings it back on the same port.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the server (`SIGSTOP`): it keeps its port and connections but answers nothing,
    /// like a Redis stuck in a long command or a stalled host. [`thaw`](Self::thaw) resumes it.
    ///
    /// # Errors
    ///
    /// If it is not running or the signal could not be sent.
    pub fn freeze(&self) -> Result<(), String> {
        self.signal("-STOP")
    }

    /// Resumes a [frozen](Self::freeze) server (`SIGCONT`).
    ///
    /// # Errors
    ///
    /// If it is not running or the signal could not be sent.
    pub fn thaw(&self) -> Result<(), String> {
        self.signal("-CONT")
    }

    fn signal(&self, signal: &str) -> Result<(), String> {
        let child = self.child.as_ref().ok_or("the server is not running")?;
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .map_err(|e| format!("could not run kill: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("kill {signal} failed: {status}"))
        }
    }

    /// Starts the server again on its port (empty: nothing is persisted) and waits until it
    /// answers `PING`.
    ///
    /// # Errors
    ///
    /// If it could not be started or did not answer within 10 s.
    pub fn restart(&mut self) -> Result<(), String> {
        self.stop();
        let child = Command::new(&self.binary)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("could not run {}: {e}", self.binary))?;
        self.child = Some(child);
        let client = redis::Client::open(self.url()).map_err(|e| e.to_string())?;
        let give_up = Instant::now() + Duration::from_secs(10);
        loop {
            let pong = client
                .get_connection_with_timeout(Duration::from_millis(200))
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
            match pong {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() >= give_up => {
                    self.stop();
                    return Err(format!(
                        "{} on port {} did not answer: {e}",
                        self.binary, self.port
                    ));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}

impl Drop for LocalRedis {
    fn drop(&mut self) {
        let _ = self.thaw();
        self.stop();
    }
}

impl fmt::Debug for LocalRedis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalRedis")
            .field("port", &self.port)
            .field("running", &self.is_running())
            .finish()
    }
}
