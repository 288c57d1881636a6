#!/usr/bin/env python3
"""bridge_bench.py - rq-bridge out beside a plain libnats JetStream
asynchronous publisher, same 64-byte messages, same nats-server, rounds
interleaved (the order rotated from round to round), out on a slot queue
with message ids, the same with --dedupe last-sequence, and out on a
record queue; rq-bridge in filling a queue from a stream; then the
end-to-end latency push -> rq-bridge out -> stream -> rq-bridge in -> pop,
one message at a time, with out in either mode (docs/bridge.md,
Performance).

    python3 bench/bridge_bench.py BUILD/tools/bridge/rq-bridge BUILD/tests/bridge_util [ROUNDS]

Starts nats-server on a free loopback port with a temporary storage
directory and stops it at the end.  Prints one line per figure with the
median and the spread (min..max) over the rounds.  RQ_BRIDGE_BENCH_OUT_ONLY=1
stops after the publishers and out (no in, no latency).

RQ_BRIDGE_BENCH_HEADERS=1 runs only the plain publisher with each kind of
header (`bridge_util bench-pub-opts` MODE; docs/bridge.md, "What the server
charges for a header"), every variant once a round on a stream of its own,
the order rotated from round to round, and prints per variant the
nats-server's CPU time per message (utime + stime from /proc/PID/stat
around the run), the publisher's own and its rate, and per round the ratios
to the run without a header: the server's CPU, the server's and the
publisher's together, and the rate.
"""
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

BRIDGE, UTIL = sys.argv[1], sys.argv[2]
ROUNDS = int(sys.argv[3]) if len(sys.argv) > 3 else 5
PUB_COUNT, OUT_COUNT, SIZE, LAT_COUNT = [int(x) for x in os.environ.get("RQ_BRIDGE_BENCH", "100000 100000 64 2000").split()]
IN_COUNT = 20000  # rq-bridge in: stream messages into a queue of 32,768 slots
WINDOW = os.environ.get("RQ_BRIDGE_WINDOW", "4096")  # rq-bridge out --window


def util(*args):
    p = subprocess.run([UTIL, *map(str, args)], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit("bridge_util %s failed: %s" % (" ".join(map(str, args)), p.stderr))
    return p.stdout


def depth(q):
    return int(util("depth", q))


def running(status):
    try:
        with open(status) as f:
            return json.load(f).get("state") == "running"
    except (OSError, ValueError):
        return False


def spread(name, values, unit):
    print("%-34s median %10.0f  min %10.0f  max %10.0f  %s" % (name, statistics.median(values), min(values),
                                                              max(values), unit))


def time_out(url, q, status, subject="b.out", extra=()):
    """rq-bridge out draining OUT_COUNT messages pushed into queue Q: msg/s.
    Timed from the first push into the empty queue, the bridge connected
    and waiting (as the publisher's time excludes its connect), to the last
    release, in one process."""
    b = subprocess.Popen([BRIDGE, "out", "--server", url, "--queue", q, "--subject", subject,
                          "--window", WINDOW, "--status", status, *extra], stderr=subprocess.DEVNULL)
    until = time.monotonic() + 30
    while running(status) is False and time.monotonic() < until:
        time.sleep(0.01)
    rate = float(util("fill-wait", q, OUT_COUNT, SIZE))
    b.send_signal(signal.SIGTERM)
    b.wait()
    return rate


def ratio(name, a, b):
    ratios = [x / y for x, y in zip(a, b)]
    print("%-34s median %10.3f  min %10.3f  max %10.3f" % (name, statistics.median(ratios),
                                                          min(ratios), max(ratios)))


def report(pub, ids, out, ls, rec, inn):
    spread("plain async publisher", pub, "msg/s")
    spread("plain, with message ids", ids, "msg/s")
    spread("rq-bridge out", out, "msg/s")
    spread("rq-bridge out, last-sequence", ls, "msg/s")
    spread("rq-bridge out, record queue", rec, "msg/s")
    if inn:
        spread("rq-bridge in (stream -> queue)", inn, "msg/s")
    ratio("ratio out / plain", out, pub)
    ratio("ratio out last-sequence / plain", ls, pub)
    ratio("ratio out last-sequence / out", ls, out)
    ratio("ratio out / plain with ids", out, ids)
    ratio("ratio plain with ids / plain", ids, pub)
    ratio("ratio out records / out slots", rec, out)


# (label, bench-pub-opts MODE, duplicate window in ms or 0 for the default 2 min)
HEADER_VARIANTS = [("no header", "plain", 0),
                   ("Rq-Pos: N (a custom header)", "custom", 0),
                   ("its text in the payload instead", "payload", 0),
                   ("Nats-Msg-Id, window 2 min", "id", 0),
                   ("Nats-Msg-Id, window 1 s", "id", 1000),
                   ("Nats-Expected-Last-Sequence", "expect-seq", 0),
                   ("Nats-Expected-Last-Subject-Seq", "expect-subject-seq", 0),
                   ("Expected-Last-Sequence + Rq-Pos", "expect-seq-pos", 0)]


def server_cpu(pid):
    """The server's utime + stime so far, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def headers(url, pid):
    n = len(HEADER_VARIANTS)
    for i, (_, _, dup) in enumerate(HEADER_VARIANTS):
        util("stream-create-dup", url, "HDR%d" % i, "h.%d" % i, 1024, dup)
    srv, cli, rate = ([[] for _ in range(n)] for _ in range(3))
    load = [os.getloadavg()[0]]
    for r in range(ROUNDS):
        for k in range(n):
            i = (r + k) % n
            util("stream-purge", url, "HDR%d" % i)  # untimed: the store does not grow
            c0 = server_cpu(pid)
            out = util("bench-pub-opts", url, "h.%d" % i, PUB_COUNT, SIZE, 4096, HEADER_VARIANTS[i][1])
            srv[i].append((server_cpu(pid) - c0) * 1e6 / (PUB_COUNT + 1))  # + the first publish
            rate[i].append(float(out.split()[0]))
            cli[i].append(float(out.split()[1]))
        load.append(os.getloadavg()[0])
    print("load average (1 min) over the rounds: %.1f-%.1f" % (min(load), max(load)))
    for what, values, unit in (("server CPU per message", srv, "us"),
                               ("publisher CPU per message", cli, "us"),
                               ("publisher's rate", rate, "msg/s")):
        print(what)
        for i, v in enumerate(values):
            print("  %-32s median %10.2f  min %10.2f  max %10.2f  %s" % (HEADER_VARIANTS[i][0], statistics.median(v),
                                                                         min(v), max(v), unit))
    both = [[x + y for x, y in zip(srv[i], cli[i])] for i in range(n)]
    for what, values in (("server CPU without a header / with it, per round", srv),
                         ("server + publisher CPU without a header / with it", both)):
        print(what)
        for i in range(1, n):
            ratio("  " + HEADER_VARIANTS[i][0], values[0], values[i])
    print("publisher's rate with it / without a header, per round")
    for i in range(1, n):
        ratio("  " + HEADER_VARIANTS[i][0], rate[i], rate[0])


def main():
    tmp = tempfile.mkdtemp(prefix="rq-bridge-bench.")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = "nats://127.0.0.1:%d" % port
    server = subprocess.Popen(["nats-server", "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", tmp],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    queues = []
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        if os.environ.get("RQ_BRIDGE_BENCH_HEADERS"):
            headers(url, server.pid)
            return
        util("stream-create", url, "BPUB", "b.pub", 1024)
        util("stream-create", url, "BOUT", "b.out", 1024)
        util("stream-create", url, "BLS", "b.ls", 1024)
        pub, ids, out, ls, rec = [], [], [], [], []
        def new_queue(tag, records=False):
            q = "bridge-bench.%d.%s" % (os.getpid(), tag)
            queues.append(q)
            if records:  # a record queue of about the same bytes
                util("create-records", q, 32768 * 128, 256)
            else:
                util("create", q, 32768, 128)
            return q
        runs = [
            lambda r: pub.append(float(util("bench-pub", url, "b.pub", PUB_COUNT, SIZE))),
            # The same with a message id per publish, as out's (the stream's
            # de-duplication): what the id alone costs.
            lambda r: ids.append(float(util("bench-pub-opts", url, "b.pub", PUB_COUNT, SIZE, 4096,
                                            "id").split()[0])),
            lambda r: out.append(time_out(url, new_queue("o%d" % r), os.path.join(tmp, "out%d.json" % r))),
            # --dedupe last-sequence (no message id) on a stream of its own.
            lambda r: ls.append(time_out(url, new_queue("l%d" % r), os.path.join(tmp, "ls%d.json" % r),
                                         "b.ls", ("--stream", "BLS", "--dedupe", "last-sequence"))),
            lambda r: rec.append(time_out(url, new_queue("r%d" % r, True), os.path.join(tmp, "rec%d.json" % r))),
        ]
        # Each round runs every variant once, the order rotated from round
        # to round, so that none always runs first or last.
        for r in range(ROUNDS):
            for k in range(len(runs)):
                runs[(r + k) % len(runs)](r)
        if os.environ.get("RQ_BRIDGE_BENCH_OUT_ONLY"):
            report(pub, ids, out, ls, rec, None)
            return
        # in: IN_COUNT stream messages into an empty queue, a new durable
        # consumer (from the stream's start) each round.
        inn = []
        util("stream-create", url, "BIN", "b.in", 1024)
        util("bench-pub", url, "b.in", IN_COUNT, SIZE)
        for r in range(ROUNDS):
            q = "bridge-bench.%d.in%d" % (os.getpid(), r)
            queues.append(q)
            util("create", q, 32768, 128)
            b = subprocess.Popen([BRIDGE, "in", "--server", url, "--queue", q, "--subject", "b.in",
                                  "--stream", "BIN", "--durable", "in%d" % r, "--batch", "256"],
                                 stderr=subprocess.DEVNULL)
            t0 = time.monotonic()
            while depth(q) < IN_COUNT and b.poll() is None:
                time.sleep(0.005)
            inn.append(IN_COUNT / (time.monotonic() - t0))
            b.send_signal(signal.SIGTERM)
            b.wait()
        report(pub, ids, out, ls, rec, inn)

        # out in both modes, each feeding in through a stream of its own.
        for mode, stream, extra in (("", "BLAT", ()),
                                    (" (out last-sequence)", "BLATL", ("--stream", "BLATL", "--dedupe", "last-sequence"))):
            subj = "b." + stream.lower()
            util("stream-create", url, stream, subj, 1024)
            qa, qb = ("bridge-bench.%d.%s%s" % (os.getpid(), stream, side) for side in "ab")
            queues += [qa, qb]
            util("create", qa, 1024, 256)
            util("create", qb, 1024, 256)
            kids = [subprocess.Popen([BRIDGE, "out", "--server", url, "--queue", qa, "--subject", subj, *extra],
                                     stderr=subprocess.DEVNULL),
                    subprocess.Popen([BRIDGE, "in", "--server", url, "--queue", qb, "--subject", subj,
                                      "--stream", stream, "--durable", "lat", "--batch", "1"],
                                     stderr=subprocess.DEVNULL)]
            time.sleep(0.5)
            lat = [util("latency", qa, qb, LAT_COUNT).split() for _ in range(ROUNDS)]
            for k in kids:
                k.send_signal(signal.SIGTERM)
                k.wait()
            for i, name in enumerate(("latency median", "latency p99", "latency max")):
                spread("push -> out -> in -> pop, " + name + mode, [float(x[i]) for x in lat], "us")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait()
        for q in queues:
            util("unlink", q)  # rq_unlink: the lock object and poll files go too
            for f in [f for f in os.listdir("/dev/shm")
                      if f.startswith("rqb.") and f.endswith("." + q)]:
                try:
                    os.unlink("/dev/shm/" + f)
                except FileNotFoundError:
                    pass
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
