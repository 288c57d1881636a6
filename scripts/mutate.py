#!/usr/bin/env python3
"""Mutation testing for rq: the helper behind scripts/mutate.sh.

Each mutant of tests/mutants/catalogue is one realistic bug: an exact text
of one source file and its replacement.  For each, this applies the change
to a scratch copy of the tree (build/mutate/tree, kept between runs), builds
the test binaries the mutant names in one configured build directory
(build/mutate/build, so a mutant costs an incremental build), runs those
tests until one fails, and prints a table: mutant, caught or not, by which
test, how long.  A find text that is not in its file exactly once makes the
entry "stale": a rewrite of the code must update the catalogue, never
silently skip a mutant.  The exit status is non-zero if any mutant survived,
is stale, did not build, or only hung until its time limit, or if the unmutated
tree fails the tests.
"""
import argparse
import fnmatch
import os
import re
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CATALOGUE = os.path.join(ROOT, "tests", "mutants", "catalogue")
WORK = os.path.join(ROOT, "build", "mutate")
TREE = os.path.join(WORK, "tree")
BUILD = os.path.join(WORK, "build")
TIMED_OUT = "timed out"
KEYS = ("file", "tests", "quick", "what", "limit")


class Mutant:
    def __init__(self, name, line):
        self.name, self.line = name, line
        self.file = self.tests = self.what = None
        self.quick, self.limit = False, None
        self.find = self.replace = None


def die(msg):
    sys.exit("mutate: " + msg)


def parse(path):
    """The catalogue: blocks of 'key: value' lines, each opened by
    'mutant: NAME', with the exact text between '--- find' and
    '--- replace' and its replacement up to '--- end' (taken verbatim)."""
    mutants, cur, block, buf = [], None, None, []
    with open(path) as f:
        lines = f.read().split("\n")
    for n, line in enumerate(lines, 1):
        if block:
            if line in ("--- replace", "--- end"):
                text = "\n".join(buf) + "\n"
                if block == "find":
                    cur.find = text
                    if line != "--- replace":
                        die(f"{path}:{n}: '--- replace' expected")
                    block, buf = "replace", []
                else:
                    if line != "--- end":
                        die(f"{path}:{n}: '--- end' expected")
                    cur.replace = "" if buf == [] else text
                    block, buf = None, []
            else:
                buf.append(line)
            continue
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line == "--- find":
            if not cur or cur.find is not None:
                die(f"{path}:{n}: '--- find' outside a mutant, or twice")
            block, buf = "find", []
            continue
        key, sep, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if not sep:
            die(f"{path}:{n}: not 'key: value': {line!r}")
        if key == "mutant":
            cur = Mutant(value, n)
            mutants.append(cur)
        elif cur is None or key not in KEYS:
            die(f"{path}:{n}: unknown key {key!r}")
        elif key == "quick":
            cur.quick = value == "yes"
        elif key == "limit":
            cur.limit = int(value)
        else:
            setattr(cur, key, value)
    if block:
        die(f"{path}: the last mutant's text is not closed with '--- end'")
    names = set()
    for m in mutants:
        if not (m.file and m.tests and m.find is not None and m.replace is not None):
            die(f"{path}:{m.line}: mutant {m.name} needs file, tests, find and replace")
        if m.name in names:
            die(f"{path}:{m.line}: mutant {m.name} twice")
        names.add(m.name)
    return mutants


def sh(cmd, **kw):
    return subprocess.run(cmd, cwd=kw.pop("cwd", ROOT), text=True, capture_output=True, **kw)


def sync_tree():
    """Copies the work tree's files (tracked and new, not ignored) into the
    scratch tree, writing only those whose content differs, so that the
    build stays incremental.  Files are written, not copied with their
    times: a restored file must look newer than the mutant's objects."""
    out = sh(["git", "ls-files", "-co", "--exclude-standard", "-z"]).stdout
    for rel in filter(None, out.split("\0")):
        src = os.path.join(ROOT, rel)
        if not os.path.isfile(src):
            continue
        restore(rel, open(src, "rb").read())


def restore(rel, data):
    dst = os.path.join(TREE, rel)
    if os.path.isfile(dst) and open(dst, "rb").read() == data:
        return
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    with open(dst, "wb") as f:
        f.write(data)
    shutil.copymode(os.path.join(ROOT, rel), dst)


def configure():
    """Configures the scratch build, or configures it again: a target that a
    changed CMakeLists.txt added (a new test) is unknown to make until
    then, and "--target" fails before make would regenerate by itself."""
    if os.path.isfile(os.path.join(BUILD, "CMakeCache.txt")):
        r = sh(["cmake", BUILD])
        if r.returncode:
            die("cmake configure failed:\n" + r.stdout + r.stderr)
        return
    r = sh(["cmake", "-S", TREE, "-B", BUILD, "-DCMAKE_BUILD_TYPE=Debug",
            "-DRQ_FAULT_INJECTION=ON", "-DRQ_WERROR=OFF", "-DRQ_INSTALL=OFF",
            "-DRQ_BUILD_EXAMPLES=ON"])
    if r.returncode:
        die("cmake configure failed:\n" + r.stdout + r.stderr)


def targets_of(tests):
    """Build targets for test items: 'test_x[:filter]' or 'ctest:NAME[:filter]'."""
    out = set()
    for t in tests:
        if t.startswith("ctest:"):
            name = t[6:].partition(":")[0]
            if name == "test_bridge":  # a script: the bridge and its helpers
                out.update(("rq-bridge", "bridge_util", "rqctl"))
                continue
            out.add("rq_bench" if name.startswith("bench_smoke") else
                    "rqctl" if name == "test_rqctl" else name)
            if name == "test_exactly_once":  # runs the example consumer
                out.add("rq_exactly_once")
        else:
            out.add(t.split(":")[0])
    return sorted(out)


def build(targets, jobs):
    r = sh(["cmake", "--build", BUILD, "-j", str(jobs), "--target"] + targets)
    return r.returncode == 0, r.stdout + r.stderr


# The shared-memory objects a test makes carry its pid ("rq.t.PID.N.tag",
# "rqtl.th.PID", tests/helpers.c).  A test a mutant crashed, or one killed
# at its time limit, leaves them behind: removed once their process is gone.
SHM_DIR = "/dev/shm"
TEST_OBJECT = re.compile(r"^rq[a-z]*\.(?:t|th)\.(\d+)(?:\.|$)")


def remove_stray_objects():
    if not os.path.isdir(SHM_DIR):
        return
    for name in os.listdir(SHM_DIR):
        m = TEST_OBJECT.match(name)
        if m and not os.path.exists("/proc/" + m.group(1)):
            try:
                os.unlink(os.path.join(SHM_DIR, name))
            except OSError:
                pass  # gone already, or not ours to remove


def run_test(item, limit):
    """Runs one test item; returns (passed, seconds, last lines of output)."""
    try:
        return run_test_once(item, limit)
    finally:
        remove_stray_objects()


def run_test_once(item, limit):
    env = dict(os.environ)
    if item.startswith("ctest:"):
        name, _, pattern = item[6:].partition(":")
        cmd = ["ctest", "--test-dir", BUILD, "-R", "^" + name + "$",
               "--timeout", str(max(1, int(limit))), "--output-on-failure"]
        cwd = BUILD
        if pattern:  # test_bridge.py takes it as unittest's -k (none matching: it fails)
            env["RQ_TEST_FILTER"] = pattern
    else:
        binary, _, pattern = item.partition(":")
        cmd = [os.path.join(BUILD, "tests", binary)]
        cwd = os.path.join(BUILD, "tests")
        if pattern:
            env["RQ_TEST_FILTER"] = pattern
    t0 = time.monotonic()
    try:
        # A new session, so that a timeout ends the test's children too.
        p = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            out, _ = p.communicate(timeout=max(1.0, limit))
            ok = p.returncode == 0
            if item.startswith("ctest:") and ok and "No tests were found" in out:
                ok, out = False, "ctest found no test " + item[6:]
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, 9)
            out, _ = p.communicate()
            return False, time.monotonic() - t0, TIMED_OUT + " after %.0f s" % limit
    except OSError as e:
        return False, time.monotonic() - t0, str(e)
    if ok and pattern_of(item) and "[==========] 0 test(s) run" in out:
        die("%s: no test matches the pattern (a renamed test? update the catalogue)" % item)
    return ok, time.monotonic() - t0, out


def pattern_of(item):
    """A cmocka binary's pattern (a ctest item's goes to its script)."""
    return "" if item.startswith("ctest:") else item.partition(":")[2]


def tail(text, n=4):
    lines = [l for l in text.splitlines() if l.strip()]
    return "\n".join("      " + l for l in lines[-n:])


def run_tests(items, limit):
    """Runs ITEMS in turn until one fails: (failed item or None, seconds,
    output of the failure)."""
    start = time.monotonic()
    for item in items:
        left = limit - (time.monotonic() - start)
        ok, secs, out = run_test(item, left)
        if not ok:
            return item, time.monotonic() - start, out
    return None, time.monotonic() - start, ""


def main():
    ap = argparse.ArgumentParser(description="rq mutation testing (tests/mutants/catalogue)")
    ap.add_argument("--quick", action="store_true", help="only the mutants marked quick")
    ap.add_argument("--only", action="append", default=[], metavar="NAME",
                    help="only this mutant (a pattern: * and ?; may be repeated)")
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    ap.add_argument("--limit", type=int, default=60,
                    help="seconds of testing per mutant, unless its entry says (default 60)")
    ap.add_argument("--jobs", type=int, default=2, help="build jobs (default 2)")
    ap.add_argument("--no-baseline", action="store_true",
                    help="skip the run of the same tests on the unmutated tree")
    ap.add_argument("--verbose", action="store_true", help="show the failing output")
    a = ap.parse_args()

    mutants = parse(CATALOGUE)
    if a.quick:
        mutants = [m for m in mutants if m.quick]
    if a.only:
        mutants = [m for m in mutants if any(fnmatch.fnmatch(m.name, p) for p in a.only)]
        if not mutants:
            die("no mutant matches " + ", ".join(a.only))
    if a.list:
        stale = 0
        for m in mutants:
            path = os.path.join(ROOT, m.file)
            hits = open(path).read().count(m.find) if os.path.isfile(path) else 0
            stale += hits != 1
            print("%-36s %-16s %s%s%s" % (m.name, m.file, m.tests, "  [quick]" if m.quick else "",
                                          "" if hits == 1 else "  STALE (%d matches)" % hits))
            if m.what:
                print("    " + m.what)
        print("%d mutants, %d quick, %d stale" % (len(mutants), sum(m.quick for m in mutants), stale))
        return 1 if stale else 0

    t_start = time.monotonic()
    os.makedirs(TREE, exist_ok=True)
    sync_tree()
    configure()
    pristine = {}
    all_items = []
    for m in mutants:
        path = os.path.join(TREE, m.file)
        if m.file not in pristine:
            if not os.path.isfile(path):
                pristine[m.file] = None
                continue
            pristine[m.file] = open(path, "rb").read()
        for t in m.tests.split():
            if t not in all_items:
                all_items.append(t)

    if not a.no_baseline:
        ok, out = build(targets_of(all_items), a.jobs)
        if not ok:
            die("the unmutated tree does not build:\n" + out[-3000:])
        failed, secs, out = run_tests(all_items, 600)
        if failed:
            die("the unmutated tree fails %s (%.1f s); fix that first:\n%s"
                % (failed, secs, tail(out, 20)))
        print("baseline: the unmutated tree passes %d test runs in %.1f s"
              % (len(all_items), secs), flush=True)

    rows, bad = [], 0
    print("%-36s %-9s %-64s %7s %7s" % ("mutant", "result", "caught by", "build s", "test s"))
    for m in mutants:
        data = pristine.get(m.file)
        text = data.decode() if data is not None else None
        hits = text.count(m.find) if text is not None else 0
        if hits != 1:
            why = "file missing" if text is None else "find text %s" % (
                "not found" if hits == 0 else "found %d times" % hits)
            row = (m.name, "STALE", why, 0.0, 0.0)
        else:
            mutated = text.replace(m.find, m.replace)
            restore(m.file, mutated.encode())
            items = m.tests.split()
            t0 = time.monotonic()
            ok, out = build(targets_of(items), a.jobs)
            bsecs = time.monotonic() - t0
            if not ok:
                errors = [l for l in out.splitlines() if "error" in l] or ["?"]
                row = (m.name, "NO BUILD", errors[0].strip()[:64], bsecs, 0.0)
            else:
                failed, tsecs, out = run_tests(items, m.limit or a.limit)
                if failed and out.startswith(TIMED_OUT):
                    # Only a failure counts: a hang at the limit is no catch.
                    row = (m.name, "TIMEOUT", failed, bsecs, tsecs)
                elif failed:
                    row = (m.name, "caught", failed, bsecs, tsecs)
                    if a.verbose:
                        print(tail(out, 6))
                else:
                    row = (m.name, "SURVIVED", "(" + " ".join(items) + ")", bsecs, tsecs)
            restore(m.file, data)
        if row[1] != "caught":
            bad += 1
        rows.append(row)
        print("%-36s %-9s %-64s %7.1f %7.1f" % row, flush=True)
    # Leave the scratch tree as the work tree is.
    for rel, data in pristine.items():
        if data is not None:
            restore(rel, data)
    caught = sum(1 for r in rows if r[1] == "caught")
    slowest = max((r[4] for r in rows if r[1] == "caught"), default=0.0)
    print("score: %d of %d mutants caught (slowest catch %.1f s of testing); %.0f s in all"
          % (caught, len(rows), slowest, time.monotonic() - t_start))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
