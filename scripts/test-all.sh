#!/usr/bin/env bash
# Runs every default test tier of the workspace. On a fresh machine it needs only the Rust
# toolchain, Node.js 20 and npm: it installs cargo-nextest and cargo-fuzz from crates.io and
# the pinned JS packages from npm when they are missing.
#
# Tiers, in order: fmt, clippy, sans-IO cores without default features, the test suite
# (unit, property, vector, corpus replay, simulation, live interop against JS on 127.0.0.1),
# the noise tests again with its SIMD backends compiled out (feature `portable`), then a fuzz
# smoke run of every fuzz target.
#
# Environment: FUZZ_SECONDS (default 10) per fuzz target; SKIP_FUZZ=1 skips the fuzz smoke.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

step() { printf '\n=== %s\n' "$*"; }

step "tools"
cargo --version
node --version
command -v cargo-nextest >/dev/null || cargo install cargo-nextest --locked
[ "${SKIP_FUZZ:-0}" = 1 ] || command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

# The namespace tier (udx under real kernel loss) needs root, iproute2 and iptables.
if ! command -v iptables >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iptables iproute2) ||
    echo "could not install iptables: the namespace loss test will report SKIPPED"
fi
if command -v iptables >/dev/null && command -v ip >/dev/null && [ "$(id -u)" = 0 ]; then
  export UDX_NETNS_REQUIRED=1 # a skip is a failure where the tools are present
fi

step "pinned JS packages for the interop tests"
(cd interop-tests/js && npm ci --no-audit --no-fund --loglevel=error)

step "fmt"
if cargo fmt --version >/dev/null 2>&1; then
  cargo fmt --all -- --check
else
  echo "rustfmt not installed: skipped"
fi

step "clippy"
if cargo clippy --version >/dev/null 2>&1; then
  cargo clippy --workspace --all-targets --features dht/cli --quiet
else
  echo "clippy not installed: skipped"
fi

step "sans-IO cores build without their tokio drivers"
cargo check --quiet -p dht -p noise -p udx --no-default-features

step "udxcat (release) for the namespace loss test"
cargo build --release --quiet -p udx --bin udxcat
export UDXCAT="${CARGO_TARGET_DIR:-$root/target}/release/udxcat"

step "tests"
cargo nextest run --workspace --features dht/cli --no-fail-fast --profile ci

step "noise with its SIMD backends compiled out (the path CPUs without AVX-512 take)"
cargo nextest run -p noise --features portable --no-fail-fast --profile ci

if [ "${SKIP_FUZZ:-0}" != 1 ]; then
  step "fuzz smoke (${FUZZ_SECONDS:-10} s per target)"
  cd fuzz
  cargo fuzz build -s none
  scratch="$(mktemp -d)"
  trap 'rm -rf "$scratch"' EXIT
  for t in $(cargo fuzz list); do
    mkdir -p "$scratch/$t"
    # New inputs go to the scratch folder; the committed seeds are read only.
    seeds=""
    [ -d "corpus/$t" ] && seeds="corpus/$t"
    cargo fuzz run -s none "$t" "$scratch/$t" $seeds -- \
      -max_total_time="${FUZZ_SECONDS:-10}" -print_final_stats=1 2>&1 |
      grep -E 'stat::number_of_executed_units|ERROR|panicked' | sed "s/^/$t: /"
    [ "${PIPESTATUS[0]}" = 0 ] || { echo "fuzz target $t failed"; exit 1; }
  done
fi

step "all tiers passed"
