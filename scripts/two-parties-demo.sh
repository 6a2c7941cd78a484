#!/usr/bin/env bash
# The README's two-party walk-through on one machine: the dealer writes key
# files, the model owner (party 0) and the data owner (party 1) each run an
# `ariann-party` process, and party 1 receives the predictions.
# Usage: scripts/two-parties-demo.sh [WORKDIR]   (run from the repository root)
set -euo pipefail
work="${1:-$(mktemp -d)}"
mkdir -p "$work"
cargo build --release -q -p ariann-party -p ariann-dealer-cli
cargo build --release -q --example export_digits
bin=target/release

# The data owner's inputs: 8 MNIST digits from the embedded fixture.
"$bin/examples/export_digits" --n 8 --out "$work/digits.safetensors"
# The dealer: its signing identity (once), then keys for Network-1 on a batch
# of 8, one file per party, signed. Each party pins dealer.pub and keeps a
# use-once ledger in its own state directory.
[ -s "$work/id/dealer.key" ] || "$bin/ariann-dealer" identity --out "$work/id" >/dev/null
"$bin/ariann-dealer" keys --signing-key "$work/id/dealer.key" --model network1 --batch 8 \
    --out "$work/keys" --no-progress
# Party 0, the model owner, with its trained weights; it listens.
"$bin/ariann-party" --id 0 --listen 127.0.0.1:0 --ready-file "$work/addr" \
    --keys "$work/keys/party0.keys" --model network1 --batch 8 \
    --dealer-pubkey "$work/id/dealer.pub" --state-dir "$work/state0" \
    --weights assets/network1-mlxtend.safetensors --output-to 1 &
p0=$!
for _ in $(seq 100); do [ -s "$work/addr" ] && break; sleep 0.1; done
# Party 1, the data owner, connects and is the only one to learn the output.
"$bin/ariann-party" --id 1 --peer "$(cat "$work/addr")" \
    --keys "$work/keys/party1.keys" --model network1 --batch 8 \
    --dealer-pubkey "$work/id/dealer.pub" --state-dir "$work/state1" \
    --input "$work/digits.safetensors" --output-to 1 --output "$work/out.json"
wait "$p0"
python3 -c 'import json,sys; print("predictions:", json.load(open(sys.argv[1]))["predictions"])' "$work/out.json"
