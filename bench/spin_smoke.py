#!/usr/bin/env python3
"""Smoke test of rq_bench --spin-pause: every transport that spins runs
with pauses after its empty polls and still delivers every message intact
(--quick checks every byte), and the JSON reports the polls that found
nothing per message on both sides.  A blocking call never returns "try
again", so the blocking rows must report none; a busy receiver started
beside its sender finds nothing at least once, so the busy rows together
must report some.

    spin_smoke.py RQ_BENCH
"""
import json
import os
import subprocess
import sys
import tempfile

SPINNING = ("rq-spsc,rq-spsc-zc,rq-spsc-burst,rq-mpsc-2p,min-ring,min-ring-burst,mutex-ring-1p,"
            "pipe,unix")


def main():
    bench = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.json")
        run = subprocess.run([bench, "--quick", "-t", SPINNING, "--no-latency", "--spin-pause",
                              "16", "--json", out], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, timeout=240)
        if run.returncode != 0:
            sys.exit("rq_bench failed (%d):\n%s" % (run.returncode, run.stdout))
        with open(out) as f:
            doc = json.load(f)
    if doc["options"]["spin_pause"] != 16:
        sys.exit("options.spin_pause is %r, not 16" % doc["options"]["spin_pause"])
    rows = [r for r in doc["results"] if "throughput" in r]
    if len(rows) < len(SPINNING.split(",")):
        sys.exit("only %d throughput rows" % len(rows))
    busy_idle = 0.0
    for r in rows:
        tput = r["throughput"]
        name = "%s %s %s B" % (r["transport"], r["mode"], r["size"])
        if not tput["ok"]:
            sys.exit("%s failed: %s" % (name, tput.get("error")))
        for key in ("receiver_idle_polls_per_msg", "sender_idle_polls_per_msg"):
            v = tput.get(key)
            if not isinstance(v, (int, float)) or v < 0:
                sys.exit("%s: %s is %r" % (name, key, v))
            if r["mode"] == "block" and r["transport"].startswith("rq-") and v != 0:
                sys.exit("%s: a blocking row counted %s = %r" % (name, key, v))
        if r["mode"] == "busy":
            busy_idle += tput["receiver_idle_polls_per_msg"]
    if busy_idle <= 0:
        sys.exit("no busy receiver ever found its queue empty: the polls are not counted")
    print("%d rows, idle polls reported on both sides" % len(rows))


if __name__ == "__main__":
    main()
