//! Private inference with both parties and the dealer in this process: the
//! dealer streams key bundles to the two parties over bounded channels (so
//! at most a few gates' keys exist at a time), the parties run on threads
//! over the in-memory transport, optionally shaped like a WAN link.
//!
//! Two ways to time it ([`Preprocess`]): keys streamed while the parties run
//! (memory stays bounded: what production with a dealer stream looks like),
//! or all keys generated first and then the online phase timed alone (what
//! ARIANN's online figures mean; needs the whole job's keys in RAM).

use crate::fss::Party;
use crate::mpc::bundle::BundleTag;
use crate::mpc::{
    ChannelSource, CommStats, GateKey, KeyBundle, MemTransport, MpcError, PreprocessingSource,
    Session, ShapedTransport, TimedTransport, Transport, VecSource, run_two_party,
};
use crate::nn::{
    Config, LayerProfile, Model, NnError, Params, Weights, decode_output, encode_input,
    forward_private, forward_profiled, plan, share_weights,
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

/// When the dealer's keys are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Preprocess {
    /// Streamed over bounded channels while the parties run (bounded memory;
    /// keygen shares the cores with the online phase).
    #[default]
    Streamed,
    /// All keys generated before the parties start; the online phase is then
    /// timed alone. The whole job's keys are in RAM: small models only.
    Ahead,
}

/// How to run [`private_inference_with`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RunOptions {
    /// Emulated WAN link, or `None` for the bare in-memory transport.
    pub wan: Option<Wan>,
    /// When keys are made.
    pub preprocess: Preprocess,
    /// Whether to profile the run layer by layer ([`Report::profile`]):
    /// party 0's transport and key waits are timed, the dealer's key
    /// generation is timed per gate. The outputs are the same.
    pub profile: bool,
}

/// One layer of a profiled run ([`RunOptions::profile`]): party 0's
/// profile of it, and the dealer's work on its gates.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerCost {
    /// Party 0's profile of the layer: wall time, time inside exchanges
    /// (waiting for party 1 and, shaped, for the link), time waiting for
    /// keys, gates, rounds, bytes.
    pub layer: LayerProfile,
    /// The dealer's time generating the layer's keys (both parties').
    pub keygen_seconds: f64,
    /// The layer's key bytes per party.
    pub key_bytes: u64,
}

/// What a private inference cost and produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Reconstructed outputs (decoded), revealed here to the caller.
    pub output: Vec<f64>,
    /// Reconstructed outputs in the ring (for bit-exact checks).
    pub raw: Vec<u64>,
    /// Wall time of the two-party run. With [`Preprocess::Streamed`] it
    /// includes the dealer generating keys concurrently on the same cores;
    /// with [`Preprocess::Ahead`] it is the online phase alone.
    pub seconds: f64,
    /// The online phase alone (with [`Preprocess::Ahead`]), else `None`.
    pub online_seconds: Option<f64>,
    /// Time party 0 spent blocked waiting for its next key bundle
    /// ([`Preprocess::Streamed`]; 0 with keys ahead).
    pub key_wait_seconds: f64,
    /// Time the dealer spent generating keys (in its own thread).
    pub keygen_seconds: f64,
    /// Party 0's transport counters (the protocol is symmetric).
    pub stats: CommStats,
    /// Key bytes each party received.
    pub key_bytes_per_party: u64,
    /// With [`RunOptions::profile`], one row per layer (model order; each
    /// residual block followed by the layers of its branches, one deeper).
    pub profile: Option<Vec<LayerCost>>,
}

/// Runs `model` with `weights` (model owner, party 0's side) on the input
/// batch `x` (data owner, party 1's side) privately, both parties in this
/// process, keys streamed. Randomness comes from the operating system.
pub fn private_inference(
    model: &Model,
    weights: &Weights,
    x: &[f32],
    batch: usize,
    cfg: &Config,
    wan: Option<Wan>,
) -> Result<Report, NnError> {
    let opts = RunOptions {
        wan,
        preprocess: Preprocess::Streamed,
        profile: false,
    };
    private_inference_with(model, weights, x, batch, cfg, &opts)
}

/// A source that counts the time spent waiting for bundles.
struct Timed<'a, S: ?Sized> {
    inner: &'a mut S,
    waited: Duration,
}

impl<S: PreprocessingSource<u64> + ?Sized> PreprocessingSource<u64> for Timed<'_, S> {
    fn next_bundle(
        &mut self,
        party: Party,
        expected: &BundleTag,
    ) -> Result<GateKey<u64>, MpcError> {
        let t = Instant::now();
        let r = self.inner.next_bundle(party, expected);
        self.waited += t.elapsed();
        r
    }
}

/// [`private_inference`] with options (WAN shaping, keys ahead or streamed).
pub fn private_inference_with(
    model: &Model,
    weights: &Weights,
    x: &[f32],
    batch: usize,
    cfg: &Config,
    opts: &RunOptions,
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
    let wan = opts.wan;
    let profile = opts.profile;
    let timeout = Duration::from_secs(600);
    // One party's run over its end of the transport and its key source.
    let run = |t: &mut MemTransport,
               src: &mut dyn PreprocessingSource<u64>,
               ws: &Params,
               xs: &[u64]|
     -> Result<PartyRun, NnError> {
        let mut src = Timed {
            inner: src,
            waited: Duration::ZERO,
        };
        let (out, rows) = match wan {
            None => party_forward(&mut *t, &mut src, profile, model, ws, xs, batch, cfg)?,
            Some(w) => {
                // Shape a fresh view of this end: same channel, delays added.
                let shaped = ShapedTransport::new(&mut *t, w.rtt, w.bytes_per_sec);
                party_forward(shaped, &mut src, profile, model, ws, xs, batch, cfg)?
            }
        };
        Ok((out, t.stats(), src.waited, rows))
    };
    // The dealer's time and key bytes per gate, when profiling.
    let mut per_gate: Vec<(f64, u64)> = Vec::new();
    let (seconds, keygen_seconds, key_bytes_per_party, o0, o1) = match opts.preprocess {
        Preprocess::Ahead => {
            let t = Instant::now();
            let (mut b0, mut b1): (Vec<KeyBundle<u64>>, Vec<KeyBundle<u64>>) = (vec![], vec![]);
            let mut bytes = 0u64;
            let mut stream = p.bundles_from_os::<u64>()?;
            loop {
                let g = Instant::now();
                let Some(pair) = stream.next() else { break };
                let (a, b) = pair?;
                let key_bytes = a.key.key_bytes() as u64;
                bytes += key_bytes;
                if profile {
                    per_gate.push((g.elapsed().as_secs_f64(), key_bytes));
                }
                b0.push(a);
                b1.push(b);
            }
            let keygen = t.elapsed().as_secs_f64();
            let (mut s0, mut s1) = (VecSource::new(b0), VecSource::new(b1));
            let start = Instant::now();
            let (o0, o1) =
                run_two_party(|t| run(t, &mut s0, &w0, &x0), |t| run(t, &mut s1, &w1, &x1));
            (start.elapsed().as_secs_f64(), keygen, bytes, o0, o1)
        }
        Preprocess::Streamed => {
            let (tx0, rx0) = sync_channel(2);
            let (tx1, rx1) = sync_channel(2);
            let start = Instant::now();
            let (dealer, (o0, o1)) = std::thread::scope(|s| {
                let per_gate = &mut per_gate;
                let dealer = s.spawn(move || -> Result<(f64, u64), NnError> {
                    let mut busy = 0.0;
                    let mut bytes = 0u64;
                    let mut stream = p.bundles_from_os::<u64>()?;
                    loop {
                        let t = Instant::now();
                        let Some(pair) = stream.next() else { break };
                        let (a, b) = pair?;
                        let secs = t.elapsed().as_secs_f64();
                        busy += secs;
                        let key_bytes = a.key.key_bytes() as u64;
                        bytes += key_bytes;
                        if profile {
                            per_gate.push((secs, key_bytes));
                        }
                        // A party that stopped early drops its receiver; stop then too.
                        if tx0.send(a).is_err() || tx1.send(b).is_err() {
                            break;
                        }
                    }
                    Ok((busy, bytes))
                });
                let outs = run_two_party(
                    |t| run(t, &mut ChannelSource::new(rx0, timeout), &w0, &x0),
                    |t| run(t, &mut ChannelSource::new(rx1, timeout), &w1, &x1),
                );
                (dealer.join(), outs)
            });
            let seconds = start.elapsed().as_secs_f64();
            let (keygen, bytes) = dealer.unwrap_or_else(|e| std::panic::resume_unwind(e))?;
            (seconds, keygen, bytes, o0, o1)
        }
    };
    let ((y0, stats, waited, rows), (y1, _, _, _)) = (o0?, o1?);
    let profile = rows.map(|rows| {
        rows.into_iter()
            .map(|layer| {
                let range = |g: u64| usize::try_from(g).unwrap_or(usize::MAX).min(per_gate.len());
                let gates = &per_gate[range(layer.gates.start)..range(layer.gates.end)];
                LayerCost {
                    keygen_seconds: gates.iter().fold(0.0, |a, g| a + g.0),
                    key_bytes: gates.iter().map(|g| g.1).sum(),
                    layer,
                }
            })
            .collect()
    });
    let raw: Vec<u64> = y0
        .iter()
        .zip(&y1)
        .map(|(a, b)| a.wrapping_add(*b))
        .collect();
    Ok(Report {
        output: decode_output(&raw, cfg),
        raw,
        seconds,
        online_seconds: (opts.preprocess == Preprocess::Ahead).then_some(seconds),
        key_wait_seconds: waited.as_secs_f64(),
        keygen_seconds,
        stats,
        key_bytes_per_party,
        profile,
    })
}

/// What one party's run gives: its output share, its counters, its time
/// waiting for keys and, profiled, its rows.
type PartyRun = (Vec<u64>, CommStats, Duration, Option<Vec<LayerProfile>>);

/// One party's forward pass over `t`, profiled (transport and key waits
/// timed) or not.
#[allow(clippy::too_many_arguments)]
fn party_forward<T: Transport, S: PreprocessingSource<u64> + ?Sized>(
    mut t: T,
    src: &mut S,
    profile: bool,
    model: &Model,
    ws: &Params,
    xs: &[u64],
    batch: usize,
    cfg: &Config,
) -> Result<(Vec<u64>, Option<Vec<LayerProfile>>), NnError> {
    if profile {
        let mut t = TimedTransport::new(t);
        let mut s = Session::new(&mut t, src).with_key_timing();
        let (y, rows) = forward_profiled(&mut s, model, ws, xs, batch, cfg)?;
        Ok((y, Some(rows)))
    } else {
        Ok((
            forward_private(&mut Session::new(&mut t, src), model, ws, xs, batch, cfg)?,
            None,
        ))
    }
}

/// A private run next to its cleartext float reference.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    /// The private run.
    pub report: Report,
    /// The float cleartext outputs of the same weights and inputs.
    pub float: Vec<f64>,
    /// Rows whose private argmax equals the float argmax.
    pub agree: usize,
}

fn argmax(row: &[f64]) -> usize {
    (0..row.len()).fold(0, |b, i| if row[i] > row[b] { i } else { b })
}

/// [`private_inference_with`], plus the float cleartext run of the same
/// model and the number of rows where both predict the same class.
pub fn private_inference_checked(
    model: &Model,
    weights: &Weights,
    x: &[f32],
    batch: usize,
    cfg: &Config,
    opts: &RunOptions,
) -> Result<Checked, NnError> {
    let float = crate::nn::forward_float(model, weights, x, batch)?;
    let report = private_inference_with(model, weights, x, batch, cfg, opts)?;
    let classes = report.output.len() / batch.max(1);
    let agree = (0..batch)
        .filter(|i| {
            let r = i * classes..(i + 1) * classes;
            argmax(&report.output[r.clone()]) == argmax(&float[r])
        })
        .count();
    Ok(Checked {
        report,
        float,
        agree,
    })
}

impl Checked {
    /// Two human-readable lines: time, traffic, rounds, keys, agreement.
    pub fn summary(&self, batch: usize) -> String {
        let r = &self.report;
        let mb = r.stats.bytes_sent as f64 / 1e6;
        let b = batch.max(1) as f64;
        let time = match r.online_seconds {
            Some(s) => format!(
                "online {s:.2} s ({:.3} s/image; keys made ahead in {:.2} s)",
                s / b,
                r.keygen_seconds
            ),
            None => format!(
                "{:.2} s ({:.3} s/image) with keys streamed: dealer busy {:.2} s, party 0 waited {:.2} s for keys",
                r.seconds,
                r.seconds / b,
                r.keygen_seconds,
                r.key_wait_seconds
            ),
        };
        format!(
            "{time}\n{mb:.1} MB per party online ({:.2} MB/image), {} rounds, keys {:.2} GB per party; predictions agree with float on {}/{batch}",
            mb / b,
            r.stats.rounds,
            r.key_bytes_per_party as f64 / 1e9,
            self.agree
        )
    }
}
