//! Where a forward pass spends its time and traffic, layer by layer
//! ([`crate::forward_profiled`]): the layers' forward passes read the
//! backend's counters ([`Gates::probe`]) before and after each layer. Off
//! unless asked for: an unprofiled pass checks one `Option` per layer and
//! computes exactly the same values.

use crate::model::Layer;
use ariann_mpc::{CommStats, Gates, Probe};
use std::ops::Range;
use std::time::{Duration, Instant};

/// One layer of a profiled forward pass, from this party's point of view.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerProfile {
    /// The layer's path (its parameter prefix, or its index in its list).
    pub path: String,
    /// A readable name: the path, or for a residual block without a name
    /// of its own the common prefix of its parameters (`layer1.0`).
    pub name: String,
    /// The layer kind (its `"type"` in the JSON description).
    pub kind: &'static str,
    /// Nesting depth: 0 for the model's layers, 1 inside a residual block's
    /// branches, and so on. The rows of a block follow the block's row.
    pub depth: usize,
    /// Output shape without the batch.
    pub out_shape: Vec<usize>,
    /// Wall time of the layer.
    pub seconds: f64,
    /// Time inside the transport's exchanges (waiting for the peer's
    /// message: the peer's compute and the link), if the transport counts
    /// it ([`ariann_mpc::TimedTransport`]).
    pub exchange_seconds: f64,
    /// Time waiting for key bundles, if the session counts it
    /// ([`ariann_mpc::Session::with_key_timing`]).
    pub key_wait_seconds: f64,
    /// Time in the layer's product gates (triples) outside exchanges: this
    /// party's masking and its two ring products per product (matrix
    /// products, convolutions as im2col and a product), if the session
    /// counts it ([`ariann_mpc::Session::with_key_timing`]).
    pub product_seconds: f64,
    /// The plan indices of the layer's gates.
    pub gates: Range<u64>,
    /// The layer's rounds and bytes.
    pub comm: CommStats,
    /// A ReLU whose gate also does the truncation of the product before it
    /// (the small-key variant's `trunc_relu`): the product's row then has
    /// no truncation.
    pub fused_truncation: bool,
}

impl LayerProfile {
    /// Wall time neither in exchanges nor waiting for keys: this party's
    /// local work (ring products, FSS evaluations, masking).
    pub fn compute_seconds(&self) -> f64 {
        (self.seconds - self.exchange_seconds - self.key_wait_seconds).max(0.0)
    }

    /// Local work outside product gates: FSS evaluations of the
    /// comparison and truncation gates, their masking, and the layer's
    /// local arithmetic ([`LayerProfile::compute_seconds`] less
    /// [`LayerProfile::product_seconds`]).
    pub fn other_compute_seconds(&self) -> f64 {
        (self.compute_seconds() - self.product_seconds).max(0.0)
    }
}

/// Collects [`LayerProfile`]s during a forward pass (held by
/// [`crate::Ctx::profile`]).
#[derive(Debug, Default)]
pub struct Profiler {
    rows: Vec<LayerProfile>,
    depth: usize,
}

/// A layer started: its row and the counters at its start.
#[derive(Debug)]
pub(crate) struct Mark {
    slot: usize,
    start: Instant,
    probe: Probe,
}

impl Profiler {
    /// An empty profile.
    pub fn new() -> Self {
        Self::default()
    }

    /// The rows, in model order (a block's row before its layers' rows).
    pub fn into_layers(self) -> Vec<LayerProfile> {
        self.rows
    }

    /// Starts the row of `layer` at `path`.
    pub(crate) fn enter(
        &mut self,
        gates: &dyn Gates<u64>,
        layer: &Layer,
        path: &str,
        out_shape: &[usize],
        fused_truncation: bool,
    ) -> Mark {
        let slot = self.rows.len();
        self.rows.push(LayerProfile {
            path: path.to_string(),
            name: name(layer, path),
            kind: layer.kind(),
            depth: self.depth,
            out_shape: out_shape.to_vec(),
            seconds: 0.0,
            exchange_seconds: 0.0,
            key_wait_seconds: 0.0,
            product_seconds: 0.0,
            gates: 0..0,
            comm: CommStats::default(),
            fused_truncation,
        });
        self.depth += 1;
        let probe = gates.probe();
        Mark {
            slot,
            start: Instant::now(),
            probe,
        }
    }

    /// Ends the row started by `mark`.
    pub(crate) fn exit(&mut self, gates: &dyn Gates<u64>, mark: Mark) {
        let seconds = mark.start.elapsed().as_secs_f64();
        let now = gates.probe();
        self.depth = self.depth.saturating_sub(1);
        let secs = |a: Duration, b: Duration| a.saturating_sub(b).as_secs_f64();
        if let Some(row) = self.rows.get_mut(mark.slot) {
            row.seconds = seconds;
            row.exchange_seconds = secs(now.exchange_time, mark.probe.exchange_time);
            row.key_wait_seconds = secs(now.key_wait, mark.probe.key_wait);
            row.product_seconds = (secs(now.product_time, mark.probe.product_time)
                - secs(now.product_exchange_time, mark.probe.product_exchange_time))
            .max(0.0);
            row.gates = mark.probe.gates..now.gates;
            row.comm = now.comm.since(&mark.probe.comm);
        }
    }
}

/// The readable name of `layer` at `path`: a residual block without a
/// name gets the common dotted prefix of its parameters, if any.
fn name(layer: &Layer, path: &str) -> String {
    let Layer::Residual(_) = layer else {
        return path.to_string();
    };
    let mut params = Vec::new();
    layer.op().parameters(&mut params);
    let mut common: Option<Vec<&str>> = None;
    for (p, _) in &params {
        let parts: Vec<&str> = p.split('.').collect();
        // Leave out the parameter's own name (`weight`, `bias`).
        let parts = &parts[..parts.len().saturating_sub(1)];
        common = Some(match common {
            None => parts.to_vec(),
            Some(c) => c
                .iter()
                .zip(parts)
                .take_while(|(a, b)| a == b)
                .map(|(a, _)| *a)
                .collect(),
        });
    }
    match common {
        Some(c) if !c.is_empty() => c.join("."),
        _ => path.to_string(),
    }
}
