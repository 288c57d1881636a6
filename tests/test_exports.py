#!/usr/bin/env python3
"""test_exports.py - the shared library exports exactly the functions that
include/rq.h declares: no function of rq.h missing (declared without
RQ_EXTERN, or not defined), no internal symbol (rq_plat_*, rq_ring_*, ...)
and no data symbol leaking.

    python3 tests/test_exports.py include/rq.h path/to/librq.so

The list comes from parsing rq.h, so a function added there is expected
in the library without editing this test.  `--self-test` checks the parser
and the comparison on made-up input.
"""
import re
import subprocess
import sys


def header_functions(text):
    """The names of the functions that a C header declares (prototypes at
    file scope; function-like macros, typedefs and struct bodies are not
    functions)."""
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    text = re.sub(r"\\\n", " ", text)  # join continued lines (macros)
    text = "\n".join(l for l in text.split("\n") if not l.lstrip().startswith("#"))
    text = text.replace('extern "C" {', " ")
    # Drop brace bodies (structs, enums), innermost first.
    while True:
        stripped = re.sub(r"\{[^{}]*\}", " ", text)
        if stripped == text:
            break
        text = stripped
    names = set()
    for stmt in text.split(";"):
        stmt = " ".join(stmt.split())
        if not stmt or stmt.startswith("typedef") or "(" not in stmt:
            continue
        # A prototype: a return type, then NAME(...), nothing after ')'.
        m = re.match(r"^[A-Za-z_][\w\s\*]*?[\s\*](\w+)\s*\((.*)\)$", stmt)
        if m and not re.match(r"^(enum|struct|union)\b", stmt):
            names.add(m.group(1))
    return names


def library_exports(lib):
    """name -> nm type letter of every defined dynamic symbol of LIB, less
    the symbol-version nodes (type A)."""
    out = subprocess.run(["nm", "-D", "--defined-only", lib], check=True,
                         capture_output=True, text=True).stdout
    syms = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        kind, name = parts[-2], parts[-1].split("@")[0]
        if kind == "A":
            continue
        syms[name] = kind
    return syms


def compare(declared, exported):
    """The list of problems (empty if the two agree)."""
    problems = []
    for name in sorted(declared - set(exported)):
        problems.append("declared in rq.h but not exported: %s "
                        "(RQ_EXTERN missing, or not defined)" % name)
    for name in sorted(set(exported) - declared):
        problems.append("exported but not a function of rq.h: %s (%s)" % (name, exported[name]))
    for name in sorted(declared & set(exported)):
        if exported[name] not in "TtWi":
            problems.append("%s is exported as a %s symbol, not a function" % (name, exported[name]))
    return problems


SAMPLE = r'''
#define RQ_ERRNO_MAP(XX) XX(EAGAIN, -1, "x") \
    XX(ETIMEDOUT, -2, "y (z)")
typedef enum rq_error { RQ_OK = 0, RQ_ERRNO_MAP(E) } rq_error;
/* int rq_commented(void); */
typedef struct rq_config { uint32_t a; int (*fn)(int); } rq_config;
#ifdef __cplusplus
extern "C" {
#endif
RQ_EXTERN int rq_open(rq **out, const char *name, int role,
                      const rq_config *cfg);
RQ_EXTERN const char *rq_strerror(int err);
void rq_close(rq *q);
int rq_coalesce_open(rq_coalesce **out, const char *name, int role, uint32_t mode);
#ifdef __cplusplus
}
#endif
'''


def self_test():
    got = header_functions(SAMPLE)
    want = {"rq_open", "rq_strerror", "rq_close", "rq_coalesce_open"}
    assert got == want, got
    assert compare(want, {n: "T" for n in want}) == []
    assert len(compare(want, {"rq_open": "T", "rq_strerror": "T", "rq_close": "T"})) == 1
    leaky = {n: "T" for n in want}
    leaky["rq_plat_kill_self"] = "T"
    leaky["rq_some_table"] = "D"
    assert len(compare(want, leaky)) == 2
    print("self-test: ok")


def main(argv):
    if argv[1:] == ["--self-test"]:
        self_test()
        return 0
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[1]) as f:
        declared = header_functions(f.read())
    if len(declared) < 10:
        print("only %d functions found in %s: the parser is broken" % (len(declared), argv[1]))
        return 1
    exported = library_exports(argv[2])
    problems = compare(declared, exported)
    for p in problems:
        print(p)
    print("%d functions in %s, %d symbols exported by %s: %s"
          % (len(declared), argv[1], len(exported), argv[2], "FAIL" if problems else "ok"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
