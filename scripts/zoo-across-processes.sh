#!/usr/bin/env bash
# Times a zoo model as a user runs it: `ariann-dealer serve` and two
# `ariann-party` processes on loopback, keys streamed from the dealer as they
# are generated (the time includes key generation), random weights and
# inputs. Prints one JSON object.
# Usage: scripts/zoo-across-processes.sh MODEL BATCH [one-round|small-key] [K_CMP]
#        (run from the repository root; builds the binaries first)
set -euo pipefail
model="$1"; batch="$2"; variant="${3:-one-round}"; kcmp="${4:-24}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cargo build --release -q -p ariann-party -p ariann-dealer-cli
cargo build --release -q -p ariann --example random_assets
bin=target/release
"$bin/examples/random_assets" --model "$model" --batch "$batch" \
    --weights "$work/w.safetensors" --input "$work/x.safetensors" >/dev/null
plan=(--model "$model" --batch "$batch" --variant "$variant" --k-cmp "$kcmp" --permute-relu-maxpool)
"$bin/ariann-dealer" identity --out "$work/id" >/dev/null
start=$(date +%s.%N)
"$bin/ariann-dealer" serve "${plan[@]}" --signing-key "$work/id/dealer.key" --listen 127.0.0.1:0 --ready-file "$work/dealer" \
    --insecure-plaintext > "$work/dealer.out" 2> "$work/dealer.log" &
dealer=$!
for _ in $(seq 300); do [ -s "$work/dealer" ] && break; sleep 0.05; done
party=(--model "$model" --batch "$batch" --variant "$variant" --k-cmp "$kcmp" --permute-relu-maxpool
    --dealer "$(cat "$work/dealer")" --output-to 1 --dealer-pubkey "$work/id/dealer.pub")
"$bin/ariann-party" --id 0 "${party[@]}" --state-dir "$work/state0" --listen 127.0.0.1:0 --ready-file "$work/p0" \
    --weights "$work/w.safetensors" 2> "$work/p0.log" &
p0=$!
for _ in $(seq 300); do [ -s "$work/p0" ] && break; sleep 0.05; done
"$bin/ariann-party" --id 1 "${party[@]}" --state-dir "$work/state1" --peer "$(cat "$work/p0")" \
    --input "$work/x.safetensors" --output "$work/out.json" 2> "$work/p1.log"
wait "$p0" "$dealer"
end=$(date +%s.%N)
python3 - "$model" "$batch" "$variant" "$start" "$end" "$work/out.json" "$work/dealer.out" <<'PY'
import json, sys
model, batch, variant, start, end, out, dout = sys.argv[1:]
batch = int(batch); secs = float(end) - float(start)
preds = json.load(open(out))["predictions"]
lines = dict(l.split(":", 1) for l in open(dout).read().splitlines() if ":" in l)
mb = int(lines["streamed"].split("+")[0].strip()) / 1e6
print(json.dumps({"model": model, "batch": batch, "variant": variant,
                  "seconds": round(secs, 3), "seconds_per_image": round(secs / batch, 4),
                  "key_mb_per_party": round(mb, 1), "key_mb_per_image": round(mb / batch, 2),
                  "predictions": len(preds), "dealer_time": lines["time"].strip()}))
PY
