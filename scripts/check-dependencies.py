#!/usr/bin/env python3
"""Checks every crate in Cargo.lock (for this platform) the way `cargo deny check licenses
sources` would, offline: each comes from crates.io, and its SPDX license expression can be met
with licenses on the allow-list below (permissive licenses that let the appliance be shipped as
one statically linked binary). Prints a summary; exits 1 naming every crate that fails.

Also checks that every crate named in Cargo.lock (all platforms) was reviewed against the
RustSec advisory database: it must be listed in .cargo/advisories-reviewed.txt, so a new dependency
cannot slip past scripts/audit-dependencies.sh, which runs `cargo audit` against the reviewed
snapshot under .cargo/advisory-db (see docs/RELIABILITY.md).

Usage: scripts/check-dependencies.py   (from the repository root)
"""

import collections
import json
import re
import pathlib
import subprocess
import sys
import tomllib

ALLOWED = {
    "0BSD", "Apache-2.0", "BSD-2-Clause", "BSD-3-Clause", "BSL-1.0", "CC0-1.0",
    "CDLA-Permissive-2.0", "ISC", "MIT", "MIT-0", "MPL-2.0", "Unicode-3.0", "Unicode-DFS-2016",
    "Unlicense", "Zlib",
}
EXCEPTIONS = {"LLVM-exception"}
CRATES_IO = "registry+https://github.com/rust-lang/crates.io-index"


def tokens(expression):
    # Old crates write "MIT/Apache-2.0", meaning OR.
    return re.findall(r"\(|\)|[A-Za-z0-9.\-+]+", expression.replace("/", " OR "))


def satisfiable(expression):
    """Whether the SPDX expression can be met with ALLOWED (OR: any side, AND: both)."""
    toks = tokens(expression)
    pos = 0

    def parse_or():
        nonlocal pos
        ok = parse_and()
        while pos < len(toks) and toks[pos] == "OR":
            pos += 1
            ok = parse_and() or ok
        return ok

    def parse_and():
        nonlocal pos
        ok = parse_term()
        while pos < len(toks) and toks[pos] == "AND":
            pos += 1
            ok = parse_term() and ok
        return ok

    def parse_term():
        nonlocal pos
        if pos >= len(toks):
            raise ValueError("unexpected end")
        tok = toks[pos]
        pos += 1
        if tok == "(":
            ok = parse_or()
            if pos >= len(toks) or toks[pos] != ")":
                raise ValueError("unbalanced parentheses")
            pos += 1
            return ok
        ok = tok in ALLOWED
        if pos < len(toks) and toks[pos] == "WITH":
            ok = ok and pos + 1 < len(toks) and toks[pos + 1] in EXCEPTIONS
            pos += 2
        return ok

    ok = parse_or()
    if pos != len(toks):
        raise ValueError("trailing tokens")
    return ok


def unreviewed_crates():
    """Crate names in Cargo.lock that .cargo/advisories-reviewed.txt does not list."""
    with open("Cargo.lock", "rb") as lock:
        locked = {p["name"] for p in tomllib.load(lock)["package"] if "source" in p}
    reviewed = {
        line.strip()
        for line in pathlib.Path(".cargo/advisories-reviewed.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    return len(locked), sorted(locked - reviewed)


def main():
    host = next(
        line.split(": ", 1)[1]
        for line in subprocess.run(["rustc", "-vV"], capture_output=True, text=True,
                                   check=True).stdout.splitlines()
        if line.startswith("host: ")
    )
    meta = json.loads(subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--locked", "--filter-platform", host],
        capture_output=True, text=True, check=True).stdout)
    ours = set(meta["workspace_members"])
    problems = []
    licenses = collections.Counter()
    crates = 0
    for package in meta["packages"]:
        if package["id"] in ours:
            continue
        crates += 1
        name = "%s %s" % (package["name"], package["version"])
        if package.get("source") != CRATES_IO:
            problems.append("%s: not from crates.io (%s)" % (name, package.get("source")))
        expression = package.get("license")
        if not expression:
            problems.append("%s: no SPDX license expression" % name)
            continue
        try:
            if not satisfiable(expression):
                problems.append("%s: license %r is not on the allow-list" % (name, expression))
        except ValueError as e:
            problems.append("%s: license %r does not parse (%s)" % (name, expression, e))
        licenses[expression] += 1
    print("dependencies: %d crates from crates.io checked for %s" % (crates, host))
    for expression, count in licenses.most_common():
        print("  %4d  %s" % (count, expression))
    locked, unreviewed = unreviewed_crates()
    for name in unreviewed:
        problems.append("%s: in Cargo.lock but not reviewed against the advisory database "
                        "(docs/RELIABILITY.md says how)" % name)
    print("dependencies: %d crate names in Cargo.lock, %d not yet reviewed for advisories"
          % (locked, len(unreviewed)))
    if problems:
        print("dependencies: %d problem(s):" % len(problems))
        for problem in problems:
            print("  " + problem)
        return 1
    print("dependencies: every license allowed, every source crates.io")
    return 0


if __name__ == "__main__":
    sys.exit(main())
