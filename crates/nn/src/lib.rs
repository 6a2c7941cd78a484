//! # ariann-nn: one model definition, one code path, three backends
//!
//! A [`Model`] is a public architecture (a sequence of [`Layer`]s over an
//! input shape); [`Weights`] are its float parameters by PyTorch state-dict
//! names (`fc1.weight`, `conv1.bias`, ...), loaded from and saved to
//! safetensors; [`Params`] holds the fixed-point parameters (or one party's
//! shares of them) by the same names.
//!
//! Every layer kind is one module of [`layers`] implementing [`LayerOp`]:
//! its shape, its parameters, its float forward pass and its forward pass on
//! a gate backend ([`ariann_mpc::Gates`]). That one forward pass runs
//!
//! - in cleartext fixed point ([`forward_fixed`], on [`ariann_mpc::Clear`]:
//!   exactly the arithmetic of the private run; the private output equals it
//!   bit for bit),
//! - privately ([`forward_private`], on a [`ariann_mpc::Session`]: both
//!   parties, keys from the dealer's plan consumed in order),
//! - on a [`ariann_mpc::Recorder`], whose trace is the dealer's [`plan`]:
//!   the plan cannot drift from the code the parties run.
//!
//! The float reference is [`forward_float`] (f64 arithmetic).
//!
//! Fixed point: `Z_2^64`, `f` fractional bits ([`Config`]); weights at `f`
//! bits, biases at `2f` (added to products before the exact truncation back
//! to `f`). Max-pool pads with `-inf` (padded positions never win), average
//! pooling divides by `k^2`.
//!
//! Modules: [`model`] (Model, Layer, shapes, JSON, Config), [`weights`],
//! `fold` (batch-norm folding, [`Model::fold_batchnorm`]), [`params`],
//! [`layers`] (one file per layer), [`run`] (entry points), [`zoo`].
//!
//! What this crate does not know: transports, files, threads. Training (the
//! backward pass) is the next step: each layer module is where its saved
//! state and backward pass go; the private forward already keeps what a
//! backward pass needs in the gate outputs (DReLU bits, max-pool selections).
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(clippy::unwrap_used)]

mod error;
mod fold;
pub mod layers;
pub mod model;
pub mod params;
pub mod profile;
pub mod run;
pub mod train;
pub mod weights;
pub mod zoo;

pub use error::NnError;
pub use layers::{Ctx, FloatCtx, FloatGrads, LayerOp, Tape};
pub use model::{BN_EPS, Config, Layer, Model, Rounding, Variant};
pub use params::Params;
pub use profile::{LayerProfile, Profiler};
pub use run::{
    decode_output, encode_input, forward, forward_batches, forward_fixed, forward_float,
    forward_private, forward_profiled, plan, plan_batches, share_weights,
};
pub use train::{
    FloatTrainer, Loss, Optimizer, StepOutput, TrainConfig, TrainState, encode_targets, train_plan,
    train_step,
};
pub use weights::{Init, Weights};
