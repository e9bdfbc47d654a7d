#!/usr/bin/env bash
# Known vulnerabilities: runs `cargo audit` (installing cargo-audit from crates.io first if it
# is missing) against the reviewed advisory snapshot under .cargo/advisory-db, offline. Fails on
# any vulnerability, and on unsound or unmaintained crates (.cargo/audit.toml), in Cargo.lock.
#
#   scripts/audit-dependencies.sh          # the reviewed snapshot (what .ci/run does)
#   scripts/audit-dependencies.sh --live   # fetch the current RustSec database (needs GitHub)
set -euo pipefail
cd "$(dirname "$0")/.."

version=0.22.2
if ! cargo audit --version 2>/dev/null | grep -q "$version"; then
  cargo install cargo-audit --locked --version "$version" --quiet
fi
if [ "${1:-}" = "--live" ]; then
  exec cargo audit
fi
cargo audit --db .cargo/advisory-db --no-fetch --stale
