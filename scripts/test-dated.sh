#!/usr/bin/env bash
# Reruns the tests that involve billing periods with every server's wall clock pinned at a
# month end, a year end and a leap day (tests/it/test_clock.rs reads DRIFTLOCK_TEST_NOW).
# Each test starts at the instant given, so the ones at 23:59:xx cross the month end while
# they run. Every instant runs even when one fails; the exit status says whether all passed.
# Extra arguments go to `cargo test`.
set -uo pipefail
cd "$(dirname "$0")/.."

instants=(2026-12-31T23:59:50Z 2027-01-31T23:59:30Z 2028-02-29T12:00:00Z)
# The modules whose tests count usage, read periods, sign Stripe events or bill.
filters=(test_clock:: metering:: stripe:: email:: streams:: clock:: audit:: ui::the_overview packaging::stores)
failed=()
for at in "${instants[@]}"; do
  echo "== dated run: servers' clock at $at"
  DRIFTLOCK_TEST_NOW="$at" cargo test --test it "$@" -- "${filters[@]}" || failed+=("$at")
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "dated runs failed at: ${failed[*]}" >&2
  exit 1
fi
