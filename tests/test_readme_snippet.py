#!/usr/bin/env python3
"""test_readme_snippet.py - the README's C code blocks compile without a
warning both as C11 and as C++17 (-Wall -Wextra -Wpedantic -Werror), as a
user pasting them into either would compile them.

    python3 tests/test_readme_snippet.py README.md include/ CC CXX

Each ```c block is placed in a function body (its #include lines above it);
the names it calls but does not define (handle, rebuild_index,
load_last_done, handle_and_store) are declared.
"""
import os
import re
import subprocess
import sys
import tempfile

PRELUDE = """#include <rq.h>
#include <stdint.h>
#include <stdio.h>
static void handle(const void *msg, size_t len) { (void)msg; (void)len; }
static void rebuild_index(void) {}
static int64_t load_last_done(void) { return -1; }
static int64_t handle_and_store(const void *msg, size_t len, uint64_t seq)
{ (void)msg; (void)len; return (int64_t)seq; }
"""


def program(block):
    includes = [l for l in block.splitlines() if l.startswith("#include")]
    body = [l for l in block.splitlines() if not l.startswith("#include")]
    return ("\n".join(includes) + "\n" + PRELUDE +
            "int snippet(void);\nint snippet(void)\n{\n" + "\n".join(body) +
            "\nreturn 0;\n}\n")


def main(argv):
    readme, incdir, cc, cxx = argv[1:5]
    blocks = re.findall(r"```c\n(.*?)```", open(readme).read(), flags=re.S)
    if not blocks:
        print("no C blocks in", readme)
        return 1
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i, block in enumerate(blocks):
            src = os.path.join(tmp, "snippet%d.c" % i)
            with open(src, "w") as f:
                f.write(program(block))
            for compiler, lang in ((cc, ["-x", "c", "-std=c11"]), (cxx, ["-x", "c++", "-std=c++17"])):
                cmd = [compiler] + lang + ["-Wall", "-Wextra", "-Wpedantic", "-Werror",
                                           "-Wno-unused-function", "-Wno-unused-but-set-variable",
                                           "-fsyntax-only", "-I", incdir, src]
                r = subprocess.run(cmd, capture_output=True, text=True)
                status = "ok" if r.returncode == 0 else "FAIL"
                print("README block %d as %s: %s" % (i + 1, lang[-1], status))
                if r.returncode:
                    print(r.stderr)
                    failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
