#!/usr/bin/env python3
"""Tests the GCC 12 coroutine lint itself: it reports exactly the lines of
samples/bad.cc marked "// BAD", nothing in samples/good.cc, and fails (exit
1) on the bad sample, so a lint that stopped seeing anything fails here."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import coroutine_lint  # noqa: E402

here = os.path.dirname(os.path.abspath(__file__))
bad = os.path.join(here, "samples", "bad.cc")
good = os.path.join(here, "samples", "good.cc")
failures = []

with open(bad, encoding="utf-8") as f:
    marked = {i for i, line in enumerate(f, 1) if line.rstrip().endswith("// BAD")}
reported = {line for line, _ in coroutine_lint.lint(bad)}
if not marked:
    failures.append("samples/bad.cc marks no line")
if reported != marked:
    failures.append(f"bad.cc: missed lines {sorted(marked - reported)}, wrongly reported {sorted(reported - marked)}")

good_findings = coroutine_lint.lint(good)
if good_findings:
    failures.append(f"good.cc: wrongly reported {good_findings}")

lint = os.path.join(here, "coroutine_lint.py")
if subprocess.run([sys.executable, lint, bad], capture_output=True).returncode != 1:
    failures.append("the lint did not exit 1 on bad.cc")
if subprocess.run([sys.executable, lint, good], capture_output=True).returncode != 0:
    failures.append("the lint did not exit 0 on good.cc")

for f in failures:
    print("FAIL:", f)
if not failures:
    print(f"ok: {len(marked)} bad shapes reported, good shapes accepted")
sys.exit(1 if failures else 0)
