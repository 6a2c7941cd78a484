//! `Residual`: `body(x) + shortcut(x)`; the sum is local (shares add).

use super::{
    Ctx, FloatCtx, FloatGrads, LayerOp, Tape, backward_layers, float_backward_layers, float_layers,
    float_train_layers, forward_layers, forward_train_layers, run_layers,
};
use crate::error::NnError;
use crate::model::{Config, Layer};
use crate::params::Params;
use crate::weights::Weights;

/// Residual block: `body(x) + shortcut(x)` (an empty shortcut is the
/// identity). Nested layers' paths are `{path}.body.{i}` and
/// `{path}.shortcut.{i}` (or their own parameter prefix).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Residual {
    /// Main branch.
    pub body: Vec<Layer>,
    /// Shortcut branch (e.g. a strided 1x1 convolution and its batch-norm).
    pub shortcut: Vec<Layer>,
}

impl Residual {
    fn branches(&self) -> impl Iterator<Item = &Layer> {
        self.body.iter().chain(&self.shortcut)
    }
}

impl LayerOp for Residual {
    fn out_shape(&self, input: &[usize]) -> Option<Vec<usize>> {
        let run = |ls: &[Layer]| {
            ls.iter()
                .try_fold(input.to_vec(), |c, l| l.op().out_shape(&c))
        };
        let (a, b) = (run(&self.body)?, run(&self.shortcut)?);
        (a == b).then_some(a)
    }

    fn parameters(&self, out: &mut Vec<(String, Vec<usize>)>) {
        for l in self.branches() {
            l.op().parameters(out);
        }
    }

    fn fixed_parameters(&self, out: &mut Vec<(String, Vec<usize>)>) {
        for l in self.branches() {
            l.op().fixed_parameters(out);
        }
    }

    fn train_parameters(&self, out: &mut Vec<(String, Vec<usize>)>) {
        for l in self.branches() {
            l.op().train_parameters(out);
        }
    }

    fn encode_train_parameters(
        &self,
        w: &Weights,
        cfg: &Config,
        out: &mut Params,
    ) -> Result<(), NnError> {
        for l in self.branches() {
            l.op().encode_train_parameters(w, cfg, out)?;
        }
        Ok(())
    }

    fn forward_float_train(
        &self,
        ctx: &FloatCtx<'_>,
        x: Vec<f64>,
        shape: &[usize],
    ) -> Result<Vec<f64>, NnError> {
        let (a, _) = float_train_layers(
            ctx,
            &self.body,
            &format!("{}.body", ctx.path),
            x.clone(),
            shape,
        )?;
        let (b, _) = float_train_layers(
            ctx,
            &self.shortcut,
            &format!("{}.shortcut", ctx.path),
            x,
            shape,
        )?;
        Ok(a.iter().zip(&b).map(|(x, y)| x + y).collect())
    }

    fn encode_parameters(
        &self,
        w: &Weights,
        cfg: &Config,
        out: &mut Params,
    ) -> Result<(), NnError> {
        for l in self.branches() {
            l.op().encode_parameters(w, cfg, out)?;
        }
        Ok(())
    }

    fn forward_float(
        &self,
        ctx: &FloatCtx<'_>,
        x: Vec<f64>,
        shape: &[usize],
    ) -> Result<Vec<f64>, NnError> {
        let (a, _) = float_layers(
            ctx,
            &self.body,
            &format!("{}.body", ctx.path),
            x.clone(),
            shape,
        )?;
        let (b, _) = float_layers(
            ctx,
            &self.shortcut,
            &format!("{}.shortcut", ctx.path),
            x,
            shape,
        )?;
        Ok(a.iter().zip(&b).map(|(x, y)| x + y).collect())
    }

    fn forward(
        &self,
        ctx: &mut Ctx<'_>,
        x: Vec<u64>,
        shape: &[usize],
    ) -> Result<Vec<u64>, NnError> {
        let here = ctx.path.clone();
        let (a, _) = forward_layers(ctx, &self.body, &format!("{here}.body"), x.clone(), shape)?;
        let (b, _) = forward_layers(ctx, &self.shortcut, &format!("{here}.shortcut"), x, shape)?;
        Ok(a.iter().zip(&b).map(|(x, y)| x.wrapping_add(*y)).collect())
    }

    fn defers_truncation(&self) -> bool {
        self.body.last().is_some_and(|l| l.op().defers_truncation())
    }

    /// The body without its last truncation (at `2f` bits) plus the
    /// shortcut scaled to `2f` bits (a local multiplication by `2^f`):
    /// `floor((a + 2^f b) / 2^f) = floor(a / 2^f) + b`, so truncating the sum
    /// later gives what truncating the body and adding would.
    fn forward_untruncated(
        &self,
        ctx: &mut Ctx<'_>,
        x: Vec<u64>,
        shape: &[usize],
    ) -> Result<Vec<u64>, NnError> {
        let here = ctx.path.clone();
        let (a, _) = run_layers(
            ctx,
            &self.body,
            &format!("{here}.body"),
            x.clone(),
            shape,
            true,
        )?;
        let (b, _) = forward_layers(ctx, &self.shortcut, &format!("{here}.shortcut"), x, shape)?;
        let s = 1u64 << ctx.cfg.frac_bits;
        Ok(a.iter()
            .zip(&b)
            .map(|(x, y)| x.wrapping_add(y.wrapping_mul(s)))
            .collect())
    }

    fn forward_train(
        &self,
        ctx: &mut Ctx<'_>,
        x: Vec<u64>,
        shape: &[usize],
        need_dx: bool,
    ) -> Result<(Vec<u64>, Tape), NnError> {
        let here = ctx.path.clone();
        let (a, _, ta) = forward_train_layers(
            ctx,
            &self.body,
            &format!("{here}.body"),
            x.clone(),
            shape,
            need_dx,
        )?;
        let (b, _, tb) = forward_train_layers(
            ctx,
            &self.shortcut,
            &format!("{here}.shortcut"),
            x,
            shape,
            need_dx,
        )?;
        let y = a.iter().zip(&b).map(|(x, y)| x.wrapping_add(*y)).collect();
        Ok((y, Tape::Residual(ta, tb)))
    }

    /// The gradient fans out to both branches; their input gradients add.
    fn backward(
        &self,
        ctx: &mut Ctx<'_>,
        tape: Tape,
        dy: Vec<u64>,
        _shape: &[usize],
        grads: &mut Params,
    ) -> Result<Option<Vec<u64>>, NnError> {
        let Tape::Residual(ta, tb) = tape else {
            return Err(NnError::Training(
                "a residual block got another layer's tape".into(),
            ));
        };
        let here = ctx.path.clone();
        let a = backward_layers(
            ctx,
            &self.body,
            &format!("{here}.body"),
            ta,
            dy.clone(),
            grads,
        )?;
        let b = backward_layers(
            ctx,
            &self.shortcut,
            &format!("{here}.shortcut"),
            tb,
            dy,
            grads,
        )?;
        Ok(match (a, b) {
            (Some(a), Some(b)) => Some(a.iter().zip(&b).map(|(x, y)| x.wrapping_add(*y)).collect()),
            _ => None,
        })
    }

    fn backward_float(
        &self,
        ctx: &FloatCtx<'_>,
        x: &[f64],
        shape: &[usize],
        dy: Vec<f64>,
        grads: &mut FloatGrads,
    ) -> Result<Vec<f64>, NnError> {
        let mut out = Vec::new();
        for (branch, layers) in [("body", &self.body), ("shortcut", &self.shortcut)] {
            let prefix = format!("{}.{branch}", ctx.path);
            let (_, inputs) = float_train_layers(ctx, layers, &prefix, x.to_vec(), shape)?;
            let d = float_backward_layers(ctx, layers, &prefix, &inputs, dy.clone(), grads)?;
            if out.is_empty() {
                out = d;
            } else {
                for (o, v) in out.iter_mut().zip(d) {
                    *o += v;
                }
            }
        }
        Ok(out)
    }
}
