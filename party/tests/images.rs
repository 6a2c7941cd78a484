//! Images as inputs: PNG and JPEG files generated here become NCHW float32
//! inputs (scaled, normalised per channel, grayscale/RGB by the model's
//! channels); a size mismatch is refused with both sizes; `ariann-party
//! input` writes a file that `--input` reads back.

mod common;

use ariann_party::images::{ImageError, ImageOptions, read_images, write_inputs};
use ariann_party::inputs::read_inputs;
use std::path::{Path, PathBuf};
use std::process::Command;

const W: usize = 4;
const H: usize = 3;

/// The test pattern: sample `ch` of pixel (y, x), distinct everywhere.
fn px(y: usize, x: usize, ch: usize) -> u8 {
    (10 + 60 * ch + 13 * y + 3 * x) as u8
}

fn write_png(path: &Path, color: png::ColorType, depth: png::BitDepth, data: &[u8]) {
    let f = std::fs::File::create(path).expect("create");
    let mut e = png::Encoder::new(std::io::BufWriter::new(f), W as u32, H as u32);
    e.set_color(color);
    e.set_depth(depth);
    let mut w = e.write_header().expect("header");
    w.write_image_data(data).expect("data");
}

fn rgb_png(path: &Path, alpha: bool) {
    let mut d = Vec::new();
    for y in 0..H {
        for x in 0..W {
            d.extend((0..3).map(|c| px(y, x, c)));
            if alpha {
                d.push(128);
            }
        }
    }
    let color = if alpha {
        png::ColorType::Rgba
    } else {
        png::ColorType::Rgb
    };
    write_png(path, color, png::BitDepth::Eight, &d);
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

#[test]
fn png_pixels_become_nchw_values_scaled_and_normalised() {
    let dir = tmp();
    let (a, b) = (dir.path().join("a.png"), dir.path().join("b.png"));
    rgb_png(&a, false);
    rgb_png(&b, true); // alpha is dropped
    let (mean, std) = (vec![0.5f32, 0.25, 0.0], vec![0.5f32, 2.0, 1.0]);
    let opts = ImageOptions {
        scale: true,
        mean: mean.clone(),
        std: std.clone(),
    };
    let got = read_images(&[a.clone(), b], &[3, H, W], &opts).expect("images");
    assert_eq!(got.images, 2);
    let mut want = Vec::new();
    for _ in 0..2 {
        for c in 0..3 {
            for y in 0..H {
                for x in 0..W {
                    want.push((f32::from(px(y, x, c)) / 255.0 - mean[c]) / std[c]);
                }
            }
        }
    }
    assert_eq!(got.data, want);
    // Unscaled, not normalised: the raw samples.
    let raw = read_images(
        &[a],
        &[3, H, W],
        &ImageOptions {
            scale: false,
            ..ImageOptions::default()
        },
    )
    .expect("raw");
    assert_eq!(raw.data[W + 1], f32::from(px(1, 1, 0)));
    assert_eq!(raw.data[H * W], f32::from(px(0, 0, 1)));
}

#[test]
fn channels_follow_the_model() {
    let dir = tmp();
    let rgb = dir.path().join("rgb.png");
    rgb_png(&rgb, false);
    // An RGB image for a one-channel model: ITU-R 601 luma.
    let g = read_images(
        std::slice::from_ref(&rgb),
        &[1, H, W],
        &ImageOptions::default(),
    )
    .expect("luma");
    for y in 0..H {
        for x in 0..W {
            let l = 0.299 * f64::from(px(y, x, 0))
                + 0.587 * f64::from(px(y, x, 1))
                + 0.114 * f64::from(px(y, x, 2));
            assert!((f64::from(g.data[y * W + x]) - l / 255.0).abs() < 1e-6);
        }
    }
    // A 16-bit grayscale image for a three-channel model: repeated, scaled
    // by 65535.
    let gray = dir.path().join("gray16.png");
    let d: Vec<u8> = (0..H * W)
        .flat_map(|i| (1000u16 * i as u16 + 7).to_be_bytes())
        .collect();
    write_png(&gray, png::ColorType::Grayscale, png::BitDepth::Sixteen, &d);
    let v = read_images(&[gray], &[3, H, W], &ImageOptions::default()).expect("gray");
    for c in 0..3 {
        for i in 0..H * W {
            let want = f32::from(1000u16 * i as u16 + 7) / 65535.0;
            assert_eq!(v.data[c * H * W + i], want);
        }
    }
    // Other channel counts, and mean/std that do not fit, are refused.
    for (input, opts) in [
        (vec![2, H, W], ImageOptions::default()),
        (vec![H * W], ImageOptions::default()),
        (
            vec![3, H, W],
            ImageOptions {
                mean: vec![0.1, 0.2],
                std: vec![1.0, 1.0],
                ..ImageOptions::default()
            },
        ),
        (
            vec![3, H, W],
            ImageOptions {
                mean: vec![0.1],
                ..ImageOptions::default()
            },
        ),
        (
            vec![3, H, W],
            ImageOptions {
                mean: vec![0.1],
                std: vec![0.0],
                ..ImageOptions::default()
            },
        ),
    ] {
        let r = read_images(std::slice::from_ref(&rgb), &input, &opts);
        assert!(matches!(r, Err(ImageError::Options(_))), "{input:?}: {r:?}");
    }
}

#[test]
fn jpeg_images_are_decoded() {
    let dir = tmp();
    // Uniform colours: JPEG's loss on them is at most a step or two.
    let (rgb, gray) = (dir.path().join("c.jpg"), dir.path().join("g.jpeg"));
    let (r, g, b) = (200u8, 100u8, 30u8);
    let data: Vec<u8> = (0..H * W).flat_map(|_| [r, g, b]).collect();
    jpeg_encoder::Encoder::new_file(&rgb, 100)
        .expect("file")
        .encode(&data, W as u16, H as u16, jpeg_encoder::ColorType::Rgb)
        .expect("encode");
    jpeg_encoder::Encoder::new_file(&gray, 100)
        .expect("file")
        .encode(
            &[77u8; H * W],
            W as u16,
            H as u16,
            jpeg_encoder::ColorType::Luma,
        )
        .expect("encode");
    let v = read_images(&[rgb, gray], &[3, H, W], &ImageOptions::default()).expect("jpeg");
    let plane = H * W;
    for (k, want) in [r, g, b, 77, 77, 77].iter().enumerate() {
        for p in 0..plane {
            let got = v.data[k * plane + p];
            assert!(
                (got - f32::from(*want) / 255.0).abs() <= 2.0 / 255.0,
                "plane {k}: {got} for {want}"
            );
        }
    }
}

#[test]
fn a_size_mismatch_or_another_format_is_refused_with_a_clear_message() {
    let dir = tmp();
    let a = dir.path().join("a.png");
    rgb_png(&a, false);
    let e = read_images(
        std::slice::from_ref(&a),
        &[3, 28, 28],
        &ImageOptions::default(),
    )
    .expect_err("4x3 is not 28x28");
    assert!(matches!(
        e,
        ImageError::Size {
            width: 4,
            height: 3,
            ..
        }
    ));
    let m = e.to_string();
    assert!(m.contains("4x3") && m.contains("28x28"), "{m}");
    let t = dir.path().join("t.png");
    std::fs::write(&t, "not an image").expect("write");
    assert!(matches!(
        read_images(&[t], &[3, H, W], &ImageOptions::default()),
        Err(ImageError::Decode { .. })
    ));
    let mut cut = std::fs::read(&a).expect("read");
    cut.truncate(cut.len() / 2);
    let c = dir.path().join("cut.png");
    std::fs::write(&c, cut).expect("write");
    assert!(matches!(
        read_images(&[c], &[3, H, W], &ImageOptions::default()),
        Err(ImageError::Decode { .. })
    ));
}

#[test]
fn written_files_read_back_as_inputs() {
    let dir = tmp();
    let a = dir.path().join("a.png");
    rgb_png(&a, false);
    let got = read_images(&[a.clone(), a], &[3, H, W], &ImageOptions::default()).expect("images");
    for name in ["x.safetensors", "x.npy"] {
        let p = dir.path().join(name);
        write_inputs(&p, &got, &[3, H, W]).expect("write");
        assert_eq!(read_inputs(&p, &[3, H, W]).expect(name), got, "{name}");
    }
}

/// The command a user runs: `ariann-party input --model-json ... --image ... --out ...`.
#[test]
fn the_input_command_writes_what_input_reads() {
    let dir = tmp();
    let img = |n: &str| -> PathBuf {
        let p = dir.path().join(n);
        rgb_png(&p, false);
        p
    };
    let (a, b) = (img("a.png"), img("b.png"));
    let model = dir.path().join("m.json");
    std::fs::write(
        &model,
        format!(
            r#"{{"name": "tiny", "input": [3, {H}, {W}], "layers": [
            {{"type": "Flatten"}},
            {{"type": "Linear", "name": "fc", "inp": {}, "out": 2}}]}}"#,
            3 * H * W
        ),
    )
    .expect("model");
    let out = dir.path().join("input.safetensors");
    let st = Command::new(common::party_bin())
        .arg("input")
        .arg("--model-json")
        .arg(&model)
        .arg("--image")
        .arg(&a)
        .arg("--image")
        .arg(&b)
        .args(["--mean", "0.5", "--std", "0.25", "--out"])
        .arg(&out)
        .output()
        .expect("run");
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let want = read_images(
        &[a.clone(), b],
        &[3, H, W],
        &ImageOptions {
            scale: true,
            mean: vec![0.5],
            std: vec![0.25],
        },
    )
    .expect("images");
    assert_eq!(read_inputs(&out, &[3, H, W]).expect("reads"), want);
    // A model of another size: refused, naming both sizes.
    std::fs::write(
        &model,
        r#"{"name": "mnist", "input": [1, 28, 28], "layers": [{"type": "Flatten"}]}"#,
    )
    .expect("model");
    let st = Command::new(common::party_bin())
        .args(["input", "--model-json"])
        .arg(&model)
        .arg("--image")
        .arg(&a)
        .arg("--out")
        .arg(dir.path().join("no.safetensors"))
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&st.stderr);
    assert!(!st.status.success());
    assert!(err.contains("4x3") && err.contains("28x28"), "{err}");
    assert!(!dir.path().join("no.safetensors").exists());
}
