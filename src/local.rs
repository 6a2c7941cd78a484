//! Private inference with both parties and the dealer in this process: the
//! dealer streams key bundles to the two parties over bounded channels (so
//! at most a few gates' keys exist at a time), the parties run on threads
//! over the in-memory transport, optionally shaped like a WAN link.

use crate::mpc::{
    ChannelSource, CommStats, MemTransport, Session, ShapedTransport, Transport, run_two_party,
};
use crate::nn::{
    Config, Model, NnError, Weights, decode_output, encode_input, forward_private, plan,
    share_weights,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use std::sync::mpsc::sync_channel;
use std::time::{Duration, Instant};

/// A wide-area link to emulate: round-trip time and bandwidth per direction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Wan {
    /// Round-trip time per exchange.
    pub rtt: Duration,
    /// Bytes per second per direction.
    pub bytes_per_sec: f64,
}

/// What a private inference cost and produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Reconstructed outputs (decoded), revealed here to the caller.
    pub output: Vec<f64>,
    /// Reconstructed outputs in the ring (for bit-exact checks).
    pub raw: Vec<u64>,
    /// Wall time of the two-party run, including the dealer generating keys
    /// concurrently on the same cores.
    pub seconds: f64,
    /// Time the dealer spent generating keys (in its own thread).
    pub keygen_seconds: f64,
    /// Party 0's transport counters (the protocol is symmetric).
    pub stats: CommStats,
    /// Key bytes each party received.
    pub key_bytes_per_party: u64,
}

/// Runs `model` with `weights` (model owner, party 0's side) on the input
/// batch `x` (data owner, party 1's side) privately, both parties in this
/// process. Randomness comes from the operating system.
pub fn private_inference(
    model: &Model,
    weights: &Weights,
    x: &[f32],
    batch: usize,
    cfg: &Config,
    wan: Option<Wan>,
) -> Result<Report, NnError> {
    let mut rng = ChaCha20Rng::from_os_rng();
    let (w0, w1) = share_weights(model, weights, cfg, &mut rng)?;
    let xe = encode_input(x, cfg)?;
    let x0: Vec<u64> = xe.iter().map(|_| rng.random()).collect();
    let x1: Vec<u64> = xe
        .iter()
        .zip(&x0)
        .map(|(v, a)| v.wrapping_sub(*a))
        .collect();
    let p = plan(model, batch, cfg)?;
    let (tx0, rx0) = sync_channel(2);
    let (tx1, rx1) = sync_channel(2);
    let timeout = Duration::from_secs(600);
    let start = Instant::now();
    let (dealer, (o0, o1)) = std::thread::scope(|s| {
        let dealer = s.spawn(move || -> Result<(f64, u64), NnError> {
            let mut busy = 0.0;
            let mut bytes = 0u64;
            let mut stream = p
                .bundles_from_os::<u64>()
                .map_err(|e| NnError::Dealer(e.to_string()))?;
            loop {
                let t = Instant::now();
                let Some(pair) = stream.next() else { break };
                let (a, b) = pair.map_err(|e| NnError::Dealer(e.to_string()))?;
                busy += t.elapsed().as_secs_f64();
                bytes += a.key.key_bytes() as u64;
                // A party that stopped early drops its receiver; stop then too.
                if tx0.send(a).is_err() || tx1.send(b).is_err() {
                    break;
                }
            }
            Ok((busy, bytes))
        });
        let run =
            |t: &mut MemTransport, rx, ws, xs: &[u64]| -> Result<(Vec<u64>, CommStats), NnError> {
                let mut src = ChannelSource::new(rx, timeout);
                let out = match wan {
                    None => {
                        forward_private(&mut Session::new(t, &mut src), model, ws, xs, batch, cfg)?
                    }
                    Some(w) => {
                        let (rtt, bw) = (w.rtt, w.bytes_per_sec);
                        // Shape a fresh view of this end: same channel, delays added.
                        let mut shaped = ShapedTransport::new(&mut *t, rtt, bw);
                        forward_private(
                            &mut Session::new(&mut shaped, &mut src),
                            model,
                            ws,
                            xs,
                            batch,
                            cfg,
                        )?
                    }
                };
                Ok((out, t.stats()))
            };
        let outs = run_two_party(|t| run(t, rx0, &w0, &x0), |t| run(t, rx1, &w1, &x1));
        (dealer.join(), outs)
    });
    let seconds = start.elapsed().as_secs_f64();
    let (keygen_seconds, key_bytes_per_party) =
        dealer.unwrap_or_else(|e| std::panic::resume_unwind(e))?;
    let ((y0, stats), (y1, _)) = (o0?, o1?);
    let raw: Vec<u64> = y0
        .iter()
        .zip(&y1)
        .map(|(a, b)| a.wrapping_add(*b))
        .collect();
    Ok(Report {
        output: decode_output(&raw, cfg),
        raw,
        seconds,
        keygen_seconds,
        stats,
        key_bytes_per_party,
    })
}
