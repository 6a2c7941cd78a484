//! The public architecture: [`Model`], [`Layer`], activation shapes, the
//! JSON description, and the fixed-point [`Config`] of a private run.

use crate::error::NnError;
use crate::layers::{
    AdaptiveAvgPool2d, AvgPool2d, BatchNorm2d, Conv2d, LayerOp, Linear, MaxPool2d, Residual,
    SubsamplePad,
};

/// One layer of a sequential model. Parameterised layers carry the prefix of
/// their PyTorch parameter names. Serialized as JSON with the layer kind in
/// `"type"` and the layer's fields beside it (see [`Model::from_json`]).
///
/// Each kind lives in its own module of [`crate::layers`]; [`Layer::op`] is
/// the one place that dispatches on the kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type")]
pub enum Layer {
    /// `y = x W^T + b` ([`Linear`]).
    Linear(Linear),
    /// NCHW cross-correlation ([`Conv2d`]).
    Conv2d(Conv2d),
    /// `max(x, 0)`.
    Relu,
    /// Max-pooling, padding never wins ([`MaxPool2d`]).
    MaxPool2d(MaxPool2d),
    /// Average pooling without padding ([`AvgPool2d`]).
    AvgPool2d(AvgPool2d),
    /// PyTorch's `AdaptiveAvgPool2d(out)` where it is a fixed window ([`AdaptiveAvgPool2d`]).
    AdaptiveAvgPool2d(AdaptiveAvgPool2d),
    /// Flattens `[c, h, w]` to `[c h w]` (NCHW order, as `torch.flatten(x, 1)`).
    Flatten,
    /// Batch-norm ([`BatchNorm2d`]): running statistics in inference, batch
    /// statistics in training.
    BatchNorm2d(BatchNorm2d),
    /// `body(x) + shortcut(x)` ([`Residual`]).
    Residual(Residual),
    /// `x[:, :, ::stride, ::stride]` with `pad` zero channels on each side
    /// ([`SubsamplePad`], the option-A shortcut of CIFAR ResNets; free).
    SubsamplePad(SubsamplePad),
}

impl Layer {
    /// The layer's implementation (shape, parameters, float forward, forward
    /// on a gate backend): the one `match` on the layer kind.
    pub fn op(&self) -> &dyn LayerOp {
        match self {
            Layer::Linear(l) => l,
            Layer::Conv2d(l) => l,
            Layer::Relu => &crate::layers::relu::Relu,
            Layer::MaxPool2d(l) => l,
            Layer::AvgPool2d(l) => l,
            Layer::AdaptiveAvgPool2d(l) => l,
            Layer::Flatten => &crate::layers::flatten::Flatten,
            Layer::BatchNorm2d(l) => l,
            Layer::Residual(l) => l,
            Layer::SubsamplePad(l) => l,
        }
    }

    /// The layer kind: its `"type"` in the JSON description.
    pub fn kind(&self) -> &'static str {
        match self {
            Layer::Linear(_) => "Linear",
            Layer::Conv2d(_) => "Conv2d",
            Layer::Relu => "Relu",
            Layer::MaxPool2d(_) => "MaxPool2d",
            Layer::AvgPool2d(_) => "AvgPool2d",
            Layer::AdaptiveAvgPool2d(_) => "AdaptiveAvgPool2d",
            Layer::Flatten => "Flatten",
            Layer::BatchNorm2d(_) => "BatchNorm2d",
            Layer::Residual(_) => "Residual",
            Layer::SubsamplePad(_) => "SubsamplePad",
        }
    }

    /// `Linear(inp, out)` with parameters `{name}.weight`, `{name}.bias`.
    pub fn linear(name: &str, inp: usize, out: usize) -> Layer {
        Layer::Linear(Linear {
            name: name.into(),
            inp,
            out,
            bias: true,
        })
    }

    /// `Linear(inp, out, bias=False)`: parameter `{name}.weight` only.
    pub fn linear_no_bias(name: &str, inp: usize, out: usize) -> Layer {
        Layer::Linear(Linear {
            name: name.into(),
            inp,
            out,
            bias: false,
        })
    }

    /// `Conv2d(c, oc, k, stride, pad)` with parameters `{name}.weight`, `{name}.bias`.
    pub fn conv2d(name: &str, c: usize, oc: usize, k: usize, stride: usize, pad: usize) -> Layer {
        Layer::Conv2d(Conv2d {
            name: name.into(),
            c,
            oc,
            k,
            stride,
            pad,
            bias: true,
        })
    }

    /// `Conv2d(c, oc, k, stride, pad, bias=False)`: parameter `{name}.weight` only.
    pub fn conv2d_no_bias(
        name: &str,
        c: usize,
        oc: usize,
        k: usize,
        stride: usize,
        pad: usize,
    ) -> Layer {
        Layer::Conv2d(Conv2d {
            name: name.into(),
            c,
            oc,
            k,
            stride,
            pad,
            bias: false,
        })
    }

    /// `MaxPool2d(k, stride, pad)`.
    pub fn max_pool(k: usize, stride: usize, pad: usize) -> Layer {
        Layer::MaxPool2d(MaxPool2d { k, stride, pad })
    }

    /// `AvgPool2d(k, stride)`.
    pub fn avg_pool(k: usize, stride: usize) -> Layer {
        Layer::AvgPool2d(AvgPool2d { k, stride })
    }

    /// `AdaptiveAvgPool2d(out)`.
    pub fn adaptive_avg_pool(out: usize) -> Layer {
        Layer::AdaptiveAvgPool2d(AdaptiveAvgPool2d { out })
    }

    /// `BatchNorm2d(c)` with parameters `{name}.weight`, `.bias`, `.running_mean`, `.running_var`.
    pub fn batch_norm(name: &str, c: usize) -> Layer {
        Layer::BatchNorm2d(BatchNorm2d {
            name: name.into(),
            c,
        })
    }

    /// `SubsamplePad(stride, pad)`: subsample rows and columns by `stride`,
    /// add `pad` zero channels before and after.
    pub fn subsample_pad(stride: usize, pad: usize) -> Layer {
        Layer::SubsamplePad(SubsamplePad { stride, pad })
    }

    /// A residual block `body(x) + shortcut(x)` (an empty shortcut is the identity).
    pub fn residual(body: Vec<Layer>, shortcut: Vec<Layer>) -> Layer {
        Layer::Residual(Residual { body, shortcut })
    }

    /// The layer's kind and settings, for messages.
    pub fn describe(&self) -> String {
        format!("{self:?}")
    }

    /// The path of this layer at position `index` under `prefix`: its
    /// parameter prefix when it has one, else its position
    /// (`5`, `5.body.2`).
    pub(crate) fn path(&self, prefix: &str, index: usize) -> String {
        match self.op().name() {
            Some(n) => n.to_string(),
            None if prefix.is_empty() => index.to_string(),
            None => format!("{prefix}.{index}"),
        }
    }
}

/// Epsilon of [`Layer::BatchNorm2d`] (PyTorch's default).
pub const BN_EPS: f64 = 1e-5;

/// A public model architecture.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    /// Name for reports.
    pub name: String,
    /// Shape of one input (without the batch): `[features]` or `[c, h, w]`.
    pub input: Vec<usize>,
    /// Layers in order.
    pub layers: Vec<Layer>,
}

/// Fixed-point and window parameters of the private run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Fractional bits.
    pub frac_bits: u32,
    /// Comparison window of ReLU and max-pool (activations satisfy `|v| < 2^(k-1-f)`).
    pub k_cmp: u32,
    /// Window of the truncations after products (`|x W| < 2^(k-1-2f)`).
    pub k_trunc: u32,
    /// Largest number of elements one ReLU, truncation or max-pool key
    /// bundle covers. Bigger layers are split into several bundles (one
    /// round each), which bounds the key memory a party holds at a time
    /// (about 0.75-1 KB per ReLU element).
    pub max_gate_elems: usize,
    /// Rounding of the training truncations (gradients and parameter
    /// updates; the forward pass floors, as in inference, unless
    /// [`Rounding::Stochastic`]).
    pub rounding: Rounding,
    /// Which comparison gates ReLU, max-pool and argmax use (and, in
    /// training, which truncation gate): fewer rounds or fewer key bytes
    /// ([`Variant`]). Results are the same bit for bit.
    pub variant: Variant,
}

/// The rounds-versus-keys choice of the comparison gates. Both are exact
/// inside the window and give the same outputs bit for bit; they differ in
/// key bytes and rounds (per element at `k = 32`, `f = 16`; `op_costs`
/// prints the exact figures).
///
/// | | one-round (default) | small-key |
/// |---|---|---|
/// | ReLU | 1 round, ~1,040 B | 2 rounds, ~415 B |
/// | product, truncation, ReLU | 3 rounds, ~1,430 B | 3 rounds (truncation fused into the ReLU), ~600 B |
/// | product, truncation (not before a ReLU; `f = 16`) | 2 rounds, 390 B | 3 rounds, 178 B |
/// | max-pool level | 1 round | 2 rounds |
/// | argmax | 2 rounds | 3 rounds |
/// | truncation in training (`f = 20`) | 1 round, 487 B | 2 rounds, 242 B |
///
/// Choose one-round on a WAN (rounds cost latency), small-key when keys
/// are the bottleneck (large models, a LAN, keys streamed from the dealer).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    /// One-round ReLU and max-pool levels: a DCF with a two-word payload
    /// gives `ReLU(x)` from one opening.
    #[default]
    OneRound,
    /// A DCF with a one-bit payload gives `[x >= 0]`, a select gate (one
    /// more opening of one bit) multiplies; a product followed by ReLU has
    /// its truncation fused into the ReLU gate (inference). The other
    /// truncations, in inference and training, use `trunc_small` (the
    /// borrow from a one-bit DCF, one more round, about half the key bytes
    /// of `trunc`).
    SmallKey,
}

impl Variant {
    /// The name used on command lines and in JSON (`one-round`, `small-key`).
    pub fn name(self) -> &'static str {
        match self {
            Variant::OneRound => "one-round",
            Variant::SmallKey => "small-key",
        }
    }

    /// The variant named `s`.
    pub fn from_name(s: &str) -> Option<Self> {
        [Variant::OneRound, Variant::SmallKey]
            .into_iter()
            .find(|v| v.name() == s)
    }
}

impl std::fmt::Display for Variant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How a training truncation by `f` bits rounds. `Floor` and `Nearest` are
/// exact (the truncation gate has no error: the private run equals the
/// cleartext fixed point bit for bit); they differ by the bias: flooring
/// every parameter update moves each weight up by half an ulp per step on
/// average, which adds up over an epoch; rounding to nearest (`+ 2^(f-1)`
/// before the floor, a local addition) has no bias. `Stochastic` rounds up
/// with probability `(x mod 2^f) / 2^f` (unbiased) with the one-round
/// `trunc_stoch` gate, which needs no FSS key (12 B per element against
/// 242-487 B) and applies to every truncation of a training step, the
/// forward pass's too; the private run then equals the cleartext fixed point
/// in distribution only (the coins are the dealer's masks).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Rounding {
    /// `floor(x / 2^f)`.
    #[default]
    Floor,
    /// `floor(x / 2^f + 1/2)`.
    Nearest,
    /// `floor(x / 2^f)`, plus 1 with probability `(x mod 2^f) / 2^f`, in
    /// every truncation of a training step (forward, backward, loss,
    /// optimiser); inference still floors exactly.
    Stochastic,
}

impl Default for Config {
    /// `f = 16`, comparisons on 32 bits (activations below 2^15), truncations
    /// on 56 bits, at most 2^18 elements per key bundle.
    fn default() -> Self {
        Config {
            frac_bits: 16,
            k_cmp: 32,
            k_trunc: 56,
            max_gate_elems: 1 << 18,
            rounding: Rounding::Floor,
            variant: Variant::OneRound,
        }
    }
}

impl Config {
    /// A canonical byte encoding of every field (the input of a job digest).
    /// It destructures the whole struct, so a new field cannot be left out
    /// without this function failing to compile.
    pub fn digest_bytes(&self) -> Vec<u8> {
        let Config {
            frac_bits,
            k_cmp,
            k_trunc,
            max_gate_elems,
            rounding,
            variant,
        } = *self;
        let mut out = Vec::with_capacity(22);
        for v in [frac_bits, k_cmp, k_trunc] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&(max_gate_elems as u64).to_le_bytes());
        out.push(match rounding {
            Rounding::Floor => 0,
            Rounding::Nearest => 1,
            Rounding::Stochastic => 2,
        });
        out.push(match variant {
            Variant::OneRound => 0,
            Variant::SmallKey => 1,
        });
        out
    }
}

/// Checks that `layers` fit an input of `shape`, giving each layer's output
/// shape to `each`; returns the final shape.
pub(crate) fn walk_shapes(
    layers: &[Layer],
    prefix: &str,
    shape: &[usize],
    mut each: impl FnMut(&[usize]),
) -> Result<Vec<usize>, NnError> {
    walk_shapes_dyn(layers, prefix, shape, &mut each)
}

/// [`walk_shapes`] without a generic parameter (it recurses into residual
/// blocks).
fn walk_shapes_dyn(
    layers: &[Layer],
    prefix: &str,
    shape: &[usize],
    each: &mut dyn FnMut(&[usize]),
) -> Result<Vec<usize>, NnError> {
    let mut cur = shape.to_vec();
    for (i, l) in layers.iter().enumerate() {
        let path = l.path(prefix, i);
        if let Layer::Residual(r) = l {
            // Name the layer inside the block that does not fit.
            let body = walk_shapes_dyn(&r.body, &format!("{path}.body"), &cur, &mut |_| {})?;
            let short =
                walk_shapes_dyn(&r.shortcut, &format!("{path}.shortcut"), &cur, &mut |_| {})?;
            if body != short {
                return Err(NnError::LayerShape {
                    path,
                    layer: "Residual".into(),
                    expected: format!(
                        "{cur:?} giving one shape from both branches (the body gives \
                         {body:?}, the shortcut {short:?})"
                    ),
                    shape: cur,
                });
            }
        }
        cur = l
            .op()
            .out_shape(&cur)
            // An empty output (a zero dimension) is refused like a misfit.
            .filter(|s| crate::layers::checked_len(s).is_ok_and(|n| n > 0))
            .ok_or_else(|| layer_shape_error(l, path, &cur))?;
        each(&cur);
    }
    Ok(cur)
}

/// The input shape `layer` takes, for messages.
pub(crate) fn expected_input(layer: &Layer) -> String {
    let at_least = |k: usize, pad: usize| k.saturating_sub(pad.saturating_mul(2)).max(1);
    match layer {
        Layer::Linear(l) => format!("[{}]", l.inp),
        Layer::Conv2d(l) => format!(
            "[{}, H, W] with H and W at least {}",
            l.c,
            at_least(l.k, l.pad)
        ),
        Layer::BatchNorm2d(l) => format!("[{}, H, W]", l.c),
        Layer::MaxPool2d(l) => format!("[C, H, W] with H and W at least {}", at_least(l.k, l.pad)),
        Layer::AvgPool2d(l) => format!("[C, H, W] with H and W at least {}", l.k.max(1)),
        Layer::AdaptiveAvgPool2d(l) => {
            format!("[C, H, W] with H and W multiples of {}", l.out)
        }
        Layer::SubsamplePad(_) => "[C, H, W] (and a stride of at least 1)".into(),
        Layer::Relu | Layer::Flatten => "any shape".into(),
        Layer::Residual(_) => "one that both branches take".into(),
    }
}

/// [`NnError::LayerShape`] for `layer` at `path` receiving `shape`.
pub(crate) fn layer_shape_error(layer: &Layer, path: String, shape: &[usize]) -> NnError {
    NnError::LayerShape {
        path,
        layer: layer.describe(),
        expected: expected_input(layer),
        shape: shape.to_vec(),
    }
}

impl Model {
    /// The activation shape (without batch) after each top-level layer;
    /// checks that every layer fits its input.
    pub fn shapes(&self) -> Result<Vec<Vec<usize>>, NnError> {
        let mut out = Vec::with_capacity(self.layers.len());
        if crate::layers::checked_len(&self.input)? == 0 {
            return Err(NnError::Description(format!(
                "input shape {:?} holds no value",
                self.input
            )));
        }
        walk_shapes(&self.layers, "", &self.input, |s| out.push(s.to_vec()))?;
        Ok(out)
    }

    /// `(name, shape)` of every float parameter tensor (PyTorch state-dict
    /// names), in layer order (residual blocks: body, then shortcut).
    pub fn parameters(&self) -> Vec<(String, Vec<usize>)> {
        let mut p = Vec::new();
        for l in &self.layers {
            l.op().parameters(&mut p);
        }
        p
    }

    /// The names a bias of each layer without one (`bias: false`) would
    /// have (`{name}.bias`), in layer order.
    pub fn absent_biases(&self) -> Vec<String> {
        fn walk(layers: &[Layer], out: &mut Vec<String>) {
            for l in layers {
                match l {
                    Layer::Conv2d(Conv2d { name, bias, .. })
                    | Layer::Linear(Linear { name, bias, .. })
                        if !bias =>
                    {
                        out.push(format!("{name}.bias"))
                    }
                    Layer::Residual(r) => {
                        walk(&r.body, out);
                        walk(&r.shortcut, out);
                    }
                    _ => {}
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.layers, &mut out);
        out
    }

    /// The same network with every `ReLU, MaxPool2d` pair swapped to
    /// `MaxPool2d, ReLU`: exact (`max` is monotone, so
    /// `ReLU(max(S)) = max(ReLU(S))`, padding included since padded positions
    /// never win), and the ReLU then runs on the pooled, smaller tensor. This
    /// is the permutation ARIANN and Falcon apply.
    pub fn permute_relu_maxpool(&self) -> Model {
        let mut layers = self.layers.clone();
        let mut i = 0;
        while i + 1 < layers.len() {
            if layers[i] == Layer::Relu && matches!(layers[i + 1], Layer::MaxPool2d(_)) {
                layers.swap(i, i + 1);
                i += 2;
            } else {
                i += 1;
            }
        }
        Model {
            name: self.name.clone(),
            input: self.input.clone(),
            layers,
        }
    }

    /// The architecture [`Model::fold_batchnorm`] gives, without weights
    /// (what the dealer needs: the plan depends on the architecture only).
    pub fn fold_batchnorm_architecture(&self) -> Model {
        Model {
            name: self.name.clone(),
            input: self.input.clone(),
            layers: crate::fold::fold_architecture(&self.layers),
        }
    }

    /// Parses a model description in JSON, e.g.
    /// `{"name": "mlp", "input": [784], "layers": [{"type": "Linear", "name": "fc1", "inp": 784, "out": 10}]}`,
    /// and checks that its layers fit together.
    pub fn from_json(text: &str) -> Result<Model, NnError> {
        let m: Model =
            serde_json::from_str(text).map_err(|e| NnError::Description(e.to_string()))?;
        m.shapes()?;
        Ok(m)
    }

    /// The JSON description of the model (the inverse of [`Model::from_json`]).
    pub fn to_json(&self) -> String {
        // Serializing plain enums and structs of strings and integers cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Values in one input.
    pub fn input_len(&self) -> usize {
        self.input.iter().product()
    }
}
