#!/usr/bin/env python3
"""Checks that a tutorial shows its module as it is.

Every fenced block whose info string names a file (```cpp file=modules/x/y.cc)
must equal that file byte for byte, and every file of the folders named must
be shown, so the tutorial cannot drift from the code CI compiles and tests.

    check_files_shown.py ROOT DOC FOLDER...
"""
import pathlib
import re
import sys

FENCE = re.compile(r"^```[^\n]*?\bfile=(\S+)[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)


def main(argv):
    if len(argv) < 4:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    root, doc = pathlib.Path(argv[1]), pathlib.Path(argv[2])
    folders = argv[3:]
    text = doc.read_text()
    shown = {}
    problems = []
    for m in FENCE.finditer(text):
        path, body = m.group(1), m.group(2)
        if path in shown:
            problems.append(f"{doc}: {path} is shown twice")
        shown[path] = body
        f = root / path
        if not f.is_file():
            problems.append(f"{doc}: shows {path}, which does not exist")
        elif f.read_text() != body:
            problems.append(f"{doc}: the block for {path} differs from the file (copy the file into the doc)")
    for folder in folders:
        for f in sorted((root / folder).rglob("*")):
            rel = f.relative_to(root).as_posix()
            if f.is_file() and rel not in shown:
                problems.append(f"{doc}: {rel} is part of the module but not shown")
    for p in problems:
        print(p, file=sys.stderr)
    if not shown:
        print(f"{doc}: no block names a file", file=sys.stderr)
        return 1
    print(f"{len(shown)} files shown, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
