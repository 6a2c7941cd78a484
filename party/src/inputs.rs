//! The data owner's input files: `.npy` or safetensors, NCHW.
//!
//! An input file holds `N` inputs of the model's input shape, as float32
//! (or float64, converted), in **NCHW** order (batch, channels, height,
//! width; PyTorch's layout: what `torch.save`d tensors and `x.numpy()`
//! give), already normalised as the model expects (e.g. `(x / 255 - mean) /
//! std` per channel). Accepted shapes for a model input `[C, H, W]`:
//! `[N, C, H, W]`, `[N, C*H*W]`, or `[C, H, W]` alone (one input).
//!
//! - **`.npy`** (NumPy's format, file name ending in `.npy`): a C-ordered
//!   array of dtype `<f4` or `<f8`: `np.save("x.npy", x.astype(np.float32))`.
//! - **safetensors** (any other name): a tensor named `input`, F32:
//!   `safetensors.torch.save_file({"input": x}, "x.safetensors")`.
//!
//! A batch that the inputs do not fill is padded with zero inputs
//! ([`Inputs::padded`]); the party drops the padding's rows from the output
//! it writes.

use ariann_nn::Weights;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Errors of reading an input file.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum InputError {
    /// The file could not be read.
    #[error("cannot read {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why (in the message, so not also chained as `source()`).
        error: std::io::Error,
    },
    /// The file is not a valid `.npy` or safetensors input file.
    #[error("{path}: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The array's shape does not hold inputs of the model's shape.
    #[error(
        "{path} holds an array of shape {got:?}; the model takes inputs of shape {input:?}: \
         give [N, {dims}], [N, {len}] or one input of shape {input:?} (NCHW)"
    )]
    Shape {
        /// The file.
        path: PathBuf,
        /// The array's shape.
        got: Vec<usize>,
        /// The model's input shape (without batch).
        input: Vec<usize>,
        /// `input` joined for the message.
        dims: String,
        /// Values per input.
        len: usize,
    },
    /// More inputs than the batch takes.
    #[error("the input file holds {images} inputs, more than the batch of {batch}")]
    TooMany {
        /// Inputs in the file.
        images: usize,
        /// The job's batch.
        batch: usize,
    },
}

/// Inputs read from a file: `images` inputs, row-major, NCHW.
#[derive(Debug, Clone, PartialEq)]
pub struct Inputs {
    /// Number of inputs.
    pub images: usize,
    /// `images * input length` values.
    pub data: Vec<f32>,
}

impl Inputs {
    /// The values of a batch of `batch` inputs: these, then zero inputs.
    pub fn padded(&self, batch: usize) -> Result<Vec<f32>, InputError> {
        if self.images > batch {
            return Err(InputError::TooMany {
                images: self.images,
                batch,
            });
        }
        let per = self.data.len().checked_div(self.images).unwrap_or(0);
        let mut v = self.data.clone();
        v.resize(per * batch, 0.0);
        Ok(v)
    }
}

/// Reads the inputs in `path` (`.npy` by its extension, safetensors
/// otherwise) for a model whose input shape is `input`.
pub fn read_inputs(path: &Path, input: &[usize]) -> Result<Inputs, InputError> {
    let bytes = std::fs::read(path).map_err(|error| InputError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    let format = |message: String| InputError::Format {
        path: path.to_path_buf(),
        message,
    };
    let is_npy = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"));
    let (shape, data) = if is_npy {
        read_npy(&bytes).map_err(format)?
    } else {
        let t = Weights::from_safetensors(&bytes).map_err(|e| {
            format(format!(
                "not a safetensors file ({e}); .npy files must end in .npy"
            ))
        })?;
        let (shape, x) = t
            .get("input")
            .ok_or_else(|| format("has no tensor named `input`".into()))?;
        (shape.to_vec(), x.to_vec())
    };
    let len: usize = input.iter().product();
    let images = match shape.split_first() {
        _ if shape == input => Some(1),
        Some((&n, rest)) if rest == input || rest == [len] => Some(n),
        _ => None,
    };
    let Some(images) = images.filter(|n| n.checked_mul(len) == Some(data.len())) else {
        return Err(InputError::Shape {
            path: path.to_path_buf(),
            got: shape,
            input: input.to_vec(),
            dims: input
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            len,
        });
    };
    Ok(Inputs { images, data })
}

/// A `.npy` array as `(shape, values)`: C order, float32 or float64.
fn read_npy(bytes: &[u8]) -> Result<(Vec<usize>, Vec<f32>), String> {
    let npy = npyz::NpyFile::new(bytes).map_err(|e| format!("not a .npy file: {e}"))?;
    if npy.order() != npyz::Order::C {
        return Err("is in Fortran order; save a C-ordered array (np.ascontiguousarray)".into());
    }
    let shape = npy
        .shape()
        .iter()
        .map(|d| usize::try_from(*d).map_err(|_| format!("dimension {d} is too large")))
        .collect::<Result<Vec<_>, _>>()?;
    let dtype = npy.dtype().descr();
    let values = match npy.try_data::<f32>() {
        Ok(r) => r.collect::<Result<Vec<f32>, _>>(),
        Err(npy) => match npy.try_data::<f64>() {
            // f64 inputs are narrowed as the model's inputs are f32.
            Ok(r) => r.map(|v| v.map(|x| x as f32)).collect(),
            Err(_) => {
                return Err(format!(
                    "has dtype {dtype}; inputs must be float32 (<f4) or float64 (<f8)"
                ));
            }
        },
    }
    .map_err(|e| format!("cannot read the array: {e}"))?;
    Ok((shape, values))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `.npy` file written by hand (format 1.0), independent of `npyz`.
    fn npy(descr: &str, shape: &[usize], body: &[u8], fortran: bool) -> Vec<u8> {
        let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
        let shape = if dims.len() == 1 {
            format!("({},)", dims[0])
        } else {
            format!("({})", dims.join(", "))
        };
        let mut header = format!(
            "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}",
            if fortran { "True" } else { "False" }
        );
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&u16::try_from(header.len()).expect("short").to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(body);
        out
    }

    fn f32s(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn npy_and_safetensors_give_the_same_inputs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let x: Vec<f32> = (0..2 * 12).map(|i| i as f32 * 0.25 - 1.0).collect();
        let p = dir.path().join("x.npy");
        std::fs::write(&p, npy("<f4", &[2, 3, 2, 2], &f32s(&x), false)).expect("write");
        let a = read_inputs(&p, &[3, 2, 2]).expect("npy");
        assert_eq!(
            a,
            Inputs {
                images: 2,
                data: x.clone()
            }
        );
        // float64 and a flattened [N, len] array read the same.
        let f64s: Vec<u8> = x.iter().flat_map(|v| f64::from(*v).to_le_bytes()).collect();
        std::fs::write(&p, npy("<f8", &[2, 12], &f64s, false)).expect("write");
        assert_eq!(read_inputs(&p, &[3, 2, 2]).expect("f64"), a);
        let mut st = Weights::new();
        st.insert("input", vec![2, 3, 2, 2], x.clone())
            .expect("insert");
        let q = dir.path().join("x.safetensors");
        std::fs::write(&q, st.to_safetensors().expect("encode")).expect("write");
        assert_eq!(read_inputs(&q, &[3, 2, 2]).expect("safetensors"), a);
        // One input without the batch dimension.
        std::fs::write(&p, npy("<f4", &[3, 2, 2], &f32s(&x[..12]), false)).expect("write");
        assert_eq!(read_inputs(&p, &[3, 2, 2]).expect("one").images, 1);
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("x.npy");
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (
                npy("<f4", &[2, 5], &f32s(&[0.0; 10]), false),
                "shape [2, 5]",
            ),
            (npy("<i4", &[1, 12], &[0; 48], false), "dtype"),
            (npy("<f4", &[1, 12], &f32s(&[0.0; 12]), true), "Fortran"),
            (
                npy("<f4", &[2, 12], &f32s(&[0.0; 12]), false),
                "cannot read",
            ),
            (b"not numpy".to_vec(), "not a .npy file"),
        ];
        for (bytes, want) in cases {
            std::fs::write(&p, bytes).expect("write");
            let e = read_inputs(&p, &[3, 2, 2]).expect_err(want).to_string();
            assert!(e.contains(want), "{e:?} lacks {want:?}");
        }
        let e = read_inputs(&dir.path().join("none.npy"), &[1]).expect_err("missing");
        assert!(matches!(e, InputError::Read { .. }));
    }

    #[test]
    fn a_short_batch_is_padded_with_zero_inputs() {
        let x = Inputs {
            images: 2,
            data: vec![1.0, 2.0, 3.0, 4.0],
        };
        assert_eq!(
            x.padded(3).expect("fits"),
            vec![1.0, 2.0, 3.0, 4.0, 0.0, 0.0]
        );
        assert_eq!(x.padded(2).expect("full"), x.data);
        assert!(matches!(x.padded(1), Err(InputError::TooMany { .. })));
    }
}
