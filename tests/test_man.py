#!/usr/bin/env python3
"""test_man.py - the manual pages: every function of rq.h has a page in
man/man3 (its own, or a `.so` link to its family's page, which must
exist), every page is free of groff warnings (`groff -man -ww -z`; any
output fails), and every page names the release rq.h gives.

    python3 tests/test_man.py MAN_DIR include/rq.h
"""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_exports import header_functions  # noqa: E402


def main(argv):
    mandir, header = argv[1], argv[2]
    text = open(header).read()
    version = ".".join(re.search(r"#define RQ_VERSION_%s (\d+)" % p, text).group(1)
                       for p in ("MAJOR", "MINOR", "PATCH"))
    problems = []
    for fn in sorted(header_functions(text)):
        if not os.path.exists(os.path.join(mandir, "man3", fn + ".3")):
            problems.append("no page for %s (man/man3/%s.3)" % (fn, fn))
    pages = 0
    for section in ("man1", "man3"):
        for name in sorted(os.listdir(os.path.join(mandir, section))):
            path = os.path.join(mandir, section, name)
            body = open(path).read()
            m = re.match(r"\.so (\S+)\n?$", body)
            if m:
                if not os.path.exists(os.path.join(mandir, m.group(1))):
                    problems.append("%s: .so to a missing page %s" % (path, m.group(1)))
                continue
            pages += 1
            if '"rq %s"' % version not in body.split("\n", 1)[0]:
                problems.append("%s: .TH does not say rq %s" % (path, version))
            r = subprocess.run(["groff", "-man", "-ww", "-z", path], capture_output=True,
                               text=True)
            if r.returncode or r.stderr or r.stdout:
                problems.append("%s: groff: %s%s" % (path, r.stdout, r.stderr))
    for p in problems:
        print(p)
    print("%d pages checked: %s" % (pages, "FAIL" if problems else "ok"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
