//! What the gateway tests share: simulated replicas and a server with a gateway to them, on one
//! runtime, driven over real sockets on 127.0.0.1.

#![allow(dead_code)] // each test file uses its own part

use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tailguard::shutdown::Shutdown;
use tailguard_demo::backend::{BackendConfig, Backends, LatencyDist, Profile};
use tailguard_demo::client::{ClientConfig, Pool};
use tailguard_demo::gateway::{Gateway, GatewayConfig};
use tailguard_demo::rt::Runtime;
use tailguard_demo::server::{ServeReport, Server, ServerConfig};

/// One stack at a time: each test's load is sized against the machine's two cores, and two
/// stacks at once would measure the test harness's own overload (calls timing out while their
/// tasks wait for a core), the opposite of what these tests are about.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Backends, and a server with a gateway to them, on one runtime.
pub struct Stack {
    pub rt: Runtime,
    pub backends: Backends,
    pub gateway: Gateway,
    pub addr: SocketAddr,
    pub client: Pool,
    pub stop: Shutdown,
    pub serving: Option<smol::Task<ServeReport>>,
    /// Held while the stack lives (last, so it is released after everything above has been
    /// dropped); a test that takes the stack apart keeps it bound until its end.
    pub one_at_a_time: MutexGuard<'static, ()>,
}

/// A replica profile that answers after exactly `ms` milliseconds.
pub fn fixed(ms: u64) -> Profile {
    Profile {
        latency: LatencyDist::Fixed(Duration::from_millis(ms)),
        ..Profile::default()
    }
}

/// A JSON count.
pub fn n(value: &serde_json::Value) -> u64 {
    value
        .as_u64()
        .unwrap_or_else(|| panic!("not a count: {value}"))
}

impl Stack {
    /// `backends`, and the gateway configured by `tweak` (seed 7), with a 3 s shutdown deadline.
    pub fn start(backends: BackendConfig, tweak: impl FnOnce(&mut GatewayConfig)) -> Stack {
        Stack::start_with(backends, Duration::from_secs(3), tweak)
    }

    pub fn start_with(
        backends: BackendConfig,
        shutdown_deadline: Duration,
        tweak: impl FnOnce(&mut GatewayConfig),
    ) -> Stack {
        // A test that failed still held it: the next one starts afresh all the same.
        let one_at_a_time = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let rt = Runtime::new(2.try_into().unwrap());
        let backends = rt
            .block_on(Backends::start(backends, rt.executor()))
            .expect("backends start");
        let mut config = GatewayConfig::new(backends.addrs().to_vec());
        config.seed = Some(7);
        tweak(&mut config);
        let gateway = Gateway::new(config, rt.executor().clone()).expect("gateway config");
        let server = rt
            .block_on(Server::bind(ServerConfig {
                addr: "127.0.0.1:0".parse().unwrap(),
                shutdown_deadline,
                ..ServerConfig::default()
            }))
            .expect("bind")
            .with_gateway(gateway.clone());
        let addr = server.local_addr().unwrap();
        let stop = Shutdown::new();
        let serving = rt.spawn(server.serve(rt.executor().clone(), stop.signal()));
        let client = Pool::new(addr, ClientConfig::default(), rt.executor().clone());
        Stack {
            rt,
            backends,
            gateway,
            addr,
            client,
            stop,
            serving: Some(serving),
            one_at_a_time,
        }
    }

    /// `GET path` on the stack's pooled client: the status and the body as text.
    pub fn get(&self, path: &str) -> (u16, String) {
        let reply = self
            .rt
            .block_on(self.client.get(path))
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        (
            reply.status.as_u16(),
            String::from_utf8_lossy(&reply.body).into_owned(),
        )
    }

    /// `GET /fanout?keys=N`: its report (answered 200, or with no key read).
    pub fn fanout(&self, keys: usize) -> serde_json::Value {
        let (status, body) = self.get(&format!("/fanout?keys={keys}"));
        let report: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        assert!(
            status == 200 || report["ok"] == 0,
            "status {status} for {report}"
        );
        report
    }

    /// `count` concurrent `GET path`, each on its own connection: the statuses and bodies.
    pub fn burst(&self, path: &str, count: usize) -> Vec<(u16, serde_json::Value)> {
        let client = Pool::new(
            self.addr,
            ClientConfig::default(),
            self.rt.executor().clone(),
        );
        let calls: Vec<_> = (0..count)
            .map(|_| {
                let (client, path) = (client.clone(), path.to_owned());
                self.rt.spawn(async move { client.get(&path).await })
            })
            .collect();
        calls
            .into_iter()
            .map(|call| {
                let reply = self
                    .rt
                    .block_on(call)
                    .unwrap_or_else(|e| panic!("GET {path}: {e}"));
                let body = serde_json::from_slice(&reply.body).unwrap_or_else(|_| {
                    serde_json::Value::String(String::from_utf8_lossy(&reply.body).into())
                });
                (reply.status.as_u16(), body)
            })
            .collect()
    }

    /// Stops the server and waits for its report.
    pub fn shutdown(mut self) -> ServeReport {
        self.stop.trigger();
        let serving = self.serving.take().unwrap();
        self.rt.block_on(serving)
    }
}
