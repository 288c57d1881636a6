#!/usr/bin/env python3
"""Smoke test of rq_bench --spin-pause and --spin-us.

--spin-pause: every transport that spins runs with pauses after its empty
polls and still delivers every message intact (--quick checks every
byte), and the JSON reports the polls that found nothing per message on
both sides.  A blocking call never returns "try again", so the blocking
rows must report none; a busy receiver started beside its sender finds
nothing at least once, so the busy rows together must report some.

--spin-us: rq's blocking round trips, run without a spin and with the
longest (rq_set_spin_us, 1 s).  Without it each side sleeps for every
reply, so rq's own wait and wake counters move several times a round
trip; with it a reply comes well within the spin, so they hardly move.

    spin_smoke.py RQ_BENCH
"""
import json
import os
import subprocess
import sys
import tempfile

SPINNING = ("rq-spsc,rq-spsc-zc,rq-spsc-burst,rq-mpsc-2p,min-ring,min-ring-burst,mutex-ring-1p,"
            "pipe,unix")


def run_json(bench, args):
    """rq_bench ARGS with --json: the document, or exit with its output."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.json")
        run = subprocess.run([bench] + args + ["--json", out], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, timeout=240)
        if run.returncode != 0:
            sys.exit("rq_bench %s failed (%d):\n%s" % (" ".join(args), run.returncode, run.stdout))
        with open(out) as f:
            return json.load(f)


def waits_per_round_trip(bench, spin_us):
    """rq-spsc's blocking round trip with --spin-us SPIN_US: rq's wait and
    wake calls per round trip."""
    doc = run_json(bench, ["--quick", "-t", "rq-spsc", "-s", "64", "--no-throughput",
                           "--lat-modes", "block", "--spin-us", str(spin_us)])
    if doc["options"]["spin_us"] != spin_us:
        sys.exit("options.spin_us is %r, not %d" % (doc["options"]["spin_us"], spin_us))
    rows = [r for r in doc["results"] if "round_trip" in r]
    if len(rows) != 1 or not rows[0]["round_trip"]["ok"]:
        sys.exit("--spin-us %d: not one good round-trip row: %r" % (spin_us, rows))
    v = rows[0]["round_trip"].get("rq_waits_wakes_per_rt")
    if not isinstance(v, (int, float)):
        sys.exit("--spin-us %d: rq_waits_wakes_per_rt is %r" % (spin_us, v))
    return v


def check_spin_us(bench):
    asleep = waits_per_round_trip(bench, 0)
    spun = waits_per_round_trip(bench, 1000000)
    if asleep < 1:
        sys.exit("without a spin, %.3f wait and wake calls a round trip: not counted?" % asleep)
    if spun > 0.5:
        sys.exit("with a 1 s spin, %.3f wait and wake calls a round trip (%.3f without): "
                 "the spin is not applied" % (spun, asleep))
    print("--spin-us: %.3f wait and wake calls a round trip without a spin, %.3f with" %
          (asleep, spun))


def main():
    bench = sys.argv[1]
    check_spin_us(bench)
    doc = run_json(bench, ["--quick", "-t", SPINNING, "--no-latency", "--spin-pause", "16"])
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
