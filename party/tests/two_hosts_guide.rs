//! docs/two-hosts.md cannot fall behind the command lines: every
//! `ariann-dealer` and `ariann-party` command in its `sh` blocks is run with
//! `--help` appended (clap parses every option given before it, so an
//! option the binary does not take, or a bad value, fails), and its job
//! file example parses.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn guide() -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/two-hosts.md");
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The fenced blocks of `lang`, with `\` continuations joined and comments
/// dropped: one command per entry.
fn commands(text: &str, lang: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut inside = false;
    let mut cur = String::new();
    for line in text.lines() {
        let t = line.trim();
        if !inside {
            inside = t == format!("```{lang}");
            continue;
        }
        if t == "```" {
            inside = false;
            continue;
        }
        if t.starts_with('#') || t.is_empty() {
            continue;
        }
        match t.strip_suffix('\\') {
            Some(part) => {
                cur.push_str(part);
                cur.push(' ');
            }
            None => {
                cur.push_str(t);
                out.push(std::mem::take(&mut cur));
            }
        }
    }
    out
}

fn run_help(cmd: &str, extra: &[&str]) -> Output {
    let mut words = cmd.split_whitespace();
    let bin = match words.next() {
        Some("ariann-party") => common::party_bin(),
        Some("ariann-dealer") => common::dealer_bin(),
        other => panic!("not a command of the binaries: {other:?}"),
    };
    Command::new(bin)
        .args(words)
        .args(extra)
        .arg("--help")
        .output()
        .expect("run")
}

#[test]
fn every_command_of_the_guide_parses() {
    let text = guide();
    let cmds: Vec<String> = commands(&text, "sh")
        .into_iter()
        .filter(|c| c.starts_with("ariann-"))
        .collect();
    // identity, serve, two parties streamed, keys, two parties with files.
    assert!(cmds.len() >= 7, "{cmds:#?}");
    for c in &cmds {
        let o = run_help(c, &[]);
        assert!(
            o.status.success(),
            "{c}\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    // The check can fail: an option the binaries do not take.
    for c in &cmds[..2] {
        assert!(!run_help(c, &["--no-such-option"]).status.success(), "{c}");
    }
    // Commands in the prose: `ariann-dealer verify ...`, `plan --job ...`.
    for c in [
        "ariann-dealer verify --dealer-pubkey id/dealer.pub keys/party1.keys",
        "ariann-dealer plan --job job.toml",
    ] {
        assert!(text.contains(c), "{c}");
        assert!(run_help(c, &[]).status.success(), "{c}");
    }
}

#[test]
fn the_guide_job_file_parses() {
    let text = guide();
    let mut n = 0;
    let mut inside = false;
    let mut block = String::new();
    for line in text.lines() {
        match (inside, line.trim()) {
            (false, "```toml") => inside = true,
            (true, "```") => {
                let j = ariann_job::JobFile::parse(&block, Path::new("docs/job.toml"))
                    .expect("the example parses");
                j.config().expect("valid settings");
                assert!(j.model_json.is_some() && j.batch.is_some() && j.output_to.is_some());
                block.clear();
                inside = false;
                n += 1;
            }
            (true, _) => {
                block.push_str(line);
                block.push('\n');
            }
            _ => {}
        }
    }
    assert_eq!(n, 1);
}
