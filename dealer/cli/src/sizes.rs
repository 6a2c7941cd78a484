//! Sizes before work: what a job costs, from the gate costs alone
//! (`ariann_mpc::cost`), before any key is generated.

use anyhow::{Context, Result, bail};
use ariann_dealer::Plan;
use ariann_dealer::keyfile::key_file_len;
use ariann_mpc::cost::plan_cost;
use std::path::Path;

/// Per-party figures of a plan.
pub(crate) struct Sizes {
    /// Key bundles per party (one per gate).
    pub(crate) bundles: u64,
    /// Key material one party holds.
    pub(crate) key_bytes: u64,
    /// One party's key file, framing and digests included.
    pub(crate) file_bytes: u64,
    /// Bytes one party sends online (it receives as many).
    pub(crate) online_bytes: u64,
    /// Online rounds.
    pub(crate) rounds: u64,
    /// The largest single bundle's key bytes (what a party streaming its
    /// keys from `serve` holds at least once).
    pub(crate) largest_bundle: u64,
}

/// The sizes of `plan`.
pub(crate) fn sizes(plan: &Plan) -> Result<Sizes> {
    let cost = plan_cost(&plan.gates, plan.ring_bits).context("cannot cost the plan")?;
    let file_bytes =
        key_file_len(&plan.gates, plan.ring_bits).context("cannot size the key files")?;
    Ok(Sizes {
        bundles: plan.gates.len() as u64,
        key_bytes: cost.total.key_bytes,
        file_bytes,
        online_bytes: cost.total.bytes_sent,
        rounds: cost.total.rounds,
        largest_bundle: cost.max_gate_key_bytes(),
    })
}

/// One party's cost of a batch of a job of several batches.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct BatchCost {
    /// Key material.
    pub(crate) key_bytes: u64,
    /// Bytes sent online.
    pub(crate) online_bytes: u64,
    /// Online rounds.
    pub(crate) rounds: u64,
}

/// A job of several batches, split: the first batch (which opens the
/// weights' masks) and the mean of the later ones (which reuse them).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct PerBatch {
    /// Batches in the job (at least 2).
    pub(crate) batches: usize,
    /// The first batch.
    pub(crate) first: BatchCost,
    /// Each later batch, on average.
    pub(crate) later: BatchCost,
}

/// The split of `plan`, a job of `batches` batches whose first batch is
/// its first `first_gates` gates.
pub(crate) fn per_batch(plan: &Plan, first_gates: usize, batches: usize) -> Result<PerBatch> {
    if batches < 2 || first_gates > plan.gates.len() {
        bail!(
            "a plan of {} gates is not {batches} batches whose first has {first_gates} gates",
            plan.gates.len()
        );
    }
    let cost = |gates| -> Result<BatchCost> {
        let c = plan_cost(gates, plan.ring_bits).context("cannot cost the plan")?;
        Ok(BatchCost {
            key_bytes: c.total.key_bytes,
            online_bytes: c.total.bytes_sent,
            rounds: c.total.rounds,
        })
    };
    let first = cost(&plan.gates[..first_gates])?;
    let rest = cost(&plan.gates[first_gates..])?;
    let n = batches as u64 - 1;
    Ok(PerBatch {
        batches,
        first,
        later: BatchCost {
            key_bytes: rest.key_bytes / n,
            online_bytes: rest.online_bytes / n,
            rounds: rest.rounds / n,
        },
    })
}

/// Bytes in decimal units (`512 B`, `51.0 MB`, `1.38 GB`).
pub(crate) fn human(bytes: u64) -> String {
    let b = bytes as f64;
    match bytes {
        0..1_000 => format!("{bytes} B"),
        1_000..1_000_000 => format!("{:.1} kB", b / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1} MB", b / 1e6),
        1_000_000_000..1_000_000_000_000 => format!("{:.2} GB", b / 1e9),
        _ => format!("{:.2} TB", b / 1e12),
    }
}

/// The summary `ariann-dealer plan` prints; `batches` is an inference
/// job's `(batch, batches)`, `split` its cost per batch when it has several.
pub(crate) fn summary(
    what: &str,
    hash: &str,
    s: &Sizes,
    batches: Option<(usize, usize)>,
    split: Option<&PerBatch>,
) -> String {
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{k:<16}{v}\n"));
    line("job:", what.to_string());
    line("plan hash:", hash.to_string());
    line("bundles:", format!("{} per party", s.bundles));
    line(
        "keys:",
        format!("{} bytes per party ({})", s.key_bytes, human(s.key_bytes)),
    );
    line(
        "key files:",
        format!(
            "{} bytes each ({}), {} for both (`keys`; `serve` streams them instead)",
            s.file_bytes,
            human(s.file_bytes),
            human(s.file_bytes.saturating_mul(2))
        ),
    );
    line(
        "online:",
        format!(
            "{} bytes sent per party ({:.2} MB; as much received)",
            s.online_bytes,
            s.online_bytes as f64 / 1e6
        ),
    );
    line("rounds:", s.rounds.to_string());
    line(
        "largest bundle:",
        format!("{} of keys per party", human(s.largest_bundle)),
    );
    if let Some(p) = split {
        let batch = |what: &str, c: &BatchCost| {
            format!(
                "{} of keys, {:.3} MB online, {} rounds, per party{what}",
                human(c.key_bytes),
                c.online_bytes as f64 / 1e6,
                c.rounds
            )
        };
        line(
            "first batch:",
            batch(" (opens the weights' masks)", &p.first),
        );
        line(
            "later batches:",
            batch(
                &format!(
                    " and batch ({} batches; weight masks reused)",
                    p.batches - 1
                ),
                &p.later,
            ),
        );
    }
    let inputs = batches.and_then(|(b, n)| b.checked_mul(n));
    if let Some(b) = inputs.filter(|b| *b > 0) {
        line(
            "per input:",
            format!(
                "{} of keys, {:.3} MB online, per party",
                human(s.key_bytes / b as u64),
                s.online_bytes as f64 / 1e6 / b as f64
            ),
        );
    }
    out
}

/// Refuses to write both key files of `s` to `dir` when they would not fit
/// in `free` bytes (the free space of its disk, or a value given for tests).
pub(crate) fn check_fits(s: &Sizes, dir: &Path, free: Option<u64>) -> Result<()> {
    let free = match free {
        Some(f) => f,
        None => {
            // The directory may not exist yet: ask about its nearest
            // existing ancestor (the same disk, unless a mount point is
            // created in between).
            let existing = dir
                .ancestors()
                .find(|a| !a.as_os_str().is_empty() && a.exists())
                .unwrap_or(Path::new("."));
            fs4::available_space(existing)
                .with_context(|| format!("cannot tell the free space of {}", existing.display()))?
        }
    };
    let need = s.file_bytes.saturating_mul(2);
    if need > free {
        bail!(
            "the two key files need {} ({} per party) but {} has {} free; \
             let `ariann-dealer serve` (same job options) stream the keys to the parties \
             as the job runs instead: nothing is stored",
            human(need),
            human(s.file_bytes),
            dir.display(),
            human(free)
        );
    }
    Ok(())
}
