//! The graph walk: from the graph's input to its output, node by node,
//! each supported node (or short pattern of nodes) becoming layers; a value
//! used by two nodes is a fork whose two branches must meet again in one
//! `Add` (a residual block).

use crate::OnnxError;
use crate::proto::{AttributeProto, ModelProto, NodeProto, tensor_shape_proto, type_proto};
use crate::tensor::{Const, Data};
use ariann_nn::{BN_EPS, Layer, Model, Weights};
use prost::Message;
use std::collections::{HashMap, HashSet};

/// Imports `bytes` (a serialized `ModelProto`).
pub(crate) fn import(bytes: &[u8]) -> Result<crate::Imported, OnnxError> {
    let m = ModelProto::decode(bytes).map_err(|e| OnnxError::Decode(e.to_string()))?;
    let g = m
        .graph
        .as_ref()
        .ok_or_else(|| OnnxError::Graph("the model has no graph".into()))?;
    let mut imp = Importer::new(&g.node)?;
    for t in &g.initializer {
        let name = t.name.clone().unwrap_or_default();
        let c = Const::decode(&name, t)?;
        imp.consts.insert(name, c);
    }
    imp.fold_constants()?;
    // The one data input: a graph input that is not an initializer.
    let inputs: Vec<_> = g
        .input
        .iter()
        .filter(|i| !imp.consts.contains_key(i.name()))
        .collect();
    let [input] = inputs.as_slice() else {
        return Err(OnnxError::Graph(format!(
            "{} data inputs ({}); a model with exactly one input is supported",
            inputs.len(),
            inputs
                .iter()
                .map(|i| i.name())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    };
    let shape = input_shape(input)?;
    let [output] = g.output.as_slice() else {
        return Err(OnnxError::Graph(format!(
            "{} outputs; a model with exactly one output is supported",
            g.output.len()
        )));
    };
    imp.output = output.name().to_string();
    let (layers, end, _) = imp.seq(input.name().to_string(), shape.clone(), false)?;
    if end != imp.output {
        return Err(OnnxError::Graph(format!(
            "the walk from the input ended at `{end}`, not at the output `{}`",
            imp.output
        )));
    }
    if let Some(i) = imp.visited.iter().position(|v| !v) {
        return Err(OnnxError::Graph(format!(
            "node `{}` ({}) is not on the path from the input to the output",
            node_name(&g.node[i], i),
            g.node[i].op_type()
        )));
    }
    let name = g
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or("onnx".into());
    let model = Model {
        name,
        input: shape,
        layers,
    };
    model.shapes()?;
    imp.weights.check(&model)?;
    Ok(crate::Imported {
        model,
        weights: imp.weights,
    })
}

/// The per-input shape (without the batch axis) of the graph input.
fn input_shape(input: &crate::proto::ValueInfoProto) -> Result<Vec<usize>, OnnxError> {
    let bad = |why: &str| OnnxError::Graph(format!("input `{}`: {why}", input.name()));
    let Some(type_proto::Value::TensorType(t)) =
        input.r#type.as_ref().and_then(|t| t.value.as_ref())
    else {
        return Err(bad("not a tensor"));
    };
    if t.elem_type() != 1 {
        return Err(bad("not a float32 tensor"));
    }
    let dims = &t.shape.as_ref().ok_or_else(|| bad("no shape"))?.dim;
    if !(dims.len() == 2 || dims.len() == 4) {
        return Err(bad(&format!(
            "rank {}; [batch, features] or [batch, channels, height, width] is supported",
            dims.len()
        )));
    }
    dims[1..]
        .iter()
        .map(|d| match &d.value {
            Some(tensor_shape_proto::dimension::Value::DimValue(v)) if *v > 0 => {
                usize::try_from(*v).map_err(|_| bad("dimension too large"))
            }
            _ => Err(bad(
                "every dimension but the batch must be a fixed positive number",
            )),
        })
        .collect()
}

/// A node's name for messages (its position and output when it has none).
fn node_name(n: &NodeProto, i: usize) -> String {
    match n.name() {
        "" => format!(
            "#{i} -> {}",
            n.output.first().map(String::as_str).unwrap_or("?")
        ),
        s => s.to_string(),
    }
}

/// The walk's state.
struct Importer<'a> {
    nodes: &'a [NodeProto],
    consts: HashMap<String, Const>,
    /// Value name -> indices of the nodes that read it (each node once).
    consumers: HashMap<String, Vec<usize>>,
    visited: Vec<bool>,
    weights: Weights,
    prefixes: HashSet<String>,
    output: String,
    /// Residual blocks open around the node being converted.
    depth: usize,
}

/// Deepest nesting of residual blocks accepted (the walk recurses once per
/// level; a hostile file must not exhaust the stack).
const MAX_DEPTH: usize = 64;

/// What a node conversion gives: the output value and its shape.
type Step = (String, Vec<usize>);

impl<'a> Importer<'a> {
    fn new(nodes: &'a [NodeProto]) -> Result<Self, OnnxError> {
        let mut consumers: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, n) in nodes.iter().enumerate() {
            if !matches!(n.domain(), "" | "ai.onnx") || !crate::SUPPORTED_OPS.contains(&n.op_type())
            {
                return Err(OnnxError::UnsupportedOp {
                    op_type: n.op_type().to_string(),
                    node: node_name(n, i),
                    domain: match n.domain() {
                        "" | "ai.onnx" => String::new(),
                        d => format!(", domain {d}"),
                    },
                });
            }
            for v in n.input.iter().filter(|v| !v.is_empty()) {
                let c = consumers.entry(v.clone()).or_default();
                if c.last() != Some(&i) {
                    c.push(i);
                }
            }
        }
        Ok(Importer {
            nodes,
            consts: HashMap::new(),
            consumers,
            visited: vec![false; nodes.len()],
            weights: Weights::new(),
            prefixes: HashSet::new(),
            output: String::new(),
            depth: 0,
        })
    }

    /// Reads `Constant` nodes, and `Identity` nodes of constants, into `consts`.
    fn fold_constants(&mut self) -> Result<(), OnnxError> {
        for (i, n) in self.nodes.iter().enumerate() {
            let out = n.output.first().cloned().unwrap_or_default();
            let c = match n.op_type() {
                "Constant" => self.constant_node(n, i)?,
                "Identity" => match n.input.first().and_then(|v| self.consts.get(v)) {
                    Some(c) => c.clone(),
                    None => continue,
                },
                _ => continue,
            };
            self.visited[i] = true;
            self.consts.insert(out, c);
        }
        Ok(())
    }

    fn constant_node(&self, n: &NodeProto, i: usize) -> Result<Const, OnnxError> {
        let name = node_name(n, i);
        let [a] = n.attribute.as_slice() else {
            return Err(self.unsupported(i, "a Constant needs exactly one attribute"));
        };
        Ok(match a.name() {
            "value" => Const::decode(
                &name,
                a.t.as_ref()
                    .ok_or_else(|| self.unsupported(i, "`value` holds no tensor"))?,
            )?,
            "value_float" => Const {
                dims: vec![],
                data: Data::F32(vec![a.f()]),
            },
            "value_floats" => Const {
                dims: vec![a.floats.len()],
                data: Data::F32(a.floats.clone()),
            },
            "value_int" => Const {
                dims: vec![],
                data: Data::I64(vec![a.i()]),
            },
            "value_ints" => Const {
                dims: vec![a.ints.len()],
                data: Data::I64(a.ints.clone()),
            },
            other => {
                return Err(self.unsupported(i, format!("a Constant of kind `{other}`")));
            }
        })
    }

    fn unsupported(&self, i: usize, reason: impl Into<String>) -> OnnxError {
        OnnxError::UnsupportedUse {
            op_type: self.nodes[i].op_type().to_string(),
            node: node_name(&self.nodes[i], i),
            reason: reason.into(),
        }
    }

    /// The nodes reading value `v`.
    fn users(&self, v: &str) -> &[usize] {
        self.consumers.get(v).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Whether node `i` is an `Add` of two activations (a residual join).
    fn is_join(&self, i: usize) -> bool {
        let n = &self.nodes[i];
        n.op_type() == "Add"
            && n.input.len() == 2
            && n.input.iter().all(|v| !self.consts.contains_key(v))
    }

    /// The node that alone reads `v`, if `v` is not the graph output and
    /// exactly one unvisited node of type `op` reads it.
    fn sole_user(&self, v: &str, op: &str) -> Option<usize> {
        match self.users(v) {
            [i] if v != self.output && !self.visited[*i] && self.nodes[*i].op_type() == op => {
                Some(*i)
            }
            _ => None,
        }
    }

    /// Layers from value `v` (of per-input `shape`) on, until the graph
    /// output or, in a branch of a fork (`in_branch`), until the value read
    /// by the join. Returns the layers, the last value and its shape.
    fn seq(
        &mut self,
        mut v: String,
        mut shape: Vec<usize>,
        in_branch: bool,
    ) -> Result<(Vec<Layer>, String, Vec<usize>), OnnxError> {
        let mut layers = Vec::new();
        loop {
            let users = self.users(&v).to_vec();
            if v == self.output {
                if users.is_empty() {
                    return Ok((layers, v, shape));
                }
                return Err(OnnxError::Graph(format!(
                    "the output `{v}` is also read by other nodes"
                )));
            }
            match users.as_slice() {
                [] => {
                    return Err(OnnxError::Graph(format!(
                        "value `{v}` is neither read by a node nor the output"
                    )));
                }
                [i] if self.is_join(*i) => {
                    if in_branch {
                        return Ok((layers, v, shape));
                    }
                    return Err(OnnxError::UnsupportedUse {
                        op_type: "Add".into(),
                        node: node_name(&self.nodes[*i], *i),
                        reason: "an Add of two activations must join the two branches of one fork \
                                 (a residual block)"
                            .into(),
                    });
                }
                [i] => {
                    (v, shape) = self.node(*i, &v, &shape, &mut layers)?;
                }
                [a, b] => {
                    (v, shape) = self.fork(&v, &shape, *a, *b, &mut layers)?;
                }
                more => {
                    return Err(OnnxError::Graph(format!(
                        "value `{v}` is read by {} nodes; at most two (a residual fork) are supported",
                        more.len()
                    )));
                }
            }
        }
    }

    /// A residual block: the branches starting at nodes `a` and `b`, both
    /// reading `v`, must meet in one `Add`.
    fn fork(
        &mut self,
        v: &str,
        shape: &[usize],
        a: usize,
        b: usize,
        layers: &mut Vec<Layer>,
    ) -> Result<Step, OnnxError> {
        if self.depth >= MAX_DEPTH {
            return Err(OnnxError::Graph(format!(
                "residual blocks nested more than {MAX_DEPTH} deep"
            )));
        }
        self.depth += 1;
        let r = self.fork_branches(v, shape, a, b, layers);
        self.depth -= 1;
        r
    }

    fn fork_branches(
        &mut self,
        v: &str,
        shape: &[usize],
        a: usize,
        b: usize,
        layers: &mut Vec<Layer>,
    ) -> Result<Step, OnnxError> {
        let mut branches = Vec::with_capacity(2);
        for start in [a, b] {
            if self.is_join(start) {
                branches.push((Vec::new(), v.to_string(), start));
                continue;
            }
            let mut ls = Vec::new();
            let (out, s) = self.node(start, v, shape, &mut ls)?;
            let (more, end, _) = self.seq(out, s, true)?;
            ls.extend(more);
            let join = match self.users(&end) {
                [j] if self.is_join(*j) => *j,
                _ => {
                    return Err(OnnxError::Graph(format!(
                        "the branch from `{v}` through node `{}` does not end in an Add joining it to \
                         the other branch",
                        node_name(&self.nodes[start], start)
                    )));
                }
            };
            branches.push((ls, end, join));
        }
        let (la, ea, ja) = branches.swap_remove(0);
        let (lb, eb, jb) = branches.swap_remove(0);
        let j = &self.nodes[ja];
        let ins: HashSet<&str> = j.input.iter().map(String::as_str).collect();
        if ja != jb || ea == eb || !ins.contains(ea.as_str()) || !ins.contains(eb.as_str()) {
            return Err(OnnxError::Graph(format!(
                "the two branches from `{v}` do not meet in one Add"
            )));
        }
        self.visited[ja] = true;
        // The longer branch is the body (for the residual block's paths).
        let (body, shortcut) = if lb.len() > la.len() {
            (lb, la)
        } else {
            (la, lb)
        };
        let block = Layer::residual(body, shortcut);
        let next = block
            .op()
            .out_shape(shape)
            .ok_or_else(|| OnnxError::Shape {
                op_type: "Add".into(),
                node: node_name(j, ja),
                shape: shape.to_vec(),
            })?;
        layers.push(block);
        let out = j
            .output
            .first()
            .cloned()
            .ok_or_else(|| self.unsupported(ja, "no output"))?;
        Ok((out, next))
    }

    /// Converts node `i` (reading activation `x` of `shape`), and the nodes
    /// of its pattern after it, into layers appended to `layers`.
    fn node(
        &mut self,
        i: usize,
        x: &str,
        shape: &[usize],
        layers: &mut Vec<Layer>,
    ) -> Result<Step, OnnxError> {
        let n = &self.nodes[i];
        self.visited[i] = true;
        if n.input.first().map(String::as_str) != Some(x) {
            return Err(self.unsupported(i, "the activation must be the node's first input"));
        }
        for extra in n.input.iter().skip(1).filter(|v| !v.is_empty()) {
            if !self.consts.contains_key(extra) {
                return Err(self.unsupported(
                    i,
                    format!("input `{extra}` must be an initializer or a constant"),
                ));
            }
        }
        for (k, o) in n.output.iter().enumerate().skip(1) {
            if !o.is_empty() && (!self.users(o).is_empty() || *o == self.output) {
                return Err(self.unsupported(i, format!("its output #{k} (`{o}`) is used")));
            }
        }
        let out = n
            .output
            .first()
            .cloned()
            .ok_or_else(|| self.unsupported(i, "no output"))?;
        let layer = match n.op_type() {
            "Identity" => None,
            "Dropout" => {
                self.dropout(i)?;
                None
            }
            "Relu" => Some(Layer::Relu),
            "Conv" => Some(self.conv(i, shape)?),
            "Gemm" => Some(self.gemm(i, shape)?),
            "MatMul" => return self.matmul(i, shape, layers),
            "MaxPool" => Some(self.max_pool(i)?),
            "AveragePool" => Some(self.avg_pool(i)?),
            "GlobalAveragePool" => Some(self.global_avg(i, shape)?),
            "ReduceMean" => {
                let keep = self.reduce_mean(i, shape)?;
                let l = self.global_avg(i, shape)?;
                let s = self.push(i, l, shape, layers)?;
                if keep {
                    return Ok((out, s));
                }
                let s = self.push(i, Layer::Flatten, &s, layers)?;
                return Ok((out, s));
            }
            "BatchNormalization" => {
                if shape.len() == 1 {
                    self.batch_norm_1d(i, shape, layers)?;
                    return Ok((out, shape.to_vec()));
                }
                Some(self.batch_norm(i, shape)?)
            }
            "Flatten" => {
                let rank = shape.len() as i64 + 1;
                let axis = int_attr(n, "axis").unwrap_or(1);
                if axis != 1 && axis != 1 - rank {
                    return Err(
                        self.unsupported(i, format!("axis {axis}; only axis 1 is supported"))
                    );
                }
                (shape.len() > 1).then_some(Layer::Flatten)
            }
            "Reshape" => {
                self.reshape(i, shape)?;
                (shape.len() > 1).then_some(Layer::Flatten)
            }
            "Slice" | "Pad" => return self.subsample_pad(i, shape, layers),
            "Add" => {
                return Err(self.unsupported(
                    i,
                    "an Add of a constant is supported only as the bias right after a MatMul",
                ));
            }
            other => {
                return Err(OnnxError::UnsupportedOp {
                    op_type: other.to_string(),
                    node: node_name(n, i),
                    domain: String::new(),
                });
            }
        };
        let s = match layer {
            Some(l) => self.push(i, l, shape, layers)?,
            None => shape.to_vec(),
        };
        Ok((out, s))
    }

    /// Appends `l` after checking it fits `shape`; returns its output shape.
    fn push(
        &self,
        i: usize,
        l: Layer,
        shape: &[usize],
        layers: &mut Vec<Layer>,
    ) -> Result<Vec<usize>, OnnxError> {
        let next = l.op().out_shape(shape).ok_or_else(|| OnnxError::Shape {
            op_type: self.nodes[i].op_type().to_string(),
            node: node_name(&self.nodes[i], i),
            shape: shape.to_vec(),
        })?;
        layers.push(l);
        Ok(next)
    }

    /// The constant input `k` of node `i`, if present.
    fn const_input(&self, i: usize, k: usize) -> Option<(&str, &Const)> {
        let v = self.nodes[i].input.get(k).filter(|v| !v.is_empty())?;
        self.consts.get(v).map(|c| (v.as_str(), c))
    }

    /// The constant input `k` of node `i`, required.
    fn need_input(&self, i: usize, k: usize, what: &str) -> Result<(&str, &Const), OnnxError> {
        self.const_input(i, k)
            .ok_or_else(|| self.unsupported(i, format!("no {what} (input #{k})")))
    }

    /// A fresh parameter prefix for a layer whose weight initializer is
    /// `weight` (`conv1.weight` -> `conv1`; other names are used whole).
    fn prefix(&mut self, weight: &str) -> String {
        let base = weight
            .strip_suffix(".weight")
            .filter(|s| !s.is_empty())
            .unwrap_or(weight);
        let base = if base.is_empty() { "param" } else { base };
        let mut p = base.to_string();
        let mut k = 2;
        while self.prefixes.contains(&p) {
            p = format!("{base}_{k}");
            k += 1;
        }
        self.prefixes.insert(p.clone());
        p
    }

    fn insert(&mut self, name: String, dims: Vec<usize>, data: Vec<f32>) -> Result<(), OnnxError> {
        Ok(self.weights.insert(&name, dims, data)?)
    }

    fn dropout(&self, i: usize) -> Result<(), OnnxError> {
        let n = &self.nodes[i];
        if let Some(v) = n.input.get(2).filter(|v| !v.is_empty()) {
            let c = self
                .consts
                .get(v)
                .ok_or_else(|| self.unsupported(i, "training_mode is not a constant"))?;
            if c.ints(v)?.iter().any(|t| *t != 0) {
                return Err(self.unsupported(
                    i,
                    "Dropout in training mode (training_mode = true); export the model in eval mode \
                     (model.eval())",
                ));
            }
        }
        if int_attr(n, "is_test") == Some(0) {
            return Err(self.unsupported(i, "Dropout in training mode (is_test = 0)"));
        }
        Ok(())
    }

    /// Square kernel `k`, equal strides `s`, equal pads `p`, unit dilations
    /// (shared by Conv and the pools). `kernel` is the kernel side when the
    /// node does not say (Conv: from its weight).
    fn window(&self, i: usize, kernel: Option<usize>) -> Result<(usize, usize, usize), OnnxError> {
        let n = &self.nodes[i];
        let bad = |what: String| self.unsupported(i, what);
        let ks = ints_attr(n, "kernel_shape");
        let k = match (ks, kernel) {
            (Some([a, b]), _) if a == b => {
                to_usize(*a).ok_or_else(|| bad(format!("kernel {a}")))?
            }
            (Some(ks), _) => {
                return Err(bad(format!(
                    "kernel {ks:?}; a square 2-d kernel is supported"
                )));
            }
            (None, Some(k)) => k,
            (None, None) => return Err(bad("no kernel_shape".into())),
        };
        if kernel.is_some_and(|w| w != k) {
            return Err(bad("kernel_shape differs from the weight's".into()));
        }
        let stride = match ints_attr(n, "strides") {
            None => 1,
            Some([a, b]) if a == b && *a > 0 => {
                to_usize(*a).ok_or_else(|| bad(format!("stride {a}")))?
            }
            Some(s) => return Err(bad(format!("strides {s:?}; equal strides are supported"))),
        };
        let pad = match ints_attr(n, "pads") {
            None => 0,
            Some([a, b, c, d]) if a == b && b == c && c == d && *a >= 0 => {
                to_usize(*a).ok_or_else(|| bad(format!("pad {a}")))?
            }
            Some(p) => {
                return Err(bad(format!(
                    "pads {p:?}; the same pad on every side is supported"
                )));
            }
        };
        if let Some(d) = ints_attr(n, "dilations")
            && d.iter().any(|v| *v != 1)
        {
            return Err(bad(format!("dilations {d:?}; only 1 is supported")));
        }
        match string_attr(n, "auto_pad") {
            None | Some("NOTSET") | Some("") => {}
            Some("VALID") if pad == 0 => {}
            Some(a) => {
                return Err(bad(format!(
                    "auto_pad {a}; NOTSET (explicit pads) is supported"
                )));
            }
        }
        if int_attr(n, "ceil_mode").unwrap_or(0) != 0 {
            return Err(bad("ceil_mode = 1; only 0 (floor) is supported".into()));
        }
        Ok((k, stride, pad))
    }

    fn conv(&mut self, i: usize, shape: &[usize]) -> Result<Layer, OnnxError> {
        let n = &self.nodes[i];
        if int_attr(n, "group").unwrap_or(1) != 1 {
            return Err(self.unsupported(i, "group != 1; only group = 1 is supported"));
        }
        let (wname, w) = self.need_input(i, 1, "weight")?;
        let (wname, w) = (wname.to_string(), w.clone());
        let [oc, c, kh, kw] = *w.dims.as_slice() else {
            return Err(self.unsupported(
                i,
                format!("a weight of shape {:?}; Conv2d is supported", w.dims),
            ));
        };
        if kh != kw {
            return Err(
                self.unsupported(i, format!("kernel {kh}x{kw}; a square kernel is supported"))
            );
        }
        let (k, stride, pad) = self.window(i, Some(kh))?;
        if shape.first() != Some(&c) || shape.len() != 3 {
            return Err(OnnxError::Shape {
                op_type: "Conv".into(),
                node: node_name(n, i),
                shape: shape.to_vec(),
            });
        }
        let bias = match self.const_input(i, 2) {
            Some((bn, b)) => {
                if b.len() != oc {
                    return Err(self.unsupported(
                        i,
                        format!("bias `{bn}` has {} values for {oc} channels", b.len()),
                    ));
                }
                Some(b.floats(bn)?.to_vec())
            }
            // PyTorch's `bias=False`: a bias-free layer (a batch-norm
            // folded into it gives it one).
            None => None,
        };
        let data = w.floats(&wname)?.to_vec();
        let p = self.prefix(&wname);
        self.insert(format!("{p}.weight"), w.dims.clone(), data)?;
        Ok(match bias {
            Some(bias) => {
                self.insert(format!("{p}.bias"), vec![oc], bias)?;
                Layer::conv2d(&p, c, oc, k, stride, pad)
            }
            None => Layer::conv2d_no_bias(&p, c, oc, k, stride, pad),
        })
    }

    /// `(bias values)` from constant input `k`, broadcast to `out`, times
    /// `scale`; `None` without that input (a bias-free layer).
    fn bias(
        &self,
        i: usize,
        k: usize,
        out: usize,
        scale: f32,
    ) -> Result<Option<Vec<f32>>, OnnxError> {
        let Some((name, c)) = self.const_input(i, k) else {
            return Ok(None);
        };
        let v = c.floats(name)?;
        let fits = c.dims.iter().filter(|d| **d != 1).count() <= 1;
        let b: Vec<f32> = match v.len() {
            n if n == out && fits => v.to_vec(),
            1 => vec![v[0]; out],
            n => {
                return Err(self.unsupported(
                    i,
                    format!(
                        "bias `{name}` of shape {:?} ({n} values) for {out} outputs",
                        c.dims
                    ),
                ));
            }
        };
        Ok(Some(b.into_iter().map(|x| x * scale).collect()))
    }

    fn gemm(&mut self, i: usize, shape: &[usize]) -> Result<Layer, OnnxError> {
        let n = &self.nodes[i];
        if int_attr(n, "transA").unwrap_or(0) != 0 {
            return Err(self.unsupported(i, "transA = 1; the activation must not be transposed"));
        }
        let alpha = float_attr(n, "alpha").unwrap_or(1.0);
        let beta = float_attr(n, "beta").unwrap_or(1.0);
        let trans_b = int_attr(n, "transB").unwrap_or(0) != 0;
        let (wname, w) = self.need_input(i, 1, "weight")?;
        let [r, c] = *w.dims.as_slice() else {
            return Err(self.unsupported(i, format!("a weight of shape {:?}", w.dims)));
        };
        let (inp, out) = if trans_b { (c, r) } else { (r, c) };
        if shape != [inp] {
            return Err(OnnxError::Shape {
                op_type: "Gemm".into(),
                node: node_name(n, i),
                shape: shape.to_vec(),
            });
        }
        let data = w.floats(wname)?;
        let weight: Vec<f32> = if trans_b {
            data.iter().map(|v| v * alpha).collect()
        } else {
            transpose(data, inp, out)
                .into_iter()
                .map(|v| v * alpha)
                .collect()
        };
        let wname = wname.to_string();
        let bias = self.bias(i, 2, out, beta)?;
        let p = self.prefix(&wname);
        self.insert(format!("{p}.weight"), vec![out, inp], weight)?;
        self.linear_layer(&p, inp, out, bias)
    }

    fn matmul(
        &mut self,
        i: usize,
        shape: &[usize],
        layers: &mut Vec<Layer>,
    ) -> Result<Step, OnnxError> {
        let n = &self.nodes[i];
        let (wname, w) = self.need_input(i, 1, "weight")?;
        let [inp, out] = *w.dims.as_slice() else {
            return Err(self.unsupported(
                i,
                format!("a weight of shape {:?}; [in, out] is supported", w.dims),
            ));
        };
        if shape != [inp] {
            return Err(OnnxError::Shape {
                op_type: "MatMul".into(),
                node: node_name(n, i),
                shape: shape.to_vec(),
            });
        }
        let weight = transpose(w.floats(wname)?, inp, out);
        let wname = wname.to_string();
        let mut end = n.output.first().cloned().unwrap_or_default();
        // `Add(MatMul(x, W), b)` (either order) with `b` a constant: the bias.
        let mut bias = None;
        if let Some(a) = self.sole_user(&end, "Add")
            && let [p, q] = self.nodes[a].input.as_slice()
        {
            let k = if *p == end { 1 } else { 0 };
            let other = if k == 1 { q } else { p };
            if self.consts.contains_key(other) {
                bias = self.bias(a, k, out, 1.0)?;
                self.visited[a] = true;
                end = self.nodes[a].output.first().cloned().unwrap_or_default();
            }
        }
        let p = self.prefix(&wname);
        self.insert(format!("{p}.weight"), vec![out, inp], weight)?;
        let lin = self.linear_layer(&p, inp, out, bias)?;
        let s = self.push(i, lin, shape, layers)?;
        Ok((end, s))
    }

    /// A `Linear` at prefix `p` with its bias stored, or a bias-free one.
    fn linear_layer(
        &mut self,
        p: &str,
        inp: usize,
        out: usize,
        bias: Option<Vec<f32>>,
    ) -> Result<Layer, OnnxError> {
        Ok(match bias {
            Some(b) => {
                self.insert(format!("{p}.bias"), vec![out], b)?;
                Layer::linear(p, inp, out)
            }
            None => Layer::linear_no_bias(p, inp, out),
        })
    }

    fn max_pool(&self, i: usize) -> Result<Layer, OnnxError> {
        if int_attr(&self.nodes[i], "storage_order").unwrap_or(0) != 0 {
            return Err(self.unsupported(i, "storage_order = 1"));
        }
        let (k, stride, pad) = self.window(i, None)?;
        Ok(Layer::max_pool(k, stride, pad))
    }

    fn avg_pool(&self, i: usize) -> Result<Layer, OnnxError> {
        let (k, stride, pad) = self.window(i, None)?;
        if pad != 0 {
            return Err(self.unsupported(i, "padded average pooling; only pads = 0 is supported"));
        }
        Ok(Layer::avg_pool(k, stride))
    }

    fn global_avg(&self, i: usize, shape: &[usize]) -> Result<Layer, OnnxError> {
        match shape {
            [_, h, w] if h == w => Ok(Layer::adaptive_avg_pool(1)),
            _ => Err(OnnxError::Shape {
                op_type: self.nodes[i].op_type().to_string(),
                node: node_name(&self.nodes[i], i),
                shape: shape.to_vec(),
            }),
        }
    }

    /// A `ReduceMean` over the two spatial axes; returns `keepdims`.
    fn reduce_mean(&self, i: usize, shape: &[usize]) -> Result<bool, OnnxError> {
        let n = &self.nodes[i];
        let axes: Vec<i64> = match (ints_attr(n, "axes"), self.const_input(i, 1)) {
            (Some(a), _) => a.to_vec(),
            (None, Some((name, c))) => c.ints(name)?.to_vec(),
            (None, None) => vec![],
        };
        let rank = shape.len() as i64 + 1;
        let mut norm: Vec<i64> = axes
            .iter()
            .map(|a| if *a < 0 { a + rank } else { *a })
            .collect();
        norm.sort_unstable();
        if rank != 4 || norm != [2, 3] {
            return Err(self.unsupported(
                i,
                format!("ReduceMean over axes {axes:?}; only the spatial axes (2, 3) of [N, C, H, W] are supported"),
            ));
        }
        Ok(int_attr(n, "keepdims").unwrap_or(1) != 0)
    }

    fn reshape(&self, i: usize, shape: &[usize]) -> Result<(), OnnxError> {
        let (name, c) = self.need_input(i, 1, "target shape")?;
        let t = c.ints(name)?;
        let per = shape
            .iter()
            .try_fold(1usize, |a, d| a.checked_mul(*d))
            .ok_or_else(|| self.unsupported(i, format!("the size of {shape:?} overflows")))?;
        let allowzero = int_attr(&self.nodes[i], "allowzero").unwrap_or(0) != 0;
        let ok = match *t {
            [a, b] => {
                let batch_ok = a == -1 || a > 0 || (a == 0 && !allowzero);
                batch_ok && (to_usize(b) == Some(per) || (b == -1 && a != -1))
            }
            _ => false,
        };
        if !ok {
            return Err(self.unsupported(
                i,
                format!(
                    "reshape of {shape:?} to {t:?}; only [batch, {per}] (a flatten) is supported"
                ),
            ));
        }
        Ok(())
    }

    fn batch_norm_params(&self, i: usize, c: usize) -> Result<[Vec<f32>; 4], OnnxError> {
        let n = &self.nodes[i];
        if int_attr(n, "training_mode").unwrap_or(0) != 0 {
            return Err(self.unsupported(i, "training_mode = 1; export the model in eval mode"));
        }
        if int_attr(n, "spatial").unwrap_or(1) != 1 {
            return Err(self.unsupported(i, "spatial = 0"));
        }
        let eps = f64::from(float_attr(n, "epsilon").unwrap_or(1e-5));
        let mut out: [Vec<f32>; 4] = Default::default();
        for (k, o) in out.iter_mut().enumerate() {
            let (name, t) = self.need_input(i, k + 1, ["scale", "bias", "mean", "variance"][k])?;
            if t.len() != c {
                return Err(self.unsupported(
                    i,
                    format!("`{name}` has {} values for {c} channels", t.len()),
                ));
            }
            *o = t.floats(name)?.to_vec();
        }
        // ariann-nn's batch-norm uses eps = 1e-5: move the difference into the variance.
        if (eps - BN_EPS).abs() > 0.0 {
            for v in out[3].iter_mut() {
                let var = f64::from(*v) + eps;
                if var.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
                    return Err(self.unsupported(i, "a variance plus epsilon that is not positive"));
                }
                *v = (var - BN_EPS) as f32;
            }
        }
        Ok(out)
    }

    fn batch_norm(&mut self, i: usize, shape: &[usize]) -> Result<Layer, OnnxError> {
        let c = match shape {
            [c, _, _] => *c,
            _ => {
                return Err(OnnxError::Shape {
                    op_type: "BatchNormalization".into(),
                    node: node_name(&self.nodes[i], i),
                    shape: shape.to_vec(),
                });
            }
        };
        let params = self.batch_norm_params(i, c)?;
        let scale_name = self.need_input(i, 1, "scale")?.0.to_string();
        let p = self.prefix(&scale_name);
        for (t, v) in ["weight", "bias", "running_mean", "running_var"]
            .iter()
            .zip(params)
        {
            self.insert(format!("{p}.{t}"), vec![c], v)?;
        }
        Ok(Layer::batch_norm(&p, c))
    }

    /// A batch-norm on `[N, F]` folded into the `Linear` just before it.
    fn batch_norm_1d(
        &mut self,
        i: usize,
        shape: &[usize],
        layers: &mut [Layer],
    ) -> Result<(), OnnxError> {
        let f = shape[0];
        let [g, beta, mean, var] = self.batch_norm_params(i, f)?;
        let Some(Layer::Linear(lin)) = layers
            .last_mut()
            .filter(|l| matches!(l, Layer::Linear(l) if l.out == f))
        else {
            return Err(self.unsupported(
                i,
                "a batch-norm of a [N, F] activation must follow a Gemm or MatMul (it is folded into it)",
            ));
        };
        let (wn, bn) = (format!("{}.weight", lin.name), format!("{}.bias", lin.name));
        let missing = || OnnxError::Graph(format!("no weights for layer {}", lin.name));
        let (ws, wd) = self.weights.get(&wn).ok_or_else(missing)?;
        let (ws, mut wd) = (ws.to_vec(), wd.to_vec());
        // A bias-free layer folds as one with a zero bias, and gets one.
        let mut b = if lin.bias {
            self.weights.get(&bn).ok_or_else(missing)?.1.to_vec()
        } else {
            vec![0.0; f]
        };
        lin.bias = true;
        let per = lin.inp;
        for o in 0..f {
            let s = f64::from(g[o]) / (f64::from(var[o]) + BN_EPS).sqrt();
            for v in wd[o * per..(o + 1) * per].iter_mut() {
                *v = (f64::from(*v) * s) as f32;
            }
            b[o] = ((f64::from(b[o]) - f64::from(mean[o])) * s + f64::from(beta[o])) as f32;
        }
        self.insert(wn, ws, wd)?;
        self.insert(bn, vec![f], b)?;
        Ok(())
    }

    /// `Slice` nodes on the spatial axes (with the same step on both), and
    /// a `Pad` of the channel axis after them, as one `SubsamplePad`.
    fn subsample_pad(
        &mut self,
        i: usize,
        shape: &[usize],
        layers: &mut Vec<Layer>,
    ) -> Result<Step, OnnxError> {
        let [_, h, w] = *shape else {
            return Err(OnnxError::Shape {
                op_type: self.nodes[i].op_type().to_string(),
                node: node_name(&self.nodes[i], i),
                shape: shape.to_vec(),
            });
        };
        let mut steps = [1usize, 1];
        let mut pad = 0;
        let mut cur = i;
        let mut end;
        loop {
            self.visited[cur] = true;
            end = self.nodes[cur].output.first().cloned().unwrap_or_default();
            match self.nodes[cur].op_type() {
                "Slice" => {
                    for (axis, step) in self.slice(cur, [h, w])? {
                        steps[axis] = steps[axis]
                            .checked_mul(step)
                            .ok_or_else(|| self.unsupported(cur, "step overflows"))?;
                    }
                    if let Some(next) = self
                        .sole_user(&end, "Slice")
                        .or_else(|| self.sole_user(&end, "Pad"))
                    {
                        cur = next;
                        continue;
                    }
                }
                _ => pad = self.pad(cur)?,
            }
            break;
        }
        if steps[0] != steps[1] {
            return Err(self.unsupported(
                cur,
                format!(
                    "subsampling by {} x {}; the same step on both spatial axes is supported",
                    steps[0], steps[1]
                ),
            ));
        }
        let s = if steps[0] == 1 && pad == 0 {
            shape.to_vec()
        } else {
            self.push(cur, Layer::subsample_pad(steps[0], pad), shape, layers)?
        };
        Ok((end, s))
    }

    /// The `(spatial axis, step)` pairs of Slice node `i` over `[h, w]`;
    /// every slice must keep its axis whole (start 0, end past the end).
    fn slice(&self, i: usize, hw: [usize; 2]) -> Result<Vec<(usize, usize)>, OnnxError> {
        let n = &self.nodes[i];
        let get = |k: usize, attr: &str| -> Result<Option<Vec<i64>>, OnnxError> {
            if let Some(a) = ints_attr(n, attr) {
                return Ok(Some(a.to_vec()));
            }
            match self.const_input(i, k) {
                Some((name, c)) => Ok(Some(c.ints(name)?.to_vec())),
                None if n.input.get(k).is_some_and(|v| !v.is_empty()) => {
                    Err(self.unsupported(i, format!("{attr} is not a constant")))
                }
                None => Ok(None),
            }
        };
        let starts = get(1, "starts")?.ok_or_else(|| self.unsupported(i, "no starts"))?;
        let ends = get(2, "ends")?.ok_or_else(|| self.unsupported(i, "no ends"))?;
        let axes = get(3, "axes")?.unwrap_or_else(|| (0..starts.len() as i64).collect());
        let steps = get(4, "steps")?.unwrap_or_else(|| vec![1; starts.len()]);
        if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
            return Err(self.unsupported(i, "starts, ends, axes and steps of different lengths"));
        }
        let mut out = Vec::new();
        for k in 0..starts.len() {
            let axis = if axes[k] < 0 { axes[k] + 4 } else { axes[k] };
            let (start, end, step) = (starts[k], ends[k], steps[k]);
            let dim = match axis {
                0 | 1 => None,
                2 | 3 => Some(hw[(axis - 2) as usize]),
                _ => return Err(self.unsupported(i, format!("axis {}", axes[k]))),
            };
            let whole_end = match dim {
                Some(d) => to_usize(end).is_some_and(|e| e >= d),
                None => end == i64::MAX,
            };
            if start != 0 || !whole_end || step < 1 || (dim.is_none() && step != 1) {
                return Err(self.unsupported(
                    i,
                    format!(
                        "slice {start}:{end}:{step} of axis {axis}; only x[:, :, ::s, ::s] (the option-A shortcut) is supported"
                    ),
                ));
            }
            if dim.is_some() {
                out.push(((axis - 2) as usize, to_usize(step).unwrap_or(1)));
            }
        }
        Ok(out)
    }

    /// The channel padding of Pad node `i` (zeros, the same before and after).
    fn pad(&self, i: usize) -> Result<usize, OnnxError> {
        let n = &self.nodes[i];
        let bad = |why: String| self.unsupported(i, why);
        if !matches!(string_attr(n, "mode"), None | Some("constant")) {
            return Err(bad("a mode other than constant".into()));
        }
        let pads: Vec<i64> = match (ints_attr(n, "pads"), self.const_input(i, 1)) {
            (Some(p), _) => p.to_vec(),
            (None, Some((name, c))) => c.ints(name)?.to_vec(),
            (None, None) => return Err(bad("no pads".into())),
        };
        if let Some((_, c)) = self.const_input(i, 2) {
            let zero = match &c.data {
                Data::F32(v) => v.iter().all(|x| *x == 0.0),
                Data::I64(v) => v.iter().all(|x| *x == 0),
            };
            if !zero {
                return Err(bad("a non-zero pad value".into()));
            }
        }
        if float_attr(n, "value").is_some_and(|v| v != 0.0) {
            return Err(bad("a non-zero pad value".into()));
        }
        if n.input.get(3).is_some_and(|v| !v.is_empty()) {
            return Err(bad("the axes input".into()));
        }
        match *pads.as_slice() {
            [0, p, 0, 0, 0, q, 0, 0] if p == q && p >= 0 => {
                to_usize(p).ok_or_else(|| bad(format!("pad {p}")))
            }
            _ => Err(bad(format!(
                "pads {pads:?}; only zero channels added evenly before and after ([0, p, 0, 0, 0, p, 0, 0]) are supported"
            ))),
        }
    }
}

fn to_usize(v: i64) -> Option<usize> {
    usize::try_from(v).ok()
}

/// `[r, c]` row-major to `[c, r]`.
fn transpose(v: &[f32], r: usize, c: usize) -> Vec<f32> {
    let mut out = vec![0.0; v.len()];
    for i in 0..r {
        for j in 0..c {
            out[j * r + i] = v[i * c + j];
        }
    }
    out
}

fn attr<'n>(n: &'n NodeProto, name: &str) -> Option<&'n AttributeProto> {
    n.attribute.iter().find(|a| a.name() == name)
}

fn int_attr(n: &NodeProto, name: &str) -> Option<i64> {
    attr(n, name).map(|a| a.i())
}

fn float_attr(n: &NodeProto, name: &str) -> Option<f32> {
    attr(n, name).map(|a| a.f())
}

fn ints_attr<'n>(n: &'n NodeProto, name: &str) -> Option<&'n [i64]> {
    attr(n, name).map(|a| a.ints.as_slice())
}

fn string_attr<'n>(n: &'n NodeProto, name: &str) -> Option<&'n str> {
    attr(n, name).and_then(|a| std::str::from_utf8(a.s()).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{
        GraphProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto, type_proto,
    };

    fn value(name: &str, dims: &[i64]) -> ValueInfoProto {
        ValueInfoProto {
            name: Some(name.into()),
            r#type: Some(TypeProto {
                value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                    elem_type: Some(1),
                    shape: Some(TensorShapeProto {
                        dim: dims
                            .iter()
                            .map(|d| tensor_shape_proto::Dimension {
                                value: Some(tensor_shape_proto::dimension::Value::DimValue(*d)),
                            })
                            .collect(),
                    }),
                })),
            }),
        }
    }

    fn init(name: &str, dims: &[i64]) -> TensorProto {
        let n: i64 = dims.iter().product();
        TensorProto {
            name: Some(name.into()),
            dims: dims.to_vec(),
            data_type: Some(1),
            float_data: (0..n).map(|i| i as f32 / 10.0).collect(),
            ..Default::default()
        }
    }

    fn ints(name: &str, v: &[i64]) -> AttributeProto {
        AttributeProto {
            name: Some(name.into()),
            ints: v.to_vec(),
            ..Default::default()
        }
    }

    fn int(name: &str, v: i64) -> AttributeProto {
        AttributeProto {
            name: Some(name.into()),
            i: Some(v),
            ..Default::default()
        }
    }

    fn node(
        op: &str,
        name: &str,
        ins: &[&str],
        out: &str,
        attrs: Vec<AttributeProto>,
    ) -> NodeProto {
        NodeProto {
            input: ins.iter().map(|s| s.to_string()).collect(),
            output: vec![out.into()],
            name: Some(name.into()),
            op_type: Some(op.into()),
            domain: None,
            attribute: attrs,
        }
    }

    /// A model on input `x` `[1, 2, 4, 4]` with output `y`.
    fn model(nodes: Vec<NodeProto>, inits: Vec<TensorProto>) -> Vec<u8> {
        ModelProto {
            ir_version: Some(8),
            graph: Some(GraphProto {
                node: nodes,
                name: Some("g".into()),
                initializer: inits,
                input: vec![value("x", &[1, 2, 4, 4])],
                output: vec![value("y", &[])],
            }),
            ..Default::default()
        }
        .encode_to_vec()
    }

    fn conv(name: &str, x: &str, out: &str, attrs: Vec<AttributeProto>) -> NodeProto {
        node("Conv", name, &[x, "w"], out, attrs)
    }

    fn use_reason(bytes: &[u8]) -> (String, String) {
        match crate::import(bytes) {
            Err(OnnxError::UnsupportedUse { node, reason, .. }) => (node, reason),
            other => panic!("expected UnsupportedUse, got {other:?}"),
        }
    }

    #[test]
    fn a_plain_graph_imports() {
        let b = model(
            vec![
                conv("c", "x", "a", vec![ints("pads", &[1, 1, 1, 1])]),
                node("Relu", "r", &["a"], "y", vec![]),
            ],
            vec![init("w", &[3, 2, 3, 3])],
        );
        let imp = crate::import(&b).expect("imports");
        let m = imp.model;
        // A Conv without a bias input is a bias-free layer: no bias tensor
        // is invented.
        assert_eq!(
            m.layers,
            vec![Layer::conv2d_no_bias("w", 2, 3, 3, 1, 1), Layer::Relu]
        );
        assert!(imp.weights.get("w.bias").is_none());
        assert_eq!(m.input, vec![2, 4, 4]);
    }

    #[test]
    fn unsupported_forms_name_the_node() {
        let w = || vec![init("w", &[3, 2, 3, 3])];
        for (attrs, want) in [
            (vec![int("group", 2)], "group"),
            (vec![ints("pads", &[0, 1, 0, 1])], "pads"),
            (vec![ints("strides", &[1, 2])], "strides"),
            (vec![ints("dilations", &[2, 2])], "dilations"),
        ] {
            let b = model(vec![conv("the_conv", "x", "y", attrs)], w());
            let (node, reason) = use_reason(&b);
            assert_eq!(node, "the_conv");
            assert!(reason.contains(want), "{reason}");
        }
        // An activation as the weight.
        let b = model(vec![node("Conv", "c", &["x", "x"], "y", vec![])], vec![]);
        assert!(use_reason(&b).1.contains("initializer"));
    }

    #[test]
    fn other_domains_are_refused() {
        let mut n = node("Relu", "r", &["x"], "y", vec![]);
        n.domain = Some("com.microsoft".into());
        match crate::import(&model(vec![n], vec![])) {
            Err(OnnxError::UnsupportedOp {
                op_type,
                node,
                domain,
            }) => {
                assert_eq!((op_type.as_str(), node.as_str()), ("Relu", "r"));
                assert!(domain.contains("com.microsoft"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn forks_must_join_in_one_add() {
        // Three readers of x.
        let b = model(
            vec![
                node("Relu", "a", &["x"], "a", vec![]),
                node("Relu", "b", &["x"], "b", vec![]),
                node("Relu", "c", &["x"], "c", vec![]),
                node("Add", "ab", &["a", "b"], "ab", vec![]),
                node("Add", "y", &["ab", "c"], "y", vec![]),
            ],
            vec![],
        );
        assert!(matches!(crate::import(&b), Err(OnnxError::Graph(_))));
        // A branch that ends at the output instead of joining.
        let b = model(
            vec![
                node("Relu", "a", &["x"], "y", vec![]),
                node("Relu", "b", &["x"], "b", vec![]),
            ],
            vec![],
        );
        assert!(crate::import(&b).is_err());
        // x + relu(x): a residual block with an identity shortcut.
        let b = model(
            vec![
                node("Relu", "a", &["x"], "a", vec![]),
                node("Add", "y", &["x", "a"], "y", vec![]),
            ],
            vec![],
        );
        let m = crate::import(&b).expect("imports").model;
        assert_eq!(m.layers, vec![Layer::residual(vec![Layer::Relu], vec![])]);
        // A node off the path to the output.
        let b = model(
            vec![
                node("Relu", "r", &["x"], "y", vec![]),
                node("Relu", "stray", &["z"], "q", vec![]),
            ],
            vec![],
        );
        match crate::import(&b) {
            Err(OnnxError::Graph(m)) => assert!(m.contains("stray"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn slices_and_pads_outside_option_a_are_refused() {
        let c = |name: &str, v: &[i64]| TensorProto {
            name: Some(name.into()),
            dims: vec![v.len() as i64],
            data_type: Some(7),
            int64_data: v.to_vec(),
            ..Default::default()
        };
        // x[:, :, 1::2, ::2]: not from the start.
        let b = model(
            vec![node(
                "Slice",
                "s",
                &["x", "st", "en", "ax", "sp"],
                "y",
                vec![],
            )],
            vec![
                c("st", &[1, 0]),
                c("en", &[i64::MAX, i64::MAX]),
                c("ax", &[2, 3]),
                c("sp", &[2, 2]),
            ],
        );
        assert_eq!(use_reason(&b).0, "s");
        // x[:, :, ::2, ::2] then 1 zero channel on each side: SubsamplePad.
        let b = model(
            vec![
                node("Slice", "s", &["x", "st", "en", "ax", "sp"], "s", vec![]),
                node("Pad", "p", &["s", "pads"], "y", vec![]),
            ],
            vec![
                c("st", &[0, 0]),
                c("en", &[i64::MAX, i64::MAX]),
                c("ax", &[-2, -1]),
                c("sp", &[2, 2]),
                c("pads", &[0, 1, 0, 0, 0, 1, 0, 0]),
            ],
        );
        let m = crate::import(&b).expect("imports").model;
        assert_eq!(m.layers, vec![Layer::subsample_pad(2, 1)]);
        // Spatial padding is refused.
        let b = model(
            vec![node("Pad", "p", &["x", "pads"], "y", vec![])],
            vec![c("pads", &[0, 0, 1, 1, 0, 0, 1, 1])],
        );
        assert_eq!(use_reason(&b).0, "p");
    }

    #[test]
    fn deeply_nested_forks_are_refused_without_exhausting_the_stack() {
        // x -> (relu_k, skip) -> add_k ... 10,000 levels of nesting:
        // each block's body opens the next block.
        let depth = 10_000;
        let mut nodes = Vec::new();
        let mut cur = "x".to_string();
        let mut pending = Vec::new();
        for k in 0..depth {
            let r = format!("r{k}");
            nodes.push(node("Relu", &r, &[&cur], &r, vec![]));
            pending.push((cur.clone(), k));
            cur = r;
        }
        for (skip, k) in pending.into_iter().rev() {
            let out = if k == 0 {
                "y".to_string()
            } else {
                format!("a{k}")
            };
            nodes.push(node("Add", &out, &[&cur, &skip], &out, vec![]));
            cur = out;
        }
        match crate::import(&model(nodes, vec![])) {
            Err(OnnxError::Graph(m)) => assert!(m.contains("nested"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
}
