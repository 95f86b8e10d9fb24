//! A burst of legal fan-outs against healthy replicas, end to end over real sockets on
//! 127.0.0.1 (issue 10, item 7).
//!
//! Ten concurrent `GET /fanout?keys=1000` once opened every replica's breaker: the gateway
//! opened hundreds of connections per replica, and counted its own overload (calls that waited,
//! connected late or timed out before anything was sent) as the replicas' failures. Now each
//! replica's pool is bounded, a fan-out sends a bounded number of calls at once, and only what
//! a replica did counts against its breaker.
//!
//! Real-time tests: judged by shapes (no 502, breakers closed, bounds on connections), never by
//! times.

use std::net::SocketAddr;

use tailguard::breaker::State;
use tailguard::shutdown::Shutdown;
use tailguard_demo::backend::{BackendConfig, Backends, Profile};
use tailguard_demo::client::{ClientConfig, Pool};
use tailguard_demo::gateway::{Gateway, GatewayConfig};
use tailguard_demo::rt::Runtime;
use tailguard_demo::server::{ServeReport, Server, ServerConfig};

/// Three healthy replicas (the default profile: about 5 ms, no errors), and a server with a
/// gateway to them, on one runtime.
struct Stack {
    rt: Runtime,
    backends: Backends,
    gateway: Gateway,
    addr: SocketAddr,
    stop: Shutdown,
    serving: Option<smol::Task<ServeReport>>,
}

impl Stack {
    fn start(tweak: impl FnOnce(&mut GatewayConfig)) -> Stack {
        let rt = Runtime::new(2.try_into().unwrap());
        let backends = rt
            .block_on(Backends::start(
                BackendConfig::uniform(3, Profile::default()),
                rt.executor(),
            ))
            .expect("backends start");
        let mut config = GatewayConfig::new(backends.addrs().to_vec());
        config.seed = Some(7);
        tweak(&mut config);
        let gateway = Gateway::new(config, rt.executor().clone()).expect("gateway config");
        let server = rt
            .block_on(Server::bind(ServerConfig {
                addr: "127.0.0.1:0".parse().unwrap(),
                ..ServerConfig::default()
            }))
            .expect("bind")
            .with_gateway(gateway.clone());
        let addr = server.local_addr().unwrap();
        let stop = Shutdown::new();
        let serving = rt.spawn(server.serve(rt.executor().clone(), stop.signal()));
        Stack {
            rt,
            backends,
            gateway,
            addr,
            stop,
            serving: Some(serving),
        }
    }

    /// `count` concurrent `GET path`, each on its own connection: the statuses and bodies.
    fn burst(&self, path: &str, count: usize) -> Vec<(u16, serde_json::Value)> {
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

    fn shutdown(mut self) -> ServeReport {
        self.stop.trigger();
        let serving = self.serving.take().unwrap();
        self.rt.block_on(serving)
    }
}

fn n(value: &serde_json::Value) -> u64 {
    value
        .as_u64()
        .unwrap_or_else(|| panic!("not a count: {value}"))
}

#[test]
fn a_burst_of_large_fanouts_leaves_healthy_replicas_breakers_closed() {
    let stack = Stack::start(|_| {});
    let max_keys = stack.gateway.config().max_keys;
    let burst = stack.burst(&format!("/fanout?keys={max_keys}"), 10);

    let stats = stack.gateway.stats();
    let statuses: Vec<u16> = burst.iter().map(|(status, _)| *status).collect();
    let opened: Vec<u64> = stats
        .replicas
        .iter()
        .map(|r| r.transitions(State::Closed, State::Open))
        .collect();
    let connections: Vec<u64> = stack
        .backends
        .stats()
        .iter()
        .map(|s| s.connections)
        .collect();
    let peaks: Vec<u64> = stats.replicas.iter().map(|r| r.connections_peak).collect();
    eprintln!("statuses {statuses:?}, breaker opens {opened:?}, connections accepted {connections:?}, peak open {peaks:?}");
    for r in &stats.replicas {
        eprintln!(
            "  replica {}: ok {} failed {} timed_out {} unsent {} rejected {}",
            r.index, r.ok, r.failed, r.timed_out, r.unsent, r.rejected
        );
    }
    for (status, report) in &burst {
        eprintln!(
            "  {status}: ok {} failed {} timed_out {} errors {}",
            report["ok"], report["failed"], report["timed_out"], report["errors"]
        );
    }

    // Every fan-out is answered 200 (partially, if the deadline came first): none is 502.
    for (status, report) in &burst {
        assert_eq!(*status, 200, "{report}");
        assert!(n(&report["ok"]) > 0, "{report}");
    }
    // The replicas never failed: their breakers stayed closed, with nothing counted against
    // them, and the gateway's own limits show as what they are.
    for replica in &stats.replicas {
        assert_eq!(replica.state, State::Closed, "{replica:?}");
        assert!(replica.transitions.is_empty(), "{replica:?}");
        assert_eq!(replica.failed, 0, "{replica:?}");
    }
    for backend in stack.backends.stats() {
        assert_eq!(backend.errors + backend.unavailable, 0, "{backend:?}");
    }
    // Each replica's connections stayed within its pool.
    let pool = stack.gateway.config().pool_size as u64;
    for (replica, peak) in stats.replicas.iter().zip(&peaks) {
        assert!(*peak <= pool, "{peak} connections to {replica:?}");
        assert!(replica.connections_open <= pool, "{replica:?}");
    }

    // Right after, small fan-outs are answered in full.
    for (status, report) in stack.burst("/fanout?keys=16", 5) {
        assert_eq!(status, 200, "{report}");
        assert_eq!(n(&report["ok"]), 16, "{report}");
    }
    assert!(stack.shutdown().drained());
}
