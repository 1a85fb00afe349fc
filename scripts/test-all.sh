#!/usr/bin/env bash
# Runs every default test tier of the workspace. On a fresh machine it needs only the Rust
# toolchain, Node.js 20 and npm: it installs cargo-nextest and
# cargo-fuzz (exact versions) from crates.io, the pinned JS packages from npm, the pinned Python
# API clients from PyPI (scripts/api-test-venv.sh), and iptables, python3-venv and curl from the
# distribution when they are missing.
#
# Tiers, in order: fmt, clippy (warnings are errors), sans-IO cores without default features,
# the test suite (unit, property, vector, corpus replay, simulation, live interop against JS on
# 127.0.0.1, the UDX loss test inside network namespaces), the noise tests again with its SIMD
# backends compiled out (feature `portable`), then a fuzz smoke run of every fuzz target.
#
# A tier whose tools are missing FAILS the run; nothing is skipped silently. The only ways to
# leave a tier out are explicit and printed:
#   SKIP_FUZZ=1    skip the fuzz smoke            FUZZ_SECONDS=N  its length per target (10)
#   SKIP_NETNS=1   run without the network-namespace tier (for machines without root)
# NOISE_SIMD_REQUIRED=1 (set by .ci/run when the CPU has AVX-512 F/BW/IFMA) makes the noise
# tests fail, instead of printing a note, when the SIMD path is not exercised.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# Tools this script installs when missing, at exact versions.
NEXTEST_VERSION=0.9.143
CARGO_FUZZ_VERSION=0.13.2

step() { printf '\n=== %s\n' "$*"; }
fail() {
  printf '\nFAILED: %s\n' "$*" >&2
  exit 1
}

step "tools"
cargo --version
node --version || fail "node is not installed (the interop tests run the pinned JS packages)"
npm --version || fail "npm is not installed"
for component in rustfmt clippy; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    if command -v rustup >/dev/null; then
      rustup component add "$component" || fail "could not install the $component component"
    else
      fail "$component is missing and there is no rustup to install it"
    fi
  fi
done
if ! command -v cargo-nextest >/dev/null; then
  cargo install cargo-nextest --locked --version "$NEXTEST_VERSION" ||
    fail "could not install cargo-nextest $NEXTEST_VERSION"
fi
cargo nextest --version | head -1
if [ "${SKIP_FUZZ:-0}" = 1 ]; then
  echo "SKIP_FUZZ=1: the fuzz smoke tier is left out"
elif ! command -v cargo-fuzz >/dev/null; then
  cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION" ||
    fail "could not install cargo-fuzz $CARGO_FUZZ_VERSION"
fi

# The namespace tier (udx under real kernel loss) needs root, iproute2 and iptables.
if [ "${SKIP_NETNS:-0}" = 1 ]; then
  echo "SKIP_NETNS=1: the network-namespace tier is left out"
else
  [ "$(id -u)" = 0 ] || fail "the network-namespace tier needs root (SKIP_NETNS=1 leaves it out)"
  if ! command -v iptables >/dev/null || ! command -v ip >/dev/null; then
    command -v apt-get >/dev/null || fail "iptables/iproute2 are missing and there is no apt-get"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iptables iproute2; } ||
      fail "could not install iptables and iproute2 with apt-get"
  fi
  command -v iptables >/dev/null || fail "iptables is still missing after installing it"
  probe="hsrs-probe-$$"
  ip netns add "$probe" || fail "cannot create a network namespace (ip netns add)"
  ip netns exec "$probe" iptables -L -n >/dev/null 2>&1 || {
    ip netns del "$probe"
    fail "iptables does not work inside a network namespace"
  }
  ip netns del "$probe"
  export UDX_NETNS_REQUIRED=1 # the test fails instead of skipping when its tools are missing
  echo "network-namespace tier: root, ip netns and iptables present"
fi
echo "NOISE_SIMD_REQUIRED=${NOISE_SIMD_REQUIRED:-0}"

step "pinned Python clients for the API tests (openai, prometheus_client) into target/api-test-venv"
# python3 with its venv module and curl come from the distribution when they are missing.
if ! command -v curl >/dev/null || ! command -v python3 >/dev/null ||
  ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  command -v apt-get >/dev/null || fail "python3 (with venv) or curl is missing and there is no apt-get"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv curl; } ||
    fail "could not install python3, python3-venv and curl with apt-get"
fi
scripts/api-test-venv.sh || fail "could not install the pinned openai and prometheus_client packages (python3 with venv and PyPI are needed)"
command -v curl >/dev/null || fail "curl is not installed (the API tests use it)"

step "pinned JS packages for the interop tests"
(cd interop-tests/js && npm ci --no-audit --no-fund --loglevel=error)

step "fmt"
cargo fmt --all -- --check

step "clippy"
cargo clippy --workspace --all-targets --features dht/cli --quiet -- -D warnings

step "sans-IO cores build without their tokio drivers"
cargo check --quiet -p dht -p noise -p udx --no-default-features

step "udxcat (release) for the namespace loss test"
cargo build --release --quiet -p udx --bin udxcat
export UDXCAT="${CARGO_TARGET_DIR:-$root/target}/release/udxcat"

step "tests"
cargo nextest run --workspace --features dht/cli --no-fail-fast --profile ci

step "noise with its SIMD backends compiled out (the path CPUs without AVX-512 take)"
# The SIMD requirement cannot hold here by construction.
env -u NOISE_SIMD_REQUIRED cargo nextest run -p noise --features portable --no-fail-fast --profile ci

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
    [ "${PIPESTATUS[0]}" = 0 ] || fail "fuzz target $t failed"
  done
fi

step "all tiers passed"
