#!/usr/bin/env bash
# Runs a local Rust HyperDHT testnet on 127.0.0.1: one bootstrap node and N persistent nodes
# (default 5), printing each node's address as the JS `hyperdht` binary does. Ctrl-C stops it.
# JS peers join it with `new HyperDHT({ host: '127.0.0.1', bootstrap: [{ host: '127.0.0.1', port }] })`.
#
# Usage: scripts/local-testnet.sh [NODES] [BOOTSTRAP_PORT]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
nodes="${1:-5}"
port="${2:-49737}"
cargo build --quiet --release -p dht --features cli --bin hyperdht
bin="${CARGO_TARGET_DIR:-target}/release/hyperdht"
"$bin" --bootstrap --host 127.0.0.1 --port "$port" &
boot=$!
trap 'kill $boot 2>/dev/null' EXIT INT TERM
sleep 0.5
"$bin" --bootstrap "127.0.0.1:$port" --nodes "$nodes" --host 127.0.0.1 --persistent
