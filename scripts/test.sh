#!/usr/bin/env bash
# keyward's one test command (the README's and CI's): formatting, lints, every test.
#
# Works from a fresh clone on a fresh machine: it needs only the Rust toolchain (cargo,
# rustfmt, clippy). Later services (PostgreSQL, Redis) are installed and started here too,
# and under CI=true a missing service fails the run instead of skipping tests.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Reuse one build directory outside the clone, so CI on this machine starts warm.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/keyward/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# Two cores: keep test binaries from starving each other.
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-4}"

step() { printf '\n==> %s\n' "$*"; }

for tool in cargo rustfmt cargo-clippy; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "scripts/test.sh: '$tool' is missing; install the Rust toolchain with rustfmt and clippy" >&2
    exit 1
  fi
done

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings denied)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test"
cargo test --workspace --locked

step "all checks passed"
