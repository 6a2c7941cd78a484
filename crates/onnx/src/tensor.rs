//! Constant tensors (initializers, `Constant` nodes, attribute tensors),
//! decoded with every size checked against the bytes present.

use crate::OnnxError;
use crate::proto::TensorProto;

/// ONNX `TensorProto.DataType` values read here.
const FLOAT: i32 = 1;
const INT32: i32 = 6;
const INT64: i32 = 7;
const BOOL: i32 = 9;
const DOUBLE: i32 = 11;

/// A decoded constant: float data as `f32`, integer and boolean data as `i64`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Const {
    /// Dimensions (an empty list for a scalar).
    pub(crate) dims: Vec<usize>,
    /// Values, row-major.
    pub(crate) data: Data,
}

/// The values of a [`Const`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Data {
    /// Float (from FLOAT or DOUBLE).
    F32(Vec<f32>),
    /// Integer or boolean (from INT64, INT32 or BOOL).
    I64(Vec<i64>),
}

fn err(name: &str, reason: impl Into<String>) -> OnnxError {
    OnnxError::Tensor {
        name: name.to_string(),
        reason: reason.into(),
    }
}

impl Const {
    /// Decodes `t` (named `name` in messages).
    pub(crate) fn decode(name: &str, t: &TensorProto) -> Result<Const, OnnxError> {
        if t.data_location == Some(1) {
            return Err(err(
                name,
                "stored in an external data file; export with the weights inside the .onnx file \
                 (torch.onnx.export(..., external_data=False))",
            ));
        }
        let dims = t
            .dims
            .iter()
            .map(|d| usize::try_from(*d).map_err(|_| err(name, format!("negative dimension {d}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let n = dims
            .iter()
            .try_fold(1usize, |a, d| a.checked_mul(*d))
            .ok_or_else(|| err(name, format!("dimensions {dims:?} overflow")))?;
        let dtype = t.data_type.unwrap_or(0);
        let raw = t.raw_data.as_deref();
        let data = match dtype {
            FLOAT => Data::F32(match raw {
                Some(r) => fixed_width::<4, _>(name, r, n, f32::from_le_bytes)?,
                None => counted(name, &t.float_data, n)?,
            }),
            DOUBLE => Data::F32(match raw {
                Some(r) => fixed_width::<8, _>(name, r, n, |b| f64::from_le_bytes(b) as f32)?,
                None => counted(name, &t.double_data, n)?
                    .into_iter()
                    .map(|v| v as f32)
                    .collect(),
            }),
            INT64 => Data::I64(match raw {
                Some(r) => fixed_width::<8, _>(name, r, n, i64::from_le_bytes)?,
                None => counted(name, &t.int64_data, n)?,
            }),
            INT32 => Data::I64(match raw {
                Some(r) => fixed_width::<4, _>(name, r, n, |b| i64::from(i32::from_le_bytes(b)))?,
                None => counted(name, &t.int32_data, n)?
                    .into_iter()
                    .map(i64::from)
                    .collect(),
            }),
            BOOL => Data::I64(match raw {
                Some(r) => fixed_width::<1, _>(name, r, n, |b| i64::from(b[0] != 0))?,
                None => counted(name, &t.int32_data, n)?
                    .into_iter()
                    .map(|v| i64::from(v != 0))
                    .collect(),
            }),
            other => {
                return Err(err(
                    name,
                    format!(
                        "data type {other} is not supported (float32, float64, int32, int64, bool)"
                    ),
                ));
            }
        };
        Ok(Const { dims, data })
    }

    /// Number of values.
    pub(crate) fn len(&self) -> usize {
        match &self.data {
            Data::F32(v) => v.len(),
            Data::I64(v) => v.len(),
        }
    }

    /// The float values, or an error naming `name`.
    pub(crate) fn floats(&self, name: &str) -> Result<&[f32], OnnxError> {
        match &self.data {
            Data::F32(v) => Ok(v),
            Data::I64(_) => Err(err(name, "integer tensor where a float tensor is needed")),
        }
    }

    /// The integer values, or an error naming `name`.
    pub(crate) fn ints(&self, name: &str) -> Result<&[i64], OnnxError> {
        match &self.data {
            Data::I64(v) => Ok(v),
            Data::F32(_) => Err(err(name, "float tensor where an integer tensor is needed")),
        }
    }
}

/// `n` values of `W` bytes each from `raw`, which must hold exactly that.
fn fixed_width<const W: usize, T>(
    name: &str,
    raw: &[u8],
    n: usize,
    conv: impl Fn([u8; W]) -> T,
) -> Result<Vec<T>, OnnxError> {
    let want = n
        .checked_mul(W)
        .ok_or_else(|| err(name, "size overflows"))?;
    if raw.len() != want {
        return Err(err(
            name,
            format!("{} bytes of data for {n} values of {W} bytes", raw.len()),
        ));
    }
    Ok(raw
        .chunks_exact(W)
        .map(|c| {
            let mut b = [0u8; W];
            b.copy_from_slice(c);
            conv(b)
        })
        .collect())
}

/// The typed field's values, which must be exactly `n`.
fn counted<T: Copy>(name: &str, v: &[T], n: usize) -> Result<Vec<T>, OnnxError> {
    if v.len() != n {
        return Err(err(
            name,
            format!("{} values for a shape of {n} values", v.len()),
        ));
    }
    Ok(v.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(dims: Vec<i64>, dtype: i32, raw: Vec<u8>) -> TensorProto {
        TensorProto {
            dims,
            data_type: Some(dtype),
            raw_data: Some(raw),
            ..Default::default()
        }
    }

    #[test]
    fn huge_dimensions_are_refused_before_allocating() {
        let t = tensor(vec![1 << 40, 1 << 40], FLOAT, vec![0; 16]);
        assert!(matches!(
            Const::decode("t", &t),
            Err(OnnxError::Tensor { .. })
        ));
        let t = tensor(vec![1 << 62, 3], FLOAT, vec![]);
        assert!(matches!(
            Const::decode("t", &t),
            Err(OnnxError::Tensor { .. })
        ));
        let t = tensor(vec![-1], FLOAT, vec![]);
        assert!(matches!(
            Const::decode("t", &t),
            Err(OnnxError::Tensor { .. })
        ));
    }

    #[test]
    fn data_must_match_the_shape() {
        let t = tensor(vec![2, 2], FLOAT, vec![0; 12]);
        assert!(Const::decode("t", &t).is_err());
        let ok = tensor(
            vec![2],
            FLOAT,
            [1.5f32, -2.0]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        );
        assert_eq!(
            Const::decode("t", &ok).expect("decodes").data,
            Data::F32(vec![1.5, -2.0])
        );
        let typed = TensorProto {
            dims: vec![3],
            data_type: Some(INT64),
            int64_data: vec![1, 2],
            ..Default::default()
        };
        assert!(Const::decode("t", &typed).is_err());
        let fp16 = tensor(vec![1], 10, vec![0; 2]);
        assert!(Const::decode("t", &fp16).is_err());
        let external = TensorProto {
            data_location: Some(1),
            ..tensor(vec![1], FLOAT, vec![0; 4])
        };
        assert!(Const::decode("t", &external).is_err());
    }
}
