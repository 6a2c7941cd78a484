//! # ariann-job: one job file for the dealer and both parties
//!
//! A private job is public and must be identical at three places: the
//! dealer derives its plan (and keys) from it, and both parties run it. A
//! [`JobFile`] is that public description in one TOML file, read by
//! `ariann-dealer keys|plan|serve --job FILE` and `ariann-party --job FILE`
//! (inference, `--train`, and the plan settings of daemon mode):
//!
//! ```toml
//! model = "network1"            # or model-json = "my-model.json"
//! batch = 128
//! frac-bits = 16
//! k-cmp = 32
//! k-trunc = 56
//! max-gate-elems = 262144
//! variant = "small-key"         # or "one-round"
//! permute-relu-maxpool = true
//! output-to = 1
//! ```
//!
//! Keys are named like the binaries' long options, every one optional; a
//! key this crate does not know is an error that names it (a misspelt
//! setting must not silently fall back to a default and make the dealer and
//! the parties disagree). Relative paths (`model-json`, `model-onnx`) are
//! taken from the job file's directory. Command-line options override the
//! file ([`JobFile::or`]). The full key list is [`KEYS`]; the user guide's
//! reference page (`docs/job-file.md`) documents each and a test checks that
//! it documents all of them.
//!
//! The model comes from one of `model` (a zoo name), `model-json` (a JSON
//! description, see `Model::from_json`) or `model-onnx` (an ONNX file:
//! [`load_onnx_architecture`] is the hook the ONNX importer fills; this
//! crate does not parse ONNX).
//!
//! What this crate does not know: keys, transports, weights, inputs. It
//! turns the file into a [`Model`] and a [`Config`]; the dealer and the
//! parties derive the plan from those with `ariann_nn`.
//!
//! Dependencies: `toml` (already the parties' `--config` parser) and
//! `serde` for the file, `thiserror` for [`JobError`].
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(clippy::unwrap_used)]

use ariann_nn::{Config, Loss, Model, Optimizer, Rounding, Variant, zoo};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Errors of reading a job file or loading its model.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum JobError {
    /// The job file (or a model file it names) could not be read.
    #[error("cannot read {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why (in the message, so not also chained as `source()`).
        error: std::io::Error,
    },
    /// The job file is not valid TOML or has an unknown key or a value of
    /// the wrong type (the message names the key).
    #[error("invalid job file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (names the key and the line).
        message: String,
    },
    /// The settings contradict each other or are out of range.
    #[error("{0}")]
    Invalid(String),
    /// A zoo name the zoo does not have.
    #[error("unknown model {name:?}; the zoo has {}", zoo::NAMES.join(", "))]
    UnknownModel {
        /// The name asked for.
        name: String,
    },
    /// A JSON model description that does not parse or whose layers do not
    /// fit together.
    #[error("invalid model description {path}: {error}")]
    Model {
        /// The file.
        path: PathBuf,
        /// Why (in the message, so not also chained as `source()`).
        error: ariann_nn::NnError,
    },
    /// An ONNX file the importer refuses (an unsupported op names its type
    /// and node; see `ariann_onnx`).
    #[error("cannot import the ONNX model {path}: {error}")]
    Onnx {
        /// The file.
        path: PathBuf,
        /// Why.
        error: ariann_onnx::OnnxError,
    },
}

/// The loss of a training job (`loss = "ce"` or `"mse"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LossName {
    /// Softmax cross-entropy.
    Ce,
    /// Mean squared error against the one-hot labels.
    Mse,
}

impl From<LossName> for Loss {
    fn from(l: LossName) -> Loss {
        match l {
            LossName::Ce => Loss::CrossEntropy,
            LossName::Mse => Loss::Mse,
        }
    }
}

/// The optimiser of a training job (`optimizer = "sgd"` or `"adam"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerName {
    /// SGD with momentum and weight decay.
    Sgd,
    /// Adam (`beta1`, `beta2`, `eps`).
    Adam,
}

/// A job file: the public description of one job. Every field is
/// optional; see the [crate docs](crate) and [`KEYS`].
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct JobFile {
    /// A zoo model by name.
    pub model: Option<String>,
    /// A JSON model description.
    pub model_json: Option<PathBuf>,
    /// An ONNX model ([`load_onnx_architecture`]).
    pub model_onnx: Option<PathBuf>,
    /// Inputs per batch (training: images per step, a power of two).
    pub batch: Option<usize>,
    /// Inference: batches of `batch` inputs in the job (1); the weights'
    /// masks are opened in the first and reused by the others.
    pub batches: Option<usize>,
    /// Fractional bits of the fixed-point encoding (16; training 20).
    pub frac_bits: Option<u32>,
    /// Comparison window of ReLU and max-pool, in bits.
    pub k_cmp: Option<u32>,
    /// Window of the truncations after products, in bits.
    pub k_trunc: Option<u32>,
    /// Largest number of elements per ReLU, truncation or max-pool bundle.
    pub max_gate_elems: Option<usize>,
    /// Comparison gates: `one-round` or `small-key`.
    pub variant: Option<Variant>,
    /// Rounding of the training truncations: `floor` or `nearest`.
    pub rounding: Option<Rounding>,
    /// Swap ReLU and max-pool where adjacent.
    pub permute_relu_maxpool: Option<bool>,
    /// The party that learns an inference output (0 or 1).
    pub output_to: Option<u8>,
    /// A private training job instead of inference.
    pub train: Option<bool>,
    /// Training: passes over the training set.
    pub epochs: Option<usize>,
    /// Training: the public number of training images N.
    pub train_images: Option<usize>,
    /// Training: the loss.
    pub loss: Option<LossName>,
    /// Training: keep a final ReLU on the logits.
    pub keep_final_relu: Option<bool>,
    /// Training: learning rate (does not change the plan).
    pub lr: Option<f64>,
    /// Training: decay the learning rate every that many epochs.
    pub lr_step: Option<usize>,
    /// Training: the decay factor of `lr-step`.
    pub lr_gamma: Option<f64>,
    /// Training: SGD momentum.
    pub momentum: Option<f64>,
    /// Training: weight decay.
    pub weight_decay: Option<f64>,
    /// Training: the optimiser [default: sgd].
    pub optimizer: Option<OptimizerName>,
    /// Training, Adam: decay of the first moment [default: 0.9].
    pub beta1: Option<f64>,
    /// Training, Adam: decay of the second moment [default: 0.999].
    pub beta2: Option<f64>,
    /// Training, Adam: added to `sqrt(v)` [default: 1e-8]; it is part of
    /// the keys (the dealer must have the same).
    pub eps: Option<f64>,
    /// Training: who gets the trained weights (`"0"`, `"1"` or `"shares"`).
    pub reveal_to: Option<String>,
}

/// Every key a job file may have, as written in the file.
pub const KEYS: &[&str] = &[
    "model",
    "model-json",
    "model-onnx",
    "batch",
    "batches",
    "frac-bits",
    "k-cmp",
    "k-trunc",
    "max-gate-elems",
    "variant",
    "rounding",
    "permute-relu-maxpool",
    "output-to",
    "train",
    "epochs",
    "train-images",
    "loss",
    "keep-final-relu",
    "lr",
    "lr-step",
    "lr-gamma",
    "momentum",
    "weight-decay",
    "optimizer",
    "beta1",
    "beta2",
    "eps",
    "reveal-to",
];

/// Where a model comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// A zoo model by name.
    Zoo(String),
    /// A JSON description.
    Json(PathBuf),
    /// An ONNX file.
    Onnx(PathBuf),
}

impl ModelSource {
    /// The model as described (batch-norms not folded).
    pub fn load(&self) -> Result<Model, JobError> {
        match self {
            ModelSource::Zoo(name) => zoo::by_name(name)
                .map(|(m, _, _)| m)
                .ok_or_else(|| JobError::UnknownModel { name: name.clone() }),
            ModelSource::Json(path) => {
                let text = read_to_string(path)?;
                Model::from_json(&text).map_err(|error| JobError::Model {
                    path: path.clone(),
                    error,
                })
            }
            ModelSource::Onnx(path) => load_onnx_architecture(path),
        }
    }
}

/// The hook of ONNX import: the public architecture of the model in the
/// ONNX file `path` (the dealer and the data owner need nothing more; the
/// model owner reads the weights from the file's initializers separately).
/// Initializer values are read past, not kept.
pub fn load_onnx_architecture(path: &Path) -> Result<Model, JobError> {
    let bytes = std::fs::read(path).map_err(|error| JobError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    ariann_onnx::architecture(&bytes).map_err(|error| JobError::Onnx {
        path: path.to_path_buf(),
        error,
    })
}

fn read_to_string(path: &Path) -> Result<String, JobError> {
    std::fs::read_to_string(path).map_err(|error| JobError::Read {
        path: path.to_path_buf(),
        error,
    })
}

impl JobFile {
    /// Parses a job file's text; `path` names it in errors, and relative
    /// model paths are taken from its directory.
    pub fn parse(text: &str, path: &Path) -> Result<JobFile, JobError> {
        let mut j: JobFile = toml::from_str(text).map_err(|e| JobError::Parse {
            path: path.to_path_buf(),
            message: match e.span() {
                Some(s) => {
                    let line = text.bytes().take(s.start).filter(|b| *b == b'\n').count();
                    let src: String = text
                        .lines()
                        .nth(line)
                        .unwrap_or("")
                        .trim()
                        .chars()
                        .take(80)
                        .collect();
                    format!("line {} (`{src}`): {}", line + 1, e.message())
                }
                None => e.message().to_string(),
            },
        })?;
        let base = path.parent().unwrap_or(Path::new(""));
        for p in [&mut j.model_json, &mut j.model_onnx].into_iter().flatten() {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(j)
    }

    /// Reads and parses the job file at `path`.
    pub fn read(path: &Path) -> Result<JobFile, JobError> {
        JobFile::parse(&read_to_string(path)?, path)
    }

    /// `self` where it has a setting, `lower` elsewhere (the command line
    /// over the job file). A model given in `self` replaces any model
    /// source of `lower`.
    pub fn or(self, lower: JobFile) -> JobFile {
        let own_model =
            self.model.is_some() || self.model_json.is_some() || self.model_onnx.is_some();
        let (model, model_json, model_onnx) = if own_model {
            (self.model, self.model_json, self.model_onnx)
        } else {
            (lower.model, lower.model_json, lower.model_onnx)
        };
        JobFile {
            model,
            model_json,
            model_onnx,
            batch: self.batch.or(lower.batch),
            batches: self.batches.or(lower.batches),
            frac_bits: self.frac_bits.or(lower.frac_bits),
            k_cmp: self.k_cmp.or(lower.k_cmp),
            k_trunc: self.k_trunc.or(lower.k_trunc),
            max_gate_elems: self.max_gate_elems.or(lower.max_gate_elems),
            variant: self.variant.or(lower.variant),
            rounding: self.rounding.or(lower.rounding),
            permute_relu_maxpool: self.permute_relu_maxpool.or(lower.permute_relu_maxpool),
            output_to: self.output_to.or(lower.output_to),
            train: self.train.or(lower.train),
            epochs: self.epochs.or(lower.epochs),
            train_images: self.train_images.or(lower.train_images),
            loss: self.loss.or(lower.loss),
            keep_final_relu: self.keep_final_relu.or(lower.keep_final_relu),
            lr: self.lr.or(lower.lr),
            lr_step: self.lr_step.or(lower.lr_step),
            lr_gamma: self.lr_gamma.or(lower.lr_gamma),
            momentum: self.momentum.or(lower.momentum),
            weight_decay: self.weight_decay.or(lower.weight_decay),
            optimizer: self.optimizer.or(lower.optimizer),
            beta1: self.beta1.or(lower.beta1),
            beta2: self.beta2.or(lower.beta2),
            eps: self.eps.or(lower.eps),
            reveal_to: self.reveal_to.or(lower.reveal_to),
        }
    }

    /// The training optimiser: SGD unless `optimizer = "adam"` (then
    /// `beta1`, `beta2`, `eps` or PyTorch's defaults 0.9, 0.999, 1e-8);
    /// Adam's settings without Adam are refused (they would be ignored).
    pub fn optimizer(&self) -> Result<Optimizer, JobError> {
        match self.optimizer {
            None | Some(OptimizerName::Sgd) => {
                let given: Vec<&str> = [
                    (self.beta1.is_some(), "beta1"),
                    (self.beta2.is_some(), "beta2"),
                    (self.eps.is_some(), "eps"),
                ]
                .into_iter()
                .filter_map(|(set, name)| set.then_some(name))
                .collect();
                if given.is_empty() {
                    Ok(Optimizer::Sgd)
                } else {
                    Err(JobError::Invalid(format!(
                        "{} only apply with optimizer adam",
                        given.join(", ")
                    )))
                }
            }
            Some(OptimizerName::Adam) => {
                let o = Optimizer::Adam {
                    beta1: self.beta1.unwrap_or(0.9),
                    beta2: self.beta2.unwrap_or(0.999),
                    eps: self.eps.unwrap_or(1e-8),
                };
                o.check().map_err(|e| JobError::Invalid(e.to_string()))?;
                Ok(o)
            }
        }
    }

    /// The model source: exactly one of `model`, `model-json`, `model-onnx`
    /// (`None` if none is given).
    pub fn model_source(&self) -> Result<Option<ModelSource>, JobError> {
        match (&self.model, &self.model_json, &self.model_onnx) {
            (None, None, None) => Ok(None),
            (Some(n), None, None) => Ok(Some(ModelSource::Zoo(n.clone()))),
            (None, Some(p), None) => Ok(Some(ModelSource::Json(p.clone()))),
            (None, None, Some(p)) => Ok(Some(ModelSource::Onnx(p.clone()))),
            _ => Err(JobError::Invalid(
                "give only one of model, model-json and model-onnx".into(),
            )),
        }
    }

    /// Whether this is a training job.
    pub fn is_train(&self) -> bool {
        self.train.unwrap_or(false)
    }

    /// The batches of an inference job: `batches`, 1 if not given; 0 is
    /// refused, and so is `batches` in a training job (its steps come from
    /// `epochs` and `train-images`).
    pub fn batches(&self) -> Result<usize, JobError> {
        match self.batches {
            Some(_) if self.is_train() => Err(JobError::Invalid(
                "batches is for inference jobs; a training job's steps come from epochs and \
                 train-images"
                    .into(),
            )),
            Some(0) => Err(JobError::Invalid("batches must be at least 1".into())),
            Some(n) => Ok(n),
            None => Ok(1),
        }
    }

    /// The fixed-point configuration: the settings given, defaults for the
    /// others (`Config::default()`; for a training job 20 fractional bits
    /// and rounding to nearest). The dealer and both parties build their
    /// configuration here, so their defaults cannot drift apart.
    pub fn config(&self) -> Result<Config, JobError> {
        let d = Config::default();
        let (frac_bits, rounding) = if self.is_train() {
            (20, Rounding::Nearest)
        } else {
            (d.frac_bits, d.rounding)
        };
        let max_gate_elems = self.max_gate_elems.unwrap_or(d.max_gate_elems);
        if max_gate_elems == 0 {
            return Err(JobError::Invalid(
                "max-gate-elems must be at least 1".into(),
            ));
        }
        Ok(Config {
            frac_bits: self.frac_bits.unwrap_or(frac_bits),
            k_cmp: self.k_cmp.unwrap_or(d.k_cmp),
            k_trunc: self.k_trunc.unwrap_or(d.k_trunc),
            max_gate_elems,
            rounding: self.rounding.unwrap_or(rounding),
            variant: self.variant.unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_key_and_resolves_relative_paths() {
        let text = r#"
            model-json = "m.json"
            batch = 4
            frac-bits = 12
            k-cmp = 24
            k-trunc = 48
            max-gate-elems = 1000
            variant = "small-key"
            rounding = "nearest"
            permute-relu-maxpool = true
            output-to = 1
        "#;
        let j = JobFile::parse(text, Path::new("/jobs/a.toml")).expect("valid");
        assert_eq!(
            j.model_source().expect("one source"),
            Some(ModelSource::Json(PathBuf::from("/jobs/m.json")))
        );
        let c = j.config().expect("config");
        assert_eq!(
            (c.frac_bits, c.k_cmp, c.k_trunc, c.max_gate_elems),
            (12, 24, 48, 1000)
        );
        assert_eq!(
            (c.variant, c.rounding),
            (Variant::SmallKey, Rounding::Nearest)
        );
        assert_eq!(j.permute_relu_maxpool, Some(true));
    }

    #[test]
    fn an_unknown_key_is_an_error_naming_it() {
        let e = JobFile::parse("model = \"network1\"\nk-cpm = 24\n", Path::new("j.toml"))
            .expect_err("unknown key");
        let msg = e.to_string();
        assert!(msg.contains("k-cpm"), "{msg}");
        assert!(msg.contains("j.toml"), "{msg}");
        // A value of the wrong type names the key too.
        let e = JobFile::parse("batch = \"four\"\n", Path::new("j.toml")).expect_err("type");
        assert!(e.to_string().contains("batch"), "{e}");
    }

    #[test]
    fn command_line_wins_and_defaults_follow_the_mode() {
        let file = JobFile::parse(
            "model = \"network1\"\nbatch = 8\nk-cmp = 24\n",
            Path::new("j.toml"),
        )
        .expect("valid");
        let cli = JobFile {
            batch: Some(2),
            model_json: Some("x.json".into()),
            ..JobFile::default()
        };
        let j = cli.or(file);
        assert_eq!(j.batch, Some(2));
        assert_eq!(j.k_cmp, Some(24));
        // The command line's model replaces the file's, not a conflict.
        assert_eq!(
            j.model_source().expect("one"),
            Some(ModelSource::Json("x.json".into()))
        );
        let train = JobFile {
            train: Some(true),
            ..JobFile::default()
        };
        let c = train.config().expect("config");
        assert_eq!((c.frac_bits, c.rounding), (20, Rounding::Nearest));
        assert_eq!(
            JobFile::default().config().expect("config"),
            Config::default()
        );
        let zero = JobFile {
            max_gate_elems: Some(0),
            ..JobFile::default()
        };
        assert!(zero.config().is_err());
        // Batches: 1 by default, never 0, and not for training.
        assert_eq!(JobFile::default().batches().expect("default"), 1);
        let three = JobFile::parse("batches = 3\n", Path::new("j.toml")).expect("valid");
        assert_eq!(three.batches().expect("three"), 3);
        let none = JobFile {
            batches: Some(0),
            ..JobFile::default()
        };
        assert!(
            none.batches()
                .expect_err("zero")
                .to_string()
                .contains("at least 1")
        );
        let train = JobFile {
            batches: Some(2),
            train: Some(true),
            ..JobFile::default()
        };
        assert!(
            train
                .batches()
                .expect_err("train")
                .to_string()
                .contains("inference")
        );
    }

    #[test]
    fn model_sources() {
        let both = JobFile {
            model: Some("network1".into()),
            model_json: Some("m.json".into()),
            ..JobFile::default()
        };
        assert!(both.model_source().is_err());
        let m = ModelSource::Zoo("network1".into()).load().expect("zoo");
        assert_eq!(m, zoo::network1());
        let e = ModelSource::Zoo("nope".into()).load().expect_err("unknown");
        assert!(e.to_string().contains("the zoo has"), "{e}");
        let e = ModelSource::Onnx("/nonexistent/m.onnx".into())
            .load()
            .expect_err("missing");
        assert!(e.to_string().contains("/nonexistent/m.onnx"), "{e}");
        let e = ModelSource::Json("/nonexistent/m.json".into())
            .load()
            .expect_err("missing");
        assert!(e.to_string().contains("/nonexistent/m.json"), "{e}");
    }

    /// Every key of [`KEYS`] parses (the list and the struct agree).
    #[test]
    fn keys_list_matches_the_struct() {
        for key in KEYS {
            let value = match *key {
                "model" | "reveal-to" => "\"x\"",
                "model-json" | "model-onnx" => "\"x.json\"",
                "variant" => "\"one-round\"",
                "rounding" => "\"floor\"",
                "loss" => "\"ce\"",
                "permute-relu-maxpool" | "train" | "keep-final-relu" => "true",
                "optimizer" => "\"adam\"",
                "lr" | "lr-gamma" | "momentum" | "weight-decay" | "beta1" | "beta2" | "eps" => {
                    "0.5"
                }
                _ => "1",
            };
            JobFile::parse(&format!("{key} = {value}\n"), Path::new("j.toml"))
                .unwrap_or_else(|e| panic!("{key}: {e}"));
        }
    }
}
