//! The user guide's reference pages cannot fall behind the code: the job
//! file page documents every key and its example parses; every JSON
//! example of the model formats page is a valid description, and together
//! they use every layer kind.

use ariann_job::{JobFile, KEYS};
use ariann_nn::{Layer, Model};
use std::path::{Path, PathBuf};

fn doc(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The fenced blocks of `lang` in `text`.
fn blocks(text: &str, lang: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    for line in text.lines() {
        match &mut cur {
            None if line.trim() == format!("```{lang}") => cur = Some(String::new()),
            Some(b) if line.trim() == "```" => {
                out.push(std::mem::take(b));
                cur = None;
            }
            Some(b) => {
                b.push_str(line);
                b.push('\n');
            }
            None => {}
        }
    }
    out
}

#[test]
fn job_file_page_lists_every_key_and_its_example_parses() {
    let text = doc("job-file.md");
    for key in KEYS {
        assert!(
            text.contains(&format!("| `{key}` |")),
            "docs/job-file.md has no table row for `{key}`"
        );
    }
    let rows = text.lines().filter(|l| l.starts_with("| `")).count();
    assert_eq!(
        rows,
        KEYS.len(),
        "a documented key the binaries do not take"
    );
    let examples = blocks(&text, "toml");
    assert!(!examples.is_empty());
    for e in examples {
        let j = JobFile::parse(&e, Path::new("docs/job.toml")).expect("the example parses");
        j.config().expect("valid settings");
    }
}

/// The layer kind, exhaustively: a new kind does not compile here until
/// it is added to the list below (and so to the page).
fn kind(l: &Layer) -> &'static str {
    match l {
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

const KINDS: &[&str] = &[
    "Linear",
    "Conv2d",
    "Relu",
    "MaxPool2d",
    "AvgPool2d",
    "AdaptiveAvgPool2d",
    "Flatten",
    "BatchNorm2d",
    "Residual",
    "SubsamplePad",
];

fn collect(layers: &[Layer], seen: &mut Vec<&'static str>) {
    for l in layers {
        seen.push(kind(l));
        if let Layer::Residual(r) = l {
            collect(&r.body, seen);
            collect(&r.shortcut, seen);
        }
    }
}

#[test]
fn model_formats_examples_are_valid_and_cover_every_layer() {
    let text = doc("model-formats.md");
    let mut seen = Vec::new();
    for e in blocks(&text, "json") {
        let m = Model::from_json(&e).unwrap_or_else(|err| panic!("{err}\n{e}"));
        assert_eq!(Model::from_json(&m.to_json()).expect("round trip"), m);
        collect(&m.layers, &mut seen);
    }
    for k in KINDS {
        assert!(seen.contains(k), "docs/model-formats.md has no {k} example");
        assert!(
            text.contains(&format!("### {k}"))
                || text.contains(&format!(" {k}\n"))
                || text.contains(&format!("and {k}")),
            "docs/model-formats.md has no section for {k}"
        );
    }
}
