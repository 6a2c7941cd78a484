//! docs/getting-started.md is run, not only parsed: every `sh` block of the
//! page is executed in order in a fresh directory (the first block, which
//! builds the binaries and sets `PATH`, is what this test's environment
//! already is), with the page's job file, except for the batch (2 instead
//! of 8, so the ResNet-20 walk-through stays small in CI). The user's own
//! files are generated: random ResNet-20 weights (`weights.safetensors`),
//! two images (`cat.png`, `dog.jpg`) and `x.npy` made from them with the
//! page's own `ariann-party input`. At the end, the private run's
//! predictions (`out.json`) must equal the fixed-point predictions of
//! `ariann-party reference --json` on the same weights and inputs.

mod common;

use ariann_nn::{Model, Weights};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The fenced blocks of the page, in order, as (language, text) with `\`
/// continuations kept (the shell joins them).
fn blocks(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut cur: Option<(String, String)> = None;
    for line in text.lines() {
        let t = line.trim_end();
        match &mut cur {
            None => {
                if let Some(lang) = t.strip_prefix("```") {
                    cur = Some((lang.trim().to_string(), String::new()));
                }
            }
            Some((_, body)) => {
                if t == "```" {
                    out.extend(cur.take());
                } else {
                    body.push_str(t);
                    body.push('\n');
                }
            }
        }
    }
    out
}

fn bin_dir() -> PathBuf {
    common::party_bin()
        .parent()
        .expect("the binaries' directory")
        .to_path_buf()
}

fn sh(dir: &Path, script: &str) -> (bool, String) {
    let path = format!(
        "{}:{}",
        bin_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("timeout")
        .args(["600", "sh", "-e", "-c", script])
        .current_dir(dir)
        .env("PATH", path)
        .env("XDG_STATE_HOME", dir.join("xdg-state"))
        .output()
        .expect("run sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The user's own files: weights for the page's model, two images and
/// `x.npy` from them (with the page's `ariann-party input`).
fn user_files(dir: &Path) {
    let json = std::fs::read_to_string(dir.join("model.json")).expect("model.json");
    let model = Model::from_json(&json).expect("model");
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let w = Weights::random(&model, &mut rng);
    std::fs::write(
        dir.join("weights.safetensors"),
        w.to_safetensors().expect("weights"),
    )
    .expect("write weights");
    let (c, h, wd) = (model.input[0], model.input[1], model.input[2]);
    assert_eq!(c, 3, "the page's model takes RGB images");
    let pixels: Vec<u8> = (0..h * wd * 3).map(|_| rng.random()).collect();
    let f = std::fs::File::create(dir.join("cat.png")).expect("create");
    let mut e = png::Encoder::new(std::io::BufWriter::new(f), wd as u32, h as u32);
    e.set_color(png::ColorType::Rgb);
    e.set_depth(png::BitDepth::Eight);
    e.write_header()
        .expect("header")
        .write_image_data(&pixels)
        .expect("png");
    let pixels: Vec<u8> = (0..h * wd * 3).map(|_| rng.random()).collect();
    jpeg_encoder::Encoder::new_file(dir.join("dog.jpg"), 95)
        .expect("file")
        .encode(&pixels, wd as u16, h as u16, jpeg_encoder::ColorType::Rgb)
        .expect("jpeg");
    let (ok, log) = sh(
        dir,
        "ariann-party input --job job.toml --image cat.png --image dog.jpg --out x.npy",
    );
    assert!(ok, "x.npy from the images:\n{log}");
}

#[test]
fn every_command_of_the_getting_started_page_runs() {
    let page = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/getting-started.md"),
    )
    .expect("docs/getting-started.md");
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();
    let mut ran = 0;
    let mut prepared = false;
    for (lang, body) in blocks(&page) {
        match lang.as_str() {
            "toml" if body.starts_with("# job.toml") => {
                assert!(body.contains("batch = 8"), "{body}");
                std::fs::write(dir.join("job.toml"), body.replace("batch = 8", "batch = 2"))
                    .expect("job.toml");
            }
            "sh" if body.starts_with("cargo build") => {
                // What this test's environment is (PATH, built binaries).
                assert!(body.contains("export PATH=$PWD/target/release:$PATH"));
            }
            "sh" => {
                if !prepared && body.contains("weights.safetensors") {
                    user_files(dir);
                    prepared = true;
                }
                let (ok, log) = sh(dir, &body);
                assert!(ok, "the page's commands failed:\n{body}\n{log}");
                ran += 1;
            }
            _ => {}
        }
    }
    assert!(prepared && ran >= 5, "{ran} blocks ran");
    // The private run against the reference run of the same files.
    let out: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.join("out.json")).expect("the data owner wrote out.json"),
    )
    .expect("out.json");
    let r = Command::new(common::party_bin())
        .args([
            "reference",
            "--job",
            "job.toml",
            "--weights",
            "weights.safetensors",
        ])
        .args(["--input", "x.npy", "--json"])
        .current_dir(dir)
        .output()
        .expect("run the reference");
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let reference: serde_json::Value =
        serde_json::from_slice(&r.stdout).expect("the reference's JSON");
    let private = out["predictions"].as_array().expect("out.json predictions");
    assert_eq!(private.len(), 2, "one prediction per image: {out}");
    assert_eq!(
        Some(private),
        reference["predictions_fixed"].as_array(),
        "private predictions != fixed-point reference"
    );
    assert!(dir.join("x.safetensors").exists(), "the images block ran");
}
