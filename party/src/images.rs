//! Images as inputs: PNG and JPEG files turned into the input tensor a
//! model expects (`ariann-party input --image a.png --image b.jpg ...`).
//!
//! For a model input `[C, H, W]`, each image becomes `C x H x W` float32
//! values in **NCHW** order (channel planes, rows, columns), as
//! torchvision's `ToTensor` and `Normalize` give them:
//!
//! 1. the pixels are read at their bit depth (8 or 16 bits; palette and
//!    low-bit-depth PNGs are expanded to 8 bits, an alpha channel is
//!    dropped);
//! 2. channels follow the model: `C = 3` takes RGB (a grayscale image is
//!    repeated on the three channels); `C = 1` takes grayscale (an RGB
//!    image is converted with ITU-R 601 luma, `0.299 R + 0.587 G + 0.114 B`,
//!    the weights of PIL's `convert("L")` and torchvision's `Grayscale`,
//!    in float); other channel counts are refused;
//! 3. values are scaled to `[0, 1]` (divided by 255, or 65535 for 16-bit
//!    images) unless [`ImageOptions::scale`] is off (raw pixel values);
//! 4. then normalised per channel, `(x - mean[c]) / std[c]`, if a mean and
//!    a standard deviation are given (one value for every channel, or one
//!    per channel).
//!
//! An image whose height and width are not the model's is **refused**,
//! naming both sizes: resizing changes what the model sees (interpolation,
//! aspect ratio, cropping) and is the user's choice, made with the same
//! tool as in training (e.g. torchvision's `Resize` + `CenterCrop`).
//!
//! Decoders: the `png` and `jpeg-decoder` crates of the image-rs project
//! (pure Rust, the decoders behind the `image` crate's PNG and its former
//! JPEG support), rather than `image` itself: they are the only two formats
//! needed, and `image` (even with default features off) brings its own
//! buffer, colour-management and conversion layers that this module does not
//! use. The format is taken from the file's magic bytes, not its name.

use std::path::{Path, PathBuf};
use thiserror::Error;

/// Errors of turning images into inputs.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ImageError {
    /// The file could not be read.
    #[error("cannot read {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why (in the message, so not also chained as `source()`).
        error: std::io::Error,
    },
    /// Not a PNG or JPEG file, or a corrupt one.
    #[error("{path}: {message}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The image does not have the model's height and width.
    #[error(
        "{path} is {width}x{height} (width x height); the model takes {want_w}x{want_h} images: \
         resize or crop it first, as the model's training pipeline did (nothing is resized here)"
    )]
    Size {
        /// The file.
        path: PathBuf,
        /// Its width.
        width: usize,
        /// Its height.
        height: usize,
        /// The model's width.
        want_w: usize,
        /// The model's height.
        want_h: usize,
    },
    /// The model's input is not an image, or the options do not fit it.
    #[error("{0}")]
    Options(String),
}

/// How pixels become input values.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageOptions {
    /// Scale to `[0, 1]` (divide by the largest pixel value) before the
    /// normalisation; off: raw pixel values (0..=255 for 8-bit images).
    pub scale: bool,
    /// Per-channel mean subtracted (empty: none; one value: every channel).
    pub mean: Vec<f32>,
    /// Per-channel standard deviation divided by (empty: none; one value:
    /// every channel). Given together with `mean`.
    pub std: Vec<f32>,
}

impl Default for ImageOptions {
    /// Scaled to `[0, 1]`, not normalised.
    fn default() -> Self {
        ImageOptions {
            scale: true,
            mean: Vec::new(),
            std: Vec::new(),
        }
    }
}

/// A decoded image: `channels` interleaved samples per pixel (1 gray,
/// 3 RGB), at most `max` each.
#[derive(Debug, Clone, PartialEq)]
struct Pixels {
    width: usize,
    height: usize,
    channels: usize,
    max: f32,
    samples: Vec<u16>,
}

/// Reads `paths` (PNG or JPEG) as inputs of a model whose input shape is
/// `input` (`[C, H, W]`, `C` 1 or 3): `paths.len() * C * H * W` values,
/// NCHW, in the order given.
pub fn read_images(
    paths: &[PathBuf],
    input: &[usize],
    opts: &ImageOptions,
) -> Result<crate::inputs::Inputs, ImageError> {
    let &[c, h, w] = input else {
        return Err(ImageError::Options(format!(
            "the model takes inputs of shape {input:?}, not images ([C, H, W])"
        )));
    };
    if c != 1 && c != 3 {
        return Err(ImageError::Options(format!(
            "the model takes {c} input channels; images give 1 (grayscale) or 3 (RGB)"
        )));
    }
    let per_channel = |v: &[f32], what: &str| -> Result<Vec<f32>, ImageError> {
        match v.len() {
            0 => Ok(Vec::new()),
            1 => Ok(vec![v[0]; c]),
            n if n == c => Ok(v.to_vec()),
            n => Err(ImageError::Options(format!(
                "{n} {what} values for {c} channels; give one, or one per channel"
            ))),
        }
    };
    let mean = per_channel(&opts.mean, "mean")?;
    let std = per_channel(&opts.std, "std")?;
    if mean.is_empty() != std.is_empty() {
        return Err(ImageError::Options(
            "give the mean and the standard deviation together".into(),
        ));
    }
    if let Some(s) = std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
        return Err(ImageError::Options(format!(
            "standard deviation {s}: it must be positive"
        )));
    }
    if let Some(m) = mean.iter().find(|m| !m.is_finite()) {
        return Err(ImageError::Options(format!("mean {m}: it must be finite")));
    }
    let mut data = Vec::with_capacity(paths.len() * c * h * w);
    for path in paths {
        let bytes = std::fs::read(path).map_err(|error| ImageError::Read {
            path: path.clone(),
            error,
        })?;
        let px = decode(&bytes).map_err(|message| ImageError::Decode {
            path: path.clone(),
            message,
        })?;
        if (px.width, px.height) != (w, h) {
            return Err(ImageError::Size {
                path: path.clone(),
                width: px.width,
                height: px.height,
                want_w: w,
                want_h: h,
            });
        }
        let div = if opts.scale { px.max } else { 1.0 };
        let plane = w * h;
        let value = |p: usize, ch: usize| -> f32 {
            let s = &px.samples[p * px.channels..(p + 1) * px.channels];
            match (px.channels, c) {
                (1, _) => f32::from(s[0]),
                (_, 1) => {
                    (0.299 * f64::from(s[0]) + 0.587 * f64::from(s[1]) + 0.114 * f64::from(s[2]))
                        as f32
                }
                _ => f32::from(s[ch]),
            }
        };
        for ch in 0..c {
            for p in 0..plane {
                let mut v = value(p, ch) / div;
                if !mean.is_empty() {
                    v = (v - mean[ch]) / std[ch];
                }
                data.push(v);
            }
        }
    }
    Ok(crate::inputs::Inputs {
        images: paths.len(),
        data,
    })
}

/// Decodes a PNG or JPEG file (by its magic bytes).
fn decode(bytes: &[u8]) -> Result<Pixels, String> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        decode_png(bytes)
    } else if bytes.starts_with(&[0xff, 0xd8]) {
        decode_jpeg(bytes)
    } else {
        Err("not a PNG or JPEG file".into())
    }
}

fn decode_png(bytes: &[u8]) -> Result<Pixels, String> {
    let mut d = png::Decoder::new(std::io::Cursor::new(bytes));
    // Palette to RGB, 1/2/4-bit gray to 8 bits, tRNS to alpha; 16 bits kept.
    d.set_transformations(png::Transformations::EXPAND);
    let mut r = d.read_info().map_err(|e| format!("not a valid PNG: {e}"))?;
    let size = r
        .output_buffer_size()
        .ok_or_else(|| "PNG too large".to_string())?;
    let mut buf = vec![0u8; size];
    let info = r
        .next_frame(&mut buf)
        .map_err(|e| format!("not a valid PNG: {e}"))?;
    let (color, depth) = (info.color_type, info.bit_depth);
    let stored = match color {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => return Err("a palette PNG was not expanded".into()),
    };
    let (width, height) = (info.width as usize, info.height as usize);
    let buf = &buf[..info.buffer_size()];
    let (max, raw): (f32, Vec<u16>) = match depth {
        png::BitDepth::Eight => (255.0, buf.iter().map(|b| u16::from(*b)).collect()),
        png::BitDepth::Sixteen => (
            65535.0,
            buf.chunks_exact(2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]))
                .collect(),
        ),
        d => return Err(format!("PNG bit depth {d:?} after expansion")),
    };
    // Drop alpha: keep gray or RGB.
    let keep = if stored >= 3 { 3 } else { 1 };
    let samples = raw
        .chunks_exact(stored)
        .take(width * height)
        .flat_map(|p| p[..keep].to_vec())
        .collect::<Vec<_>>();
    if samples.len() != width * height * keep {
        return Err("PNG data shorter than its size".into());
    }
    Ok(Pixels {
        width,
        height,
        channels: keep,
        max,
        samples,
    })
}

fn decode_jpeg(bytes: &[u8]) -> Result<Pixels, String> {
    let mut d = jpeg_decoder::Decoder::new(std::io::Cursor::new(bytes));
    let data = d.decode().map_err(|e| format!("not a valid JPEG: {e}"))?;
    let info = d
        .info()
        .ok_or_else(|| "JPEG without a header".to_string())?;
    let (width, height) = (usize::from(info.width), usize::from(info.height));
    let (channels, max, samples): (usize, f32, Vec<u16>) = match info.pixel_format {
        jpeg_decoder::PixelFormat::L8 => (1, 255.0, data.iter().map(|b| u16::from(*b)).collect()),
        jpeg_decoder::PixelFormat::L16 => (
            1,
            65535.0,
            data.chunks_exact(2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]))
                .collect(),
        ),
        jpeg_decoder::PixelFormat::RGB24 => {
            (3, 255.0, data.iter().map(|b| u16::from(*b)).collect())
        }
        jpeg_decoder::PixelFormat::CMYK32 => {
            return Err("a CMYK JPEG; convert it to RGB first".into());
        }
    };
    if samples.len() != width * height * channels {
        return Err("JPEG data shorter than its size".into());
    }
    Ok(Pixels {
        width,
        height,
        channels,
        max,
        samples,
    })
}

/// Writes `inputs` of shape `[N] + input` to `path`: `.npy` by its
/// extension, else safetensors with one tensor `input` (what
/// [`crate::inputs::read_inputs`] reads).
pub fn write_inputs(
    path: &Path,
    inputs: &crate::inputs::Inputs,
    input: &[usize],
) -> Result<(), crate::inputs::InputError> {
    let mut shape = vec![inputs.images];
    shape.extend_from_slice(input);
    let io = |error| crate::inputs::InputError::Read {
        path: path.to_path_buf(),
        error,
    };
    let bytes = if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"))
    {
        npy_bytes(&shape, &inputs.data)
    } else {
        let mut w = ariann_nn::Weights::new();
        w.insert("input", shape, inputs.data.clone())
            .and_then(|()| w.to_safetensors())
            .map_err(|e| crate::inputs::InputError::Format {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?
    };
    std::fs::write(path, bytes).map_err(io)
}

/// A version-1.0 `.npy` file of little-endian float32, C order.
fn npy_bytes(shape: &[usize], data: &[f32]) -> Vec<u8> {
    let dims = shape
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let comma = if shape.len() == 1 { "," } else { "" };
    let mut header =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({dims}{comma}), }}");
    // Magic (6) + version (2) + length (2) + header + newline: a multiple of 64.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + 4 * data.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}
