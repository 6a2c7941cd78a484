//! What the gRPC link costs next to the in-memory transport, on loopback:
//! (a) one large opening (64 MB each way by default): throughput and
//! overhead; (b) 1000 tiny rounds: latency per round; (c) the same with WAN
//! shaping (`rtt=70ms,bw=40MB/s`): `ShapedTransport` over memory vs the
//! shaping inside `GrpcTransport`; plus gRPC with mutual TLS for (a), (b).
//!
//! `cargo run --release -p ariann-net --example net_overhead -- [--json]
//! [--mb 64] [--rounds 1000] [--wan rtt=70ms,bw=40MB/s] [--wan-rounds 20]
//! [--wan-mb 8]`

use ariann_fss::Party;
use ariann_mpc::{MemTransport, ShapedTransport, Transport};
use ariann_net::{GrpcTransport, LinkSecret, Listener, NetConfig, TlsConfig, WanShape};
use std::time::{Duration, Instant};

struct Args {
    json: bool,
    mb: usize,
    rounds: usize,
    wan: WanShape,
    wan_rounds: usize,
    wan_mb: usize,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        json: false,
        mb: 64,
        rounds: 1000,
        wan: "rtt=70ms,bw=40MB/s".parse().map_err(|e| format!("{e}"))?,
        wan_rounds: 20,
        wan_mb: 8,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut val = || it.next().ok_or(format!("{k} needs a value"));
        match k.as_str() {
            "--json" => a.json = true,
            "--mb" => a.mb = val()?.parse().map_err(|e| format!("--mb: {e}"))?,
            "--rounds" => a.rounds = val()?.parse().map_err(|e| format!("--rounds: {e}"))?,
            "--wan" => a.wan = val()?.parse().map_err(|e| format!("--wan: {e}"))?,
            "--wan-rounds" => {
                a.wan_rounds = val()?.parse().map_err(|e| format!("--wan-rounds: {e}"))?
            }
            "--wan-mb" => a.wan_mb = val()?.parse().map_err(|e| format!("--wan-mb: {e}"))?,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(a)
}

/// Runs `job` on both ends (party 1 on a thread); returns party 0's wall time.
fn timed<T: Transport + Send>(
    t0: &mut T,
    t1: &mut T,
    job: &(dyn Fn(&mut dyn Transport) + Sync),
) -> f64 {
    std::thread::scope(|s| {
        let h = s.spawn(|| job(t1));
        let start = Instant::now();
        job(t0);
        let secs = start.elapsed().as_secs_f64();
        h.join().expect("party 1");
        secs
    })
}

fn grpc_pair(
    tag: &str,
    tls: Option<(TlsConfig, TlsConfig)>,
    wan: Option<WanShape>,
) -> (GrpcTransport, GrpcTransport) {
    let session = format!("net-overhead-{tag}").into_bytes();
    let mut c0 =
        NetConfig::new(Party::P0, session.clone()).exchange_timeout(Duration::from_secs(120));
    let mut c1 = NetConfig::new(Party::P1, session).exchange_timeout(Duration::from_secs(120));
    // The job's link secret (a dealer delivers it with the keys).
    let secret = LinkSecret::from_bytes(rand::random());
    c0 = c0.link_secret(secret.clone());
    c1 = c1.link_secret(secret);
    if let Some((a, b)) = tls {
        c0 = c0.tls(a);
        c1 = c1.tls(b);
    }
    if let Some(w) = wan {
        c0 = c0.wan(w);
        c1 = c1.wan(w);
    }
    let listener = Listener::bind(c0).expect("bind loopback");
    let c1 = c1.peer(listener.local_addr().to_string());
    std::thread::scope(|s| {
        let h = s.spawn(move || GrpcTransport::connect(c1).expect("party 1 link"));
        let t0 = listener.accept().expect("party 0 link");
        (t0, h.join().expect("party 1"))
    })
}

fn tls_pair() -> (TlsConfig, TlsConfig) {
    let mk = |name: &str| {
        let ck = rcgen::generate_simple_self_signed(vec![name.to_string()]).expect("rcgen");
        (ck.cert.pem(), ck.signing_key.serialize_pem())
    };
    let (c0, k0) = mk("party0.local");
    let (c1, k1) = mk("party1.local");
    let name = "party0.local".to_string();
    (
        TlsConfig {
            cert_pem: c0.clone(),
            key_pem: k0,
            peer_pem: c1.clone(),
            server_name: name.clone(),
        },
        TlsConfig {
            cert_pem: c1,
            key_pem: k1,
            peer_pem: c0,
            server_name: name,
        },
    )
}

fn best(reps: usize, mut f: impl FnMut() -> f64) -> f64 {
    (0..reps).map(|_| f()).fold(f64::INFINITY, f64::min)
}

fn main() {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("net_overhead: {e}");
            std::process::exit(2);
        }
    };
    let big = a.mb << 20;
    let payload = vec![0xa5u8; big];
    let large = |t: &mut dyn Transport| {
        let got = t.exchange(&payload).expect("large exchange");
        assert_eq!(got.len(), payload.len());
    };
    let rounds = a.rounds;
    let tiny = |t: &mut dyn Transport| {
        for i in 0..rounds {
            t.exchange(&(i as u64).to_le_bytes())
                .expect("tiny exchange");
        }
    };

    // (a), (b) in memory.
    let (mut m0, mut m1) = MemTransport::pair();
    let mem_large = best(3, || timed(&mut m0, &mut m1, &large));
    let mem_tiny = best(3, || timed(&mut m0, &mut m1, &tiny));
    // (a), (b) over gRPC, plaintext and mutual TLS.
    let (mut g0, mut g1) = grpc_pair("plain", None, None);
    let grpc_large = best(3, || timed(&mut g0, &mut g1, &large));
    let grpc_tiny = best(3, || timed(&mut g0, &mut g1, &tiny));
    drop((g0, g1));
    let (mut s0, mut s1) = grpc_pair("tls", Some(tls_pair()), None);
    let tls_large = best(3, || timed(&mut s0, &mut s1, &large));
    let tls_tiny = best(3, || timed(&mut s0, &mut s1, &tiny));
    drop((s0, s1));

    // (c) WAN-shaped: a few tiny rounds and one opening of wan_mb MB.
    let wan = a.wan;
    let wan_rounds = a.wan_rounds;
    let wan_payload = vec![0x5au8; a.wan_mb << 20];
    let wan_tiny = |t: &mut dyn Transport| {
        for i in 0..wan_rounds {
            t.exchange(&(i as u64).to_le_bytes()).expect("wan tiny");
        }
    };
    let wan_large = |t: &mut dyn Transport| {
        t.exchange(&wan_payload).expect("wan large");
    };
    let bw = wan.bandwidth_bytes_per_s.unwrap_or(f64::INFINITY);
    let (m0, m1) = MemTransport::pair();
    let (mut w0, mut w1) = (
        ShapedTransport::new(m0, wan.rtt, bw),
        ShapedTransport::new(m1, wan.rtt, bw),
    );
    let memwan_tiny = timed(&mut w0, &mut w1, &wan_tiny);
    let memwan_large = timed(&mut w0, &mut w1, &wan_large);
    let (mut gw0, mut gw1) = grpc_pair("wan", None, Some(wan));
    let grpcwan_tiny = timed(&mut gw0, &mut gw1, &wan_tiny);
    let grpcwan_large = timed(&mut gw0, &mut gw1, &wan_large);
    drop((gw0, gw1));

    let mbps = |secs: f64| big as f64 / 1e6 / secs;
    let ms_round = |secs: f64, n: usize| secs * 1e3 / n as f64;
    let over = |x: f64, base: f64| (x - base) / base * 100.0;
    if a.json {
        let v = serde_json::json!({
            "large_opening": {
                "bytes_each_way": big,
                "mem": {"seconds": mem_large, "mb_per_s": mbps(mem_large)},
                "grpc": {"seconds": grpc_large, "mb_per_s": mbps(grpc_large), "overhead_pct": over(grpc_large, mem_large)},
                "grpc_tls": {"seconds": tls_large, "mb_per_s": mbps(tls_large), "overhead_pct": over(tls_large, mem_large)},
            },
            "tiny_rounds": {
                "rounds": rounds,
                "mem_ms_per_round": ms_round(mem_tiny, rounds),
                "grpc_ms_per_round": ms_round(grpc_tiny, rounds),
                "grpc_tls_ms_per_round": ms_round(tls_tiny, rounds),
            },
            "wan": {
                "shape": wan.to_string(),
                "rounds": wan_rounds,
                "mem_shaped_ms_per_round": ms_round(memwan_tiny, wan_rounds),
                "grpc_shaped_ms_per_round": ms_round(grpcwan_tiny, wan_rounds),
                "opening_bytes": wan_payload.len(),
                "mem_shaped_opening_s": memwan_large,
                "grpc_shaped_opening_s": grpcwan_large,
            }
        });
        println!("{v}");
    } else {
        println!("net_overhead: loopback, both parties in this process");
        println!("(a) one opening of {} MB each way (best of 3):", a.mb);
        println!(
            "    memory        {:8.3} s  {:9.1} MB/s",
            mem_large,
            mbps(mem_large)
        );
        println!(
            "    gRPC          {:8.3} s  {:9.1} MB/s  overhead {:+.0} %",
            grpc_large,
            mbps(grpc_large),
            over(grpc_large, mem_large)
        );
        println!(
            "    gRPC + mTLS   {:8.3} s  {:9.1} MB/s  overhead {:+.0} %",
            tls_large,
            mbps(tls_large),
            over(tls_large, mem_large)
        );
        println!("(b) {rounds} rounds of 8 bytes (best of 3):");
        println!(
            "    memory        {:8.4} ms/round",
            ms_round(mem_tiny, rounds)
        );
        println!(
            "    gRPC          {:8.4} ms/round",
            ms_round(grpc_tiny, rounds)
        );
        println!(
            "    gRPC + mTLS   {:8.4} ms/round",
            ms_round(tls_tiny, rounds)
        );
        println!(
            "(c) WAN-shaped {wan} (ShapedTransport: rtt per exchange; gRPC: rtt/2 per message):"
        );
        println!(
            "    {wan_rounds} tiny rounds: memory+ShapedTransport {:.1} ms/round, gRPC shaped {:.1} ms/round",
            ms_round(memwan_tiny, wan_rounds),
            ms_round(grpcwan_tiny, wan_rounds)
        );
        println!(
            "    one {} MB opening: memory+ShapedTransport {:.3} s, gRPC shaped {:.3} s",
            a.wan_mb, memwan_large, grpcwan_large
        );
    }
}
