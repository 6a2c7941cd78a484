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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A command of the guide as `sh` runs it in `dir` (the binaries on `PATH`,
/// this test's state directory).
fn sh(dir: &Path, cmd: &str) -> Command {
    let path = format!(
        "{}:{}",
        common::party_bin()
            .parent()
            .expect("the binaries' directory")
            .display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut c = Command::new("timeout");
    c.args(["120", "sh", "-e", "-c", cmd])
        .current_dir(dir)
        .env("PATH", path)
        .env("XDG_STATE_HOME", dir.join("xdg-state"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    c
}

fn must(o: Output, cmd: &str) {
    assert!(
        o.status.success(),
        "{cmd}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The whole page on one machine: the host names' addresses become
/// `127.0.0.1` and free ports (the certificates' names are still checked:
/// `--tls-server-name`, `--dealer-tls-server-name`), the certificates come
/// from the page's `openssl` command for each of the three names, the job
/// file is the page's with `model.json` from `ariann-dealer model network1`,
/// random weights and inputs. Both ways (4a streamed over mutual TLS, 4b key
/// files) must run, and party 1's predictions equal the fixed-point
/// reference's.
#[test]
fn the_guide_runs_on_one_machine() {
    let text = guide();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    // The user's files.
    let job = text
        .split("```toml\n")
        .nth(1)
        .and_then(|t| t.split("```").next())
        .expect("the job file");
    std::fs::write(dir.join("job.toml"), job).expect("job.toml");
    let model = ariann_nn::zoo::network1();
    std::fs::write(dir.join("model.json"), model.to_json()).expect("model.json");
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let w = ariann_nn::Weights::random(&model, &mut rng);
    std::fs::write(
        dir.join("weights.safetensors"),
        w.to_safetensors().expect("weights"),
    )
    .expect("write");
    let batch = ariann_job::JobFile::parse(job, Path::new("job.toml"))
        .expect("job")
        .batch
        .expect("batch");
    let mut x = ariann_nn::Weights::new();
    x.insert(
        "input",
        vec![batch, model.input_len()],
        (0..batch * model.input_len())
            .map(|_| rng.random_range(0.0..1.0))
            .collect(),
    )
    .expect("input");
    std::fs::write(
        dir.join("x.safetensors"),
        x.to_safetensors().expect("input"),
    )
    .expect("write");

    let reference = {
        let r = Command::new(common::party_bin())
            .args([
                "reference",
                "--job",
                "job.toml",
                "--weights",
                "weights.safetensors",
            ])
            .args(["--input", "x.safetensors", "--json"])
            .current_dir(dir)
            .output()
            .expect("reference");
        must(r.clone(), "reference");
        let v: serde_json::Value = serde_json::from_slice(&r.stdout).expect("JSON");
        v["predictions_fixed"].clone()
    };
    assert_eq!(reference.as_array().map(Vec::len), Some(batch));

    let cmds = commands(&text, "sh");
    let mut ports = (free_port(), free_port());
    let local = |c: &str, (p, d): (u16, u16)| {
        c.replace("0.0.0.0:7000", &format!("127.0.0.1:{p}"))
            .replace("party0.example:7000", &format!("127.0.0.1:{p}"))
            .replace("0.0.0.0:7100", &format!("127.0.0.1:{d}"))
            .replace("dealer.example:7100", &format!("127.0.0.1:{d}"))
    };
    let mut background: Vec<(String, std::process::Child)> = Vec::new();
    let mut runs = 0;
    for cmd in &cmds {
        let c = local(cmd, ports);
        if c.starts_with("openssl") {
            for name in ["party0", "party1", "dealer"] {
                must(
                    sh(dir, &c.replace("party0", name))
                        .output()
                        .expect("openssl"),
                    &c,
                );
            }
        } else if c.starts_with("ariann-dealer serve") || c.contains("--id 0") {
            background.push((c.clone(), sh(dir, &c).spawn().expect("spawn")));
        } else if c.contains("--id 1") {
            let _ = std::fs::remove_file(dir.join("out.json"));
            must(sh(dir, &c).output().expect("party 1"), &c);
            for (bc, child) in background.drain(..) {
                must(child.wait_with_output().expect("wait"), &bc);
            }
            let out: serde_json::Value = serde_json::from_slice(
                &std::fs::read(dir.join("out.json")).expect("party 1 wrote out.json"),
            )
            .expect("out.json");
            assert_eq!(out["predictions"], reference, "{c}");
            runs += 1;
            ports = (free_port(), free_port());
        } else {
            must(sh(dir, &c).output().expect("run"), &c);
        }
    }
    assert_eq!(runs, 2, "both ways ran (4a streamed, 4b key files)");
}
