#!/usr/bin/env python3
"""Lists the C functions longer than a limit (default 50 lines), longest
first: a definition's body runs from a '{' in column 0 to the next '}' in
column 0, as .clang-format lays functions out.  CONTRIBUTING.md: functions
short.

  scripts/long-functions.py [--limit N] [FILE...]   (default: src/ tools/ bench/)
"""
import glob
import re
import sys


def functions(path):
    """(line, name, length) of each function definition in PATH."""
    lines = open(path, encoding="utf-8", errors="replace").read().split("\n")
    start = name = None
    for i, line in enumerate(lines):
        if line == "{":
            start = i
            j = i - 1  # the line with the name: the first of the declarator
            while j >= 0 and "(" not in lines[j]:
                j -= 1
            while j > 0 and not re.match(r"[A-Za-z_]", lines[j]):
                j -= 1
            m = re.search(r"(\w+)\s*\(", lines[j])
            name = m.group(1) if m else "?"
        elif line.startswith("}") and start is not None:
            yield start + 1, name, i - start + 1
            start = None


def main(argv):
    limit = 50
    if argv[:1] == ["--limit"]:
        limit, argv = int(argv[1]), argv[2:]
    files = argv or sorted(
        f for d in ("src", "tools", "bench") for f in glob.glob(d + "/**/*.c", recursive=True)
    )
    found = [(n, f, line, name) for f in files for line, name, n in functions(f) if n > limit]
    for n, f, line, name in sorted(found, reverse=True):
        print(f"{f}:{line}: {name}: {n} lines")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
