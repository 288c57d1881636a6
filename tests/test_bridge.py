#!/usr/bin/env python3
"""test_bridge.py - rq-bridge against a real nats-server, started here with
JetStream on a free loopback port and a temporary storage directory.

    RQCTL=path/to/rqctl python3 tests/test_bridge.py path/to/rq-bridge path/to/bridge_util

Kill tortures of both directions, a server restart under load, a missing
server and a message too large for the stream.  Exits 77 (ctest: skipped,
with a message) only when nats-server is not installed; scripts/test-all.sh
installs it, so CI never skips.  Linux only.
"""
import json
import os
import re
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

BRIDGE = UTIL = None
RQCTL = os.environ.get("RQCTL")  # rqctl, for its view of the bridges
SKIP = 77
_counter = 0


def fresh(tag):
    """A queue name no other test (or earlier run) uses."""
    global _counter
    _counter += 1
    name = "bridge-test.%d.%d.%s" % (os.getpid(), _counter, tag)
    unlink_queue(name)
    return name


def unlink_queue(name):
    """The queue (rq_unlink: its lock object and poll files too, which a
    plain removal of rq.NAME left behind) and the status files bridges
    left beside it.  Every side must be stopped first: a lock still held
    keeps the lock object."""
    util("unlink", name)
    files = [f for f in os.listdir("/dev/shm")
             if f.startswith(("rqb.", "rqbt.")) and f.endswith("." + name)]
    for f in files:
        try:
            os.unlink("/dev/shm/" + f)
        except FileNotFoundError:
            pass


def bridge_files(name):
    return sorted(f for f in os.listdir("/dev/shm")
                  if f.startswith(("rqb.", "rqbt.")) and f.endswith("." + name))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fnv(text):
    h = 2166136261
    for b in text.encode():
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h


def check_payload(test, payload, tag, i):
    """bridge_util's messages: "TAG I CHECKSUM", the checksum over "TAG I "."""
    head = "%s %d " % (tag, i)
    test.assertEqual(payload, "%s%08x" % (head, fnv(head)))


def wait_until(predicate, seconds):
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def util(*args, timeout=60):
    p = subprocess.run([UTIL, *map(str, args)], capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise AssertionError("bridge_util %s: exit %d: %s" % (args, p.returncode, p.stderr))
    return p.stdout


class Server:
    """nats-server with JetStream on 127.0.0.1:PORT, storage in DIR."""

    def __init__(self, port, store, log, conf=None, user=None):
        self.port, self.store, self.log, self.conf = port, store, log, conf
        self.proc = None
        self.url = "nats://%s127.0.0.1:%d" % (user + "@" if user else "", port)

    def start(self):
        self.proc = subprocess.Popen(
            ["nats-server", "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", self.store] +
            (["-c", self.conf] if self.conf else []),
            stdout=self.log, stderr=subprocess.STDOUT)

        def up():
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return True
            except OSError:
                return False
        if not wait_until(up, 15):
            raise AssertionError("nats-server did not come up on port %d" % self.port)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


class HoldingRelay:
    """A TCP relay in front of the server.  What a client sends passes on
    until hold(); from then on it is kept, as bytes in a socket buffer the
    server has not read yet, and release() sends it all, in order, even when
    the client is gone (killed): the late copies a dead bridge leaves."""

    def __init__(self, port):
        self.port_to = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = "nats://127.0.0.1:%d" % self.listener.getsockname()[1]
        self.holding, self.released, self.flushed = False, threading.Event(), threading.Event()
        self.held = []
        self.answers = 0  # messages from the server after the release (the copies' acks)
        self.lock = threading.Lock()
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.port_to))
            threading.Thread(target=self.to_server, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self.to_client, args=(upstream, client), daemon=True).start()

    def to_server(self, client, upstream):
        while True:
            try:
                data = client.recv(65536)
            except OSError:
                data = b""
            if not data:
                break
            with self.lock:
                if self.holding:
                    self.held.append(data)
                    continue
            upstream.sendall(data)
        # The client is gone: what it sent still reaches the server.
        if self.holding:
            self.released.wait(60)
            upstream.sendall(b"".join(self.held))
            self.flushed.set()
        time.sleep(1.0)  # the server answers before the connection ends
        upstream.close()

    def to_client(self, upstream, client):
        alive = True
        while True:
            try:
                data = upstream.recv(65536)
            except OSError:
                break
            if not data:
                break
            if self.released.is_set():  # set before the held bytes go: no answer missed
                with self.lock:
                    self.answers += data.count(b"MSG ")  # HMSG too
            if alive:
                try:
                    client.sendall(data)
                except OSError:
                    alive = False  # the client died: keep draining the server's answers
        client.close()

    def hold(self):
        with self.lock:
            self.holding = True

    def held_publishes(self):
        with self.lock:
            return b"".join(self.held).count(b"HPUB ")

    def release(self):
        self.released.set()
        if not self.flushed.wait(30):
            raise AssertionError("the relay never passed the held bytes on")

    def answered(self):
        with self.lock:
            return self.answers

    def close(self):
        self.listener.close()


class BridgeCase(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="rq-bridge-test.")
        self.log = open(os.path.join(self.dir, "nats-server.log"), "w")
        self.server = Server(free_port(), os.path.join(self.dir, "js"), self.log)
        self.server.start()
        self.children = []
        self.queues = []
        self.files = []

    def tearDown(self):
        for child in self.children:
            if child.poll() is None:
                child.kill()
            child.wait()
        self.server.stop()
        self.log.close()
        for f in self.files:
            f.close()
        for name in self.queues:
            unlink_queue(name)
        # Every side is gone and unlinked: nothing of the test's queues may
        # stay in /dev/shm (the names hold this process's pid, so another
        # run's objects never count).
        left = [f for f in os.listdir("/dev/shm")
                for name in self.queues if f.endswith("." + name)]
        self.assertEqual(left, [], "objects left in /dev/shm")
        # Under the ASan preset a sanitizer report in any child, even one
        # killed later, fails the test.
        reports = []
        for name in sorted(os.listdir(self.dir)):
            if name.endswith(".err"):
                with open(os.path.join(self.dir, name), errors="replace") as f:
                    text = f.read()
                if "Sanitizer" in text or "runtime error:" in text:
                    reports.append("%s:\n%s" % (name, text[:4000]))
        shutil.rmtree(self.dir, ignore_errors=True)
        self.assertEqual(reports, [], "sanitizer reports")

    def queue(self, tag):
        name = fresh(tag)
        self.queues.append(name)
        return name

    def open(self, name, mode="w"):
        f = open(os.path.join(self.dir, name), mode)
        self.files.append(f)
        return f

    def spawn(self, argv, stdout=subprocess.DEVNULL, stderr=None, tag="child", env=None):
        if stderr is None:
            stderr = self.open("%s.%d.err" % (tag, len(self.children)))
        p = subprocess.Popen([str(a) for a in argv], stdout=stdout, stderr=stderr,
                             env=dict(os.environ, **env) if env else None)
        self.children.append(p)
        return p

    def bridge(self, direction, *args, url=None, tag="bridge", stderr=None, env=None):
        return self.spawn([BRIDGE, direction, "--server", url or self.server.url, *args],
                          stderr=stderr, tag=tag, env=env)

    def stop(self, proc, what):
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(proc.wait(15), 0, "%s did not stop cleanly on SIGTERM" % what)

    def wait_drained(self, q):
        self.assertTrue(wait_until(lambda: util("depth", q).strip() == "0", 15), "the queue never drained")

    def out_until_drained(self, q, *args, **kw):
        """Runs rq-bridge out with ARGS until queue Q is empty, then stops it
        with SIGTERM (it must exit 0)."""
        p = self.bridge("out", *args, **kw)
        self.wait_drained(q)
        self.stop(p, "rq-bridge out")

    def wait_stopped(self, proc, what):
        """Waits until PROC has stopped itself (SIGSTOP, a crash point's :stop)."""
        def stopped():
            with open("/proc/%d/stat" % proc.pid) as f:
                return f.read().rsplit(")", 1)[1].split()[0] == "T"
        self.assertTrue(wait_until(stopped, 15), what)

    def status(self, path):
        try:
            with open(path) as f:
                return json.load(f)
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def stream(self, name):
        out = []
        for line in util("stream-read", self.server.url, name).splitlines():
            seq, payload = line.split("\t", 1)
            out.append((int(seq), payload))
        return out

    def check_stream_once_in_order(self, name, count):
        got = [p for _, p in self.stream(name)]
        self.assertEqual(len(got), count, "stream %s holds %d messages, %d pushed" % (name, len(got), count))
        for i, payload in enumerate(got):
            check_payload(self, payload, "m", i)

    def kill_randomly(self, times, start, alongside, low=0.01, high=0.15):
        """Starts a bridge with START() and SIGKILLs it at a random moment,
        TIMES times; returns how many of the kills came while the process
        ALONGSIDE (the producer) was still running."""
        during = 0
        for _ in range(times):
            p = start()
            time.sleep(random.uniform(low, high))
            p.kill()
            p.wait()
            during += alongside.poll() is None
        return during

    def read_drain(self, proc, path, timeout):
        """Waits for bridge_util drain; returns its kept records and the
        number of duplicates it dropped."""
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        records, dups = [], 0
        with open(path) as f:
            for line in f:
                parts = line.split(" ", 3)
                if parts[0] == "rec":
                    records.append((int(parts[1]), int(parts[2]), parts[3].rstrip("\n")))
                elif parts[0] == "dup":
                    dups += 1
                else:
                    self.fail("drain read something not written by the bridge: %r" % line)
        return records, dups

    def crash_at(self, point, n, direction, *args):
        """Runs a bridge that kills itself at its N-th pass through the
        named crash point; returns its exit status (-9 when it did)."""
        env = dict(os.environ, RQ_BRIDGE_CRASH_POINT="%s:%d" % (point, n))
        p = subprocess.Popen([BRIDGE, direction, "--server", self.server.url, *map(str, args)], env=env,
                             stdout=subprocess.DEVNULL, stderr=self.open("crash.%d.err" % len(self.children)))
        self.children.append(p)
        try:
            return p.wait(15)
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGTERM)
            return p.wait(15)

    # ---- out ----------------------------------------------------------

    def test_out_crash_point(self):
        """out killed between the stream's acks and the release of the
        acknowledged prefix, 20 times: each time the next bridge republishes
        the messages in hand, flagged redelivered, the stream answers
        duplicate for those it had, and it holds every message once, in
        order."""
        self.out_crash_point("outcp", "OUTCP", records=False)

    def test_out_record_crash_point(self):
        """The same on a record queue (the same bursts: rq_peek_burst,
        rq_release_burst)."""
        self.out_crash_point("outrcp", "OUTRCP", records=True)

    def test_out_last_seq_crash_points(self):
        """--dedupe last-sequence: out killed between the stream's acks and
        the release, 20 times, and 10 times in its recovery between reading
        the stream's last message and releasing through it: each successor
        finds in the stream what its predecessor stored (counted as
        duplicates, never published again), and the stream holds every
        message once, in order."""
        self.out_crash_point("outls", "OUTLS", records=False, last_seq=True)

    def test_out_last_seq_record_crash_points(self):
        """The same on a record queue."""
        self.out_crash_point("outlsr", "OUTLSR", records=True, last_seq=True)

    def out_crash_point(self, tag, stream, records, last_seq=False):
        q, count, window = self.queue(tag), 2000, 8
        subject = "t." + tag
        util("stream-create", self.server.url, stream, subject, 4096)
        if records:
            util("create-records", q, 262144, 256)  # all COUNT fit: produced first
        util("produce", q, 0, count, 0, 0 if records else 4096)
        args = ("--queue", q, "--subject", subject, "--window", window)
        if last_seq:
            args += ("--stream", stream, "--dedupe", "last-sequence")
        for i in range(20):  # at most 20 x 10 windows of 8: the queue never runs dry
            self.assertEqual(self.crash_at("out.after_ack", random.randint(1, 10), "out", *args), -9)
            if last_seq and i % 2:  # the successor dies in its recovery's release
                self.assertEqual(self.crash_at("out.recovery_release", 1, "out", *args), -9)
        st = os.path.join(self.dir, tag + ".json")
        last = self.bridge("out", *args, "--status", st)
        self.assertTrue(wait_until(lambda: util("depth", q).strip() == "0", 30), "the queue never drained")
        self.stop(last, "rq-bridge out")
        s = self.status(st)
        # Acknowledged but not released at the kill: republished, answered
        # "duplicate".  The rest of the window in hand (peeked, flagged
        # redelivered) may not have reached the stream yet.
        self.assertTrue(1 <= s["duplicates"] <= s["redelivered"] <= window,
                        "the window in hand at the last kill was not republished as duplicates: %r" % s)
        if last_seq:  # found by its start's recovery, not published
            self.assertEqual(s["recoveries"], 1, s)
        self.check_stream_once_in_order(stream, count)

    # ---- rqctl stat ---------------------------------------------------

    def rqctl_bridges(self, q):
        """The bridges 'rqctl stat --json Q' shows."""
        p = subprocess.run([RQCTL, "stat", "--json", q], capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        return json.loads(p.stdout)["bridges"]

    def wait_bridges(self, q, predicate, what, seconds=20):
        seen = []

        def check():
            seen[:] = self.rqctl_bridges(q)
            return predicate(seen)
        self.assertTrue(wait_until(check, seconds), "%s: rqctl shows %r" % (what, seen))
        return seen

    def test_rqctl_stat_shows_bridges(self):
        """rqctl stat finds the bridges of a queue without being told a
        path: a running out with its counts, then stopped after SIGTERM;
        a killed one as dead (its file replaced the stopped one's); two at
        once both; rqctl unlink removes their files."""
        if not RQCTL:
            self.skipTest("RQCTL (path to rqctl) not set")
        q, count = self.queue("stat"), 3000
        util("stream-create", self.server.url, "STAT", "t.stat", 4096)
        util("produce", q, 0, count, 0, 4096)
        self.assertEqual(self.rqctl_bridges(q), [])
        args = ("--queue", q, "--subject", "t.stat", "--status-interval", 100)
        b = self.bridge("out", *args)
        [s] = self.wait_bridges(q, lambda bs: len(bs) == 1 and bs[0]["reported"]["messages"] == count,
                                "the running bridge's count")
        self.assertEqual((s["direction"], s["pid"], s["alive"], s["state"]), ("out", b.pid, True, "running"))
        self.assertEqual((s["reported"]["lag"], s["reported"]["errors"]), (0, 0))
        self.assertTrue(0 <= s["age_s"] < 5 and s["owner_is_queue_owner"], s)
        text = subprocess.run([RQCTL, "stat", q], capture_output=True, text=True).stdout
        self.assertIn("out  pid %d alive" % b.pid, text)
        self.assertIn("running, %d messages, lag 0, 0 errors" % count, text)
        self.stop(b, "rq-bridge out")
        [s] = self.rqctl_bridges(q)
        self.assertEqual((s["pid"], s["alive"], s["state"], s["reported"]["state"]),
                         (b.pid, False, "stopped", "stopped"))
        # Two outs by mistake: the second waits for the consumer role, and
        # both show.  Killed, the first shows as dead.
        first = self.bridge("out", *args)
        self.wait_bridges(q, lambda bs: [x["pid"] for x in bs] == [first.pid] and
                          bs[0]["state"] == "running", "the stopped bridge's file replaced")
        second = self.bridge("out", *args, "--max-backoff", 200)
        both = self.wait_bridges(q, lambda bs: len(bs) == 2, "two bridges")
        self.assertEqual(sorted(x["pid"] for x in both), sorted([first.pid, second.pid]))
        self.stop(second, "the second rq-bridge out")
        first.kill()
        first.wait()
        shown = {x["pid"]: x for x in self.rqctl_bridges(q)}
        self.assertEqual(shown[first.pid]["state"], "dead")
        self.assertFalse(shown[first.pid]["alive"])
        self.assertEqual(shown[first.pid]["reported"]["state"], "running")
        self.assertEqual(shown[second.pid]["state"], "stopped")
        self.assertIn("pid %d gone" % first.pid,
                      subprocess.run([RQCTL, "stat", q], capture_output=True, text=True).stdout)
        self.assertEqual(len(bridge_files(q)), 2)
        p = subprocess.run([RQCTL, "unlink", q], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(bridge_files(q), [])

    def test_out_record_queue(self):
        """A record queue (bursts, as on slots): every message reaches the
        stream once, in order, and leaves the queue."""
        q, count = self.queue("outrec"), 300
        util("stream-create", self.server.url, "OUTREC", "t.outrec", 4096)
        util("create-records", q, 8192, 256)
        util("produce", q, 0, count, 0, 0)
        b = self.bridge("out", "--queue", q, "--subject", "t.outrec")
        self.assertTrue(wait_until(lambda: util("depth", q).strip() == "0", 30), "the queue never drained")
        self.stop(b, "rq-bridge out")
        self.check_stream_once_in_order("OUTREC", count)

    def test_out_kill_torture(self):
        """rq-bridge out SIGKILLed 100 times while a producer pushes: the
        stream holds every message once, in order."""
        self.out_kill_torture("out", "OUT", records=False)

    def test_out_record_kill_torture(self):
        """The same on a record queue."""
        self.out_kill_torture("outr", "OUTR", records=True)

    def test_out_last_seq_kill_torture(self):
        """--dedupe last-sequence: out SIGKILLed 100 times while a producer
        pushes, each successor finding in the stream what its predecessors
        stored (some still arriving from a dead one's socket): the stream
        holds every message once, in order."""
        self.out_kill_torture("outlk", "OUTLK", records=False, last_seq=True)

    def out_kill_torture(self, tag, stream, records, last_seq=False):
        q, count, subject = self.queue(tag), 4000, "t." + tag
        util("stream-create", self.server.url, stream, subject, 4096)
        if records:
            util("create-records", q, 65536, 256)
        producer = self.spawn([UTIL, "produce", q, 0, count, 2500, 0 if records else 256],
                              tag="producer")
        mode = ("--stream", stream, "--dedupe", "last-sequence") if last_seq else ()
        started = time.monotonic()
        during = self.kill_randomly(100, lambda: self.bridge("out", "--queue", q, "--subject", subject, *mode),
                                    producer)
        killing = time.monotonic() - started
        self.assertGreaterEqual(during, 50, "the producer finished too early: push slower")
        st = os.path.join(self.dir, tag + ".json")
        last = self.bridge("out", "--queue", q, "--subject", subject, "--status", st,
                           "--status-interval", 100, *mode)
        self.assertEqual(producer.wait(60), 0)
        self.assertTrue(wait_until(lambda: util("depth", q).strip() == "0", 30), "the queue never drained")
        self.stop(last, "rq-bridge out")
        self.check_stream_once_in_order(stream, count)
        print("%s torture: 100 kills (%d while pushing) in %.1f s, %d messages once each, in order"
              % ("out (records)" if records else "out (last-sequence)" if last_seq else "out",
                 during, killing, count), file=sys.stderr)

    def test_out_missing_server(self):
        """No server: a clear error, retried with growing pauses; the bridge
        delivers once one comes up."""
        port = free_port()
        url = "nats://127.0.0.1:%d" % port
        q = self.queue("missing")
        util("create", q, 64, 256)
        p = self.bridge("out", "--queue", q, "--subject", "t.miss", "--stream", "MISS",
                        "--max-backoff", 800, url=url, stderr=self.open("missing.err"))
        time.sleep(2.0)
        with open(os.path.join(self.dir, "missing.err")) as f:
            text = f.read()
        self.assertIn("cannot connect to %s" % url, text)
        for pause in ("retrying in 100 ms", "retrying in 200 ms", "retrying in 400 ms", "retrying in 800 ms"):
            self.assertIn(pause, text)
        self.assertIsNone(p.poll(), "the bridge gave up")
        other = Server(port, os.path.join(self.dir, "js2"), self.log)
        other.start()
        try:
            util("produce", q, 0, 10, 0, 64)
            self.assertTrue(wait_until(lambda: util("depth", q).strip() == "0", 15),
                            "the bridge did not connect once the server was up")
            self.stop(p, "rq-bridge out")
            self.server, saved = other, self.server
            self.check_stream_once_in_order("MISS", 10)
            self.server = saved
        finally:
            other.stop()

    def test_out_oversized_parked(self):
        """A message larger than the stream's maximum stays in the queue
        (state parked, reported) or, with --dead-letter, moves there."""
        q, dlq = self.queue("big"), self.queue("dead")
        util("stream-create", self.server.url, "BIG", "t.big", 512)
        util("create", q, 16, 4096)
        util("create", dlq, 16, 4096)
        for size in (100, 2000, 100):
            util("push", q, size)
        st = os.path.join(self.dir, "big.json")
        p = self.bridge("out", "--queue", q, "--subject", "t.big", "--status", st,
                        "--status-interval", 100, "--max-backoff", 300)
        self.assertTrue(wait_until(lambda: self.status(st).get("state") == "parked", 15),
                        "never parked: %r" % self.status(st))
        s = self.status(st)
        self.assertEqual(s["messages"], 1)
        self.assertIn("larger than the stream accepts", s["last_error"])
        self.assertEqual(util("depth", q).strip(), "2", "the large message left the queue")
        self.stop(p, "rq-bridge out")
        p = self.bridge("out", "--queue", q, "--subject", "t.big", "--status", st, "--dead-letter", dlq)
        self.assertTrue(wait_until(lambda: util("depth", q).strip() == "0", 15))
        self.stop(p, "rq-bridge out")
        self.assertEqual(self.status(st)["parked"], 1)
        self.assertEqual(util("depth", dlq).strip(), "1")
        self.assertEqual([len(m) for _, m in self.stream("BIG")], [100, 100])

    def test_out_last_seq_dead_letter(self):
        """--dedupe last-sequence: a message too large for the stream is not
        sent but moved to the dead-letter queue, and a marker (no payload,
        Rq-Moved) takes its place in the stream; killed between the marker
        and the release, the successor finds the marker and releases the
        message.  The rest is stored once, in order, and in, reading the
        stream, skips the markers."""
        q, dlq, inq = self.queue("lsbig"), self.queue("lsdead"), self.queue("lsin")
        util("stream-create", self.server.url, "LSBIG", "t.lsbig", 512)
        util("create", q, 16, 4096)
        util("create", dlq, 16, 4096)
        sizes = (100, 2000, 101, 102, 3000, 103)
        for size in sizes:
            util("push", q, size)
        args = ("--queue", q, "--subject", "t.lsbig", "--stream", "LSBIG", "--dedupe", "last-sequence",
                "--dead-letter", dlq)
        self.assertEqual(self.crash_at("out.moved_marked", 1, "out", *args), -9)
        st = os.path.join(self.dir, "lsbig.json")
        self.out_until_drained(q, *args, "--status", st, stderr=self.open("lsbig.err"))
        with open(os.path.join(self.dir, "lsbig.err")) as f:
            said = f.read()
        # Judged by out before sending (the server was never asked).
        self.assertIn("message 4 (3000 bytes, ", said)
        self.assertIn("is larger than stream LSBIG takes (512 bytes)", said)
        self.assertNotIn("larger than the stream accepts", said)
        s = self.status(st)
        self.assertEqual((s["parked"], s["duplicates"]), (1, 1), s)  # the first found marked
        self.assertEqual(util("depth", dlq).strip(), "2")
        self.assertEqual([len(m) for _, m in self.stream("LSBIG")], [100, 0, 101, 102, 0, 103])
        drain_path = os.path.join(self.dir, "lsin.out")
        drain = self.spawn([UTIL, "drain", inq, 4, 3000], stdout=self.open("lsin.out"), tag="drain")
        st_in = os.path.join(self.dir, "lsin.json")
        inn = self.bridge("in", "--queue", inq, "--subject", "t.lsbig", "--stream", "LSBIG", "--durable",
                          "lsin", "--create", "1024:256", "--status", st_in)
        records, dups = self.read_drain(drain, drain_path, 30)
        self.stop(inn, "rq-bridge in")
        self.assertEqual([(seq, len(payload)) for seq, _, payload in records],
                         [(1, 100), (3, 101), (4, 102), (6, 103)])
        self.assertEqual(self.status(st_in)["parked"], 2)

    def test_out_last_seq_refuses_what_it_cannot_trust(self):
        """--dedupe last-sequence: without --stream, and on in, a usage
        error; a stream that deletes consumed messages, a stream that does
        not store the subject, and a stream whose last message was purged
        while a message out may have sent is in the queue stop out with a
        clear error (exit 1) and leave the queue as it was; purged with
        nothing in the queue ever sent, out goes on."""
        q = self.queue("lsbad")
        util("create", q, 16, 256)
        util("produce", q, 0, 5, 0, 0)
        for argv in (("out", "--queue", q, "--subject", "t.x", "--dedupe", "last-sequence"),
                     ("out", "--queue", q, "--subject", "t.x", "--stream", "X", "--dedupe", "nonsense"),
                     ("in", "--queue", q, "--subject", "t.x", "--stream", "X", "--durable", "d",
                      "--dedupe", "id")):
            p = subprocess.run([BRIDGE, *argv], capture_output=True, text=True, timeout=30)
            self.assertEqual(p.returncode, 2, (argv, p.stderr))
            self.assertIn("dedupe", p.stderr)
        util("stream-create-wq", self.server.url, "LSWQ", "t.lswq")
        self.expect_fatal(q, "t.lswq", "LSWQ", "needs the stream's last message, so limits retention")
        util("stream-create", self.server.url, "LSCAP", "t.lscap", 4096)
        util("stream-create", self.server.url, "LSNOTCAP", "t.lsnotcap", 4096)
        self.expect_fatal(q, "t.lscap", "LSNOTCAP", "stream LSNOTCAP does not store subject t.lscap")
        # The stream's last message gone, a message the dead bridge had in
        # hand (flagged) still in the queue: out cannot tell, and stops.
        util("stream-create", self.server.url, "LSGONE", "t.lsgone", 4096)
        args = ("--queue", q, "--subject", "t.lsgone", "--stream", "LSGONE", "--dedupe", "last-sequence",
                "--window", 1)
        self.assertEqual(self.crash_at("out.after_ack", 3, "out", *args), -9)  # 2 released, 1 in hand
        util("stream-purge", self.server.url, "LSGONE")
        self.expect_fatal(q, "t.lsgone", "LSGONE", "last message (sequence 3) is gone")
        # Gone, with nothing in the queue ever sent: out goes on.
        q2 = self.queue("lsgone2")
        util("create", q2, 16, 256)
        util("stream-create", self.server.url, "LSGONE2", "t.lsgone2", 4096)
        args = ("--queue", q2, "--subject", "t.lsgone2", "--stream", "LSGONE2", "--dedupe", "last-sequence")
        util("produce", q2, 0, 5, 0, 0)
        self.out_until_drained(q2, *args)
        util("stream-purge", self.server.url, "LSGONE2")
        util("produce", q2, 5, 3, 0, 0)
        st = os.path.join(self.dir, "lsgone2.json")
        self.out_until_drained(q2, *args, "--status", st)
        self.assertIn("is gone, but nothing in queue", self.status(st)["last_error"])
        self.assertEqual([seq for seq, _ in self.stream("LSGONE2")], [6, 7, 8])

    def expect_fatal(self, q, subject, stream, text):
        p = subprocess.run([BRIDGE, "out", "--server", self.server.url, "--queue", q, "--subject", subject,
                            "--stream", stream, "--dedupe", "last-sequence"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn(text, p.stderr)
        self.assertNotEqual(util("depth", q).strip(), "0", "the queue lost messages")

    def test_out_last_seq_other_writer(self):
        """--dedupe last-sequence on a stream another writer used: out finds
        a last message without its position, says so, and publishes from the
        queue's head after it; nothing of the queue is lost."""
        q = self.queue("lsother")
        util("stream-create", self.server.url, "LSOTHER", "t.lsother", 4096)
        util("create", q, 64, 256)
        util("produce", q, 0, 10, 0, 0)
        args = ("--queue", q, "--subject", "t.lsother", "--stream", "LSOTHER", "--dedupe", "last-sequence")
        self.out_until_drained(q, *args)
        util("publish", self.server.url, "t.lsother", 0, 1, 0)  # not out's
        util("produce", q, 10, 10, 0, 0)
        st = os.path.join(self.dir, "lsother.json")
        self.out_until_drained(q, *args, "--status", st)
        self.assertIn("carries no position of queue", self.status(st)["last_error"])
        got = [payload for _, payload in self.stream("LSOTHER")]
        self.assertEqual(len(got), 21)
        check_payload(self, got[10], "n", 0)
        for i, payload in enumerate(got[:10] + got[11:]):
            check_payload(self, payload, "m", i)

    def test_out_last_seq_late_copies_after(self):
        """--dedupe last-sequence: a killed out's publishes still in its
        socket buffer reach the stream after its successor stored those
        positions: refused (they expect a sequence the stream has passed),
        so the stream holds every message once, in order."""
        self.late_copies("lslate", "LSLATE", between=False)

    def test_out_last_seq_late_copies_between(self):
        """The same, the copies arriving after the successor read the
        stream's last message and before it published: they take their
        places, the successor's own copies are refused ("wrong last
        sequence"), and its next look at the stream finds them: once each,
        in order."""
        self.late_copies("lsbetween", "LSBETWEEN", between=True)

    def late_copies(self, tag, stream, between):
        q, subject = self.queue(tag), "t." + tag
        util("stream-create", self.server.url, stream, subject, 4096)
        util("create", q, 1024, 256)
        relay = HoldingRelay(self.server.port)
        self.addCleanup(relay.close)
        args = ("--queue", q, "--subject", subject, "--stream", stream, "--dedupe", "last-sequence",
                "--window", 8)
        util("produce", q, 0, 100, 0, 0)
        a = self.bridge("out", *args, url=relay.url, tag="a")
        self.assertTrue(wait_until(lambda: util("depth", q).strip() == "0", 15),
                        "the first bridge did not drain the queue")
        # Its next window is written to its socket and held there, unread
        # by the server (it then waits for the flush's answer); then it dies.
        # Stopped while the 20 are pushed, it finds them all at once: a
        # bridge that peeked a part of them mid-push sends only that part
        # and waits for the flush (7 held once).
        relay.hold()
        a.send_signal(signal.SIGSTOP)
        util("produce", q, 100, 20, 0, 0)
        a.send_signal(signal.SIGCONT)
        self.assertTrue(wait_until(lambda: relay.held_publishes() >= 8, 15),
                        "the first bridge's window was not held: %d" % relay.held_publishes())
        a.kill()
        a.wait()
        held = relay.held_publishes()
        b_err = self.open(tag + ".b.err")
        env = dict(os.environ, RQ_BRIDGE_CRASH_POINT="out.recovered:1:stop") if between else None
        st_b = os.path.join(self.dir, tag + ".b.json")
        b = subprocess.Popen([BRIDGE, "out", "--server", self.server.url, *map(str, args), "--status", st_b],
                             env=env, stdout=subprocess.DEVNULL, stderr=b_err)
        self.children.append(b)
        if between:  # the copies arrive after its look at the stream, before its publish
            self.wait_stopped(b, "the successor never reached its stop")
            self.assertEqual(len(self.stream(stream)), 100)
            relay.release()
            self.assertTrue(wait_until(lambda: len(self.stream(stream)) >= 100 + held, 15),
                            "the late copies were not stored")
            b.send_signal(signal.SIGCONT)
        self.assertTrue(wait_until(lambda: util("depth", q).strip() == "0", 30), "the queue never drained")
        if not between:  # the copies arrive after the successor stored their positions
            relay.release()
            self.assertTrue(wait_until(lambda: relay.answered() >= held, 15),
                            "the server did not answer the late copies: %d of %d" % (relay.answered(), held))
        self.stop(b, "rq-bridge out")
        self.check_stream_once_in_order(stream, 120)
        with open(os.path.join(self.dir, tag + ".b.err")) as f:
            text = f.read()
        if between:
            self.assertIn("the stream is past the sequence it expected", text)
            self.assertGreaterEqual(self.status(st_b)["recoveries"], 2)
        print("late copies (%s): %d publishes held and delivered late, 120 messages once each"
              % ("between" if between else "after", held), file=sys.stderr)

    def test_out_last_seq_recovery_faults(self):
        """--dedupe last-sequence: the recovery's two requests failing
        (injected, as a timeout): reported, retried after a pause, nothing
        lost or stored twice."""
        q = self.queue("lsfault")
        util("stream-create", self.server.url, "LSFAULT", "t.lsfault", 4096)
        util("create", q, 64, 256)
        util("produce", q, 0, 10, 0, 0)
        args = ("--queue", q, "--subject", "t.lsfault", "--stream", "LSFAULT", "--dedupe", "last-sequence",
                "--window", 1)
        for fault, first, text in (("out.stream_info", 10, "cannot read stream LSFAULT's last sequence"),
                                   ("out.last_message", 20, "cannot read stream LSFAULT's message")):
            if first == 20:  # killed holding an acknowledged message: the stream has a last one
                util("produce", q, 10, 10, 0, 0)
                self.assertEqual(self.crash_at("out.after_ack", 3, "out", *args), -9)
            err = "%s.err" % fault
            self.out_until_drained(q, *args, stderr=self.open(err), env={"RQ_BRIDGE_FAULT": fault + ":1"})
            with open(os.path.join(self.dir, err)) as f:
                said = f.read()
            self.assertIn("fault %s injected" % fault, said)
            self.assertIn(text, said)
            self.check_stream_once_in_order("LSFAULT", first)

    def test_out_last_seq_park_with_copies_in_flight(self):
        """--dedupe last-sequence: a bridge sends a 2,000-byte message and
        three behind it (the stream then took 4,096), held in its socket,
        and dies; the stream's limit is lowered to 512; its successor
        moves the message to the dead-letter queue, with a marker in its
        place, and stores the three.  The dead bridge's late copies come
        after and are all refused: the stream holds the rest once, in order
        (without the marker the last copy fitted in: 103 twice)."""
        q, dlq = self.queue("lspl"), self.queue("lspldead")
        util("stream-create", self.server.url, "LSPL", "t.lspl", 4096)
        util("create", q, 64, 4096)
        util("create", dlq, 16, 4096)
        for size in (100, 100, 100):
            util("push", q, size)
        relay = HoldingRelay(self.server.port)
        self.addCleanup(relay.close)
        args = ("--queue", q, "--subject", "t.lspl", "--stream", "LSPL", "--dedupe", "last-sequence",
                "--window", 8)
        a = self.bridge("out", *args, url=relay.url, tag="a")
        self.assertTrue(wait_until(lambda: util("depth", q).strip() == "0", 15))
        a.send_signal(signal.SIGSTOP)
        for size in (2000, 101, 102, 103):
            util("push", q, size)
        relay.hold()
        a.send_signal(signal.SIGCONT)
        self.assertTrue(wait_until(lambda: relay.held_publishes() >= 4, 15),
                        "the four were not held: %d" % relay.held_publishes())
        a.kill()
        a.wait()
        util("stream-set-max", self.server.url, "LSPL", 512)
        b = self.bridge("out", *args, "--dead-letter", dlq, tag="b")
        self.assertTrue(wait_until(lambda: util("depth", q).strip() == "0", 15))
        held = relay.held_publishes()
        relay.release()
        self.assertTrue(wait_until(lambda: relay.answered() >= held, 15))
        self.stop(b, "rq-bridge out")
        self.assertEqual([len(m) for _, m in self.stream("LSPL")], [100, 100, 100, 0, 101, 102, 103])
        self.assertEqual(util("depth", dlq).strip(), "1")

    def test_out_last_seq_marker_refused(self):
        """--dedupe last-sequence: the marker of a message moved to the
        dead-letter queue refused, another writer having moved the stream on
        (out stopped at out.moved while it publishes): out looks at the
        stream again and puts the marker after that message, and the moved
        message is in the dead-letter queue once, not once per try."""
        q, dlq = self.queue("lsloop"), self.queue("lsloopdead")
        util("stream-create", self.server.url, "LSLOOP", "t.lsloop", 512)
        util("create", q, 16, 4096)
        util("create", dlq, 256, 4096)
        util("push", q, 2000)
        util("push", q, 100)
        st = os.path.join(self.dir, "lsloop.json")
        p = self.bridge("out", "--queue", q, "--subject", "t.lsloop", "--stream", "LSLOOP", "--dedupe",
                        "last-sequence", "--dead-letter", dlq, "--status", st, stderr=self.open("lsloop.err"),
                        env={"RQ_BRIDGE_CRASH_POINT": "out.moved:1:stop"})
        self.wait_stopped(p, "out never reached out.moved")
        util("publish", self.server.url, "t.lsloop", 0, 1, 0)  # another writer's
        p.send_signal(signal.SIGCONT)
        self.wait_drained(q)
        self.stop(p, "rq-bridge out")
        with open(os.path.join(self.dir, "lsloop.err")) as f:
            said = f.read()
        self.assertEqual(said.count("cannot put the marker"), 1, said)
        self.assertEqual(util("depth", dlq).strip(), "1", "a copy in the dead-letter queue per try")
        self.assertEqual([len(m) for _, m in self.stream("LSLOOP")][1:], [0, 100])  # after the writer's

    def test_out_last_seq_stream_hole(self):
        """--dedupe last-sequence on a server that counts a sequence and
        drops its message (nats-server 2.9 over an account's storage limit):
        the message after the hole is stored, but the recovery finds the
        head missing at its sequence and stops with the reason, releasing
        nothing from the hole on: the message stays in the queue."""
        conf = os.path.join(self.dir, "account.conf")
        with open(conf, "w") as f:
            f.write("accounts { A: { jetstream: { max_file: 3000, max_mem: 1000000 }, "
                    "users: [{user: a, password: a}] } }\n")
        server = Server(free_port(), os.path.join(self.dir, "js-acct"), self.log, conf, "a:a")
        server.start()
        self.addCleanup(server.stop)
        q = self.queue("lshole")
        util("stream-create", server.url, "HOLE", "t.hole", 65536)
        util("create", q, 64, 4096)
        for size in (100, 100, 100, 100, 100, 2000, 101, 102, 103, 104, 105):
            util("push", q, size)
        p = subprocess.run([BRIDGE, "out", "--server", server.url, "--queue", q, "--subject", "t.hole",
                            "--stream", "HOLE", "--dedupe", "last-sequence", "--window", "8"],
                           capture_output=True, text=True, timeout=20)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("does not hold queue position 5 at sequence 6", p.stderr)
        self.assertEqual(util("depth", q).strip(), "6", "released what the stream does not hold")

    # ---- in -----------------------------------------------------------

    def test_in_kill_torture(self):
        """rq-bridge in SIGKILLed 100 times while messages arrive: the
        receiver sees every message, and once after dropping duplicates by
        stream sequence."""
        q, count = self.queue("in"), 5000
        util("stream-create", self.server.url, "IN", "t.in", 4096)
        out_path = os.path.join(self.dir, "drain.out")
        drain = self.spawn([UTIL, "drain", q, count, 30000], 
                           stdout=self.open(os.path.basename(out_path)), tag="drain")
        publisher = self.spawn([UTIL, "publish", self.server.url, "t.in", 0, count, 2000], tag="publisher")
        args = ("--queue", q, "--subject", "t.in", "--stream", "IN", "--durable", "into-rq",
                "--create", "1024:256", "--batch", 16)
        during = self.kill_randomly(100, lambda: self.bridge("in", *args), publisher)
        self.assertGreaterEqual(during, 50, "the publisher finished too early: publish slower")
        last = self.bridge("in", *args)
        self.assertEqual(publisher.wait(60), 0)
        records, dups = self.read_drain(drain, out_path, 60)
        self.stop(last, "rq-bridge in")
        self.assertEqual(len(records), count, "the receiver kept %d of %d" % (len(records), count))
        for i, (seq, _, payload) in enumerate(records):
            self.assertEqual(seq, i + 1)
            check_payload(self, payload, "n", i)
        print("in torture: 100 kills, %d messages once each after dropping %d duplicates" % (count, dups),
              file=sys.stderr)

    def test_in_crash_points(self):
        """in killed between commit and ack 20 times, and 3 times between
        deleting and re-creating its consumer: the receiver drops the copies
        and keeps every message once, in order."""
        q, count = self.queue("incp"), 2000
        util("stream-create", self.server.url, "INCP", "t.incp", 4096)
        util("publish", self.server.url, "t.incp", 0, count, 0)
        out_path = os.path.join(self.dir, "incp.out")
        drain = self.spawn([UTIL, "drain", q, count, 30000],
                           stdout=self.open(os.path.basename(out_path)), tag="drain")
        args = ("in", "--queue", q, "--subject", "t.incp", "--stream", "INCP", "--durable", "cp",
                "--create", "1024:256", "--batch", 16)
        for _ in range(20):
            self.assertEqual(self.crash_at("in.after_commit", random.randint(1, 40), *args), -9)
        for _ in range(3):
            self.assertEqual(self.crash_at("in.after_commit", random.randint(1, 40), *args), -9)
            self.assertEqual(self.crash_at("in.after_delete", 1, *args), -9)
        last = self.bridge(*args)
        records, dups = self.read_drain(drain, out_path, 60)
        self.stop(last, "rq-bridge in")
        self.assertEqual(len(records), count, "the receiver kept %d of %d" % (len(records), count))
        for i, (seq, _, payload) in enumerate(records):
            self.assertEqual(seq, i + 1)
            check_payload(self, payload, "n", i)
        self.assertGreaterEqual(dups, 23, "fewer copies than kills after a commit")
        print("in crash points: 26 kills, %d copies dropped, %d messages once each" % (dups, count),
              file=sys.stderr)

    def test_in_oversized_parked(self):
        """A stream message larger than a queue slot is reported, left
        unacknowledged (state parked), and nothing after it overtakes it."""
        q = self.queue("inbig")
        util("stream-create", self.server.url, "INBIG", "t.inbig", 4096)
        util("create", q, 16, 64)
        util("publish", self.server.url, "t.inbig", 0, 1, 0)
        util("bench-pub", self.server.url, "t.inbig", 1, 100)  # one 100-byte message
        util("publish", self.server.url, "t.inbig", 2, 1, 0)
        st = os.path.join(self.dir, "inbig.json")
        b = self.bridge("in", "--queue", q, "--subject", "t.inbig", "--stream", "INBIG", "--durable", "big",
                        "--status", st, "--status-interval", 100, "--max-backoff", 300)
        self.assertTrue(wait_until(lambda: self.status(st).get("state") == "parked", 15),
                        "never parked: %r" % self.status(st))
        time.sleep(0.5)
        self.assertIn("stream message 2 (100 bytes) does not fit", self.status(st)["last_error"])
        self.stop(b, "rq-bridge in")
        records = [line.split()[:2] for line in util("drain", q, 100, 200).splitlines()]
        self.assertEqual(records[0], ["rec", "1"])
        self.assertEqual({tuple(r) for r in records[1:]} - {("dup", "1")}, set(),
                         "something overtook the parked message: %r" % records)

    def test_bench_pub_modes(self):
        """The benchmark's publisher (bench-pub-opts) in every MODE: the
        stream holds all its messages (the tool checks that too, and fails
        when an expected sequence is wrong); stream-purge empties it."""
        modes = ["plain", "id", "custom", "payload", "expect-seq", "expect-subject-seq", "expect-seq-pos", "0", "1"]
        for i, mode in enumerate(modes):
            stream = "BENCH%d" % i
            util("stream-create-dup", self.server.url, stream, "t.bench%d" % i, 1024, 1000 * (i + 1))
            rate, cpu = util("bench-pub-opts", self.server.url, "t.bench%d" % i, 300, 64, 64, mode).split()
            self.assertGreater(float(rate), 0)
            self.assertGreater(float(cpu), 0)
            stored = [ln for ln in util("stream-read", self.server.url, stream).split("\n")
                      if re.match(r"\d+\t", ln)]
            self.assertEqual(len(stored), 301, mode)  # and the untimed first publish
            util("stream-purge", self.server.url, stream)
            self.assertEqual(util("stream-read", self.server.url, stream), "", mode)
        p = subprocess.run([UTIL, "bench-pub-opts", self.server.url, "t.bench0", "3", "64", "64", "nonsense"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 2)

    # ---- both, across a server restart --------------------------------

    def test_server_restart(self):
        """out and in chained through one stream; nats-server restarted
        mid-run: nothing lost, both catch up, each message once."""
        self.server_restart(())

    def test_server_restart_last_seq(self):
        """The same with out's --dedupe last-sequence: after the restart out
        looks at the stream's last message before publishing again."""
        self.server_restart(("--stream", "CHAIN", "--dedupe", "last-sequence"))

    def server_restart(self, mode):
        q_out, q_in, count = self.queue("a"), self.queue("b"), 3000
        util("stream-create", self.server.url, "CHAIN", "t.chain", 4096)
        util("create", q_out, 256, 256)
        out_path = os.path.join(self.dir, "chain.out")
        drain = self.spawn([UTIL, "drain", q_in, count, 30000], 
                           stdout=self.open(os.path.basename(out_path)), tag="drain")
        st_out, st_in = os.path.join(self.dir, "o.json"), os.path.join(self.dir, "i.json")
        out = self.bridge("out", "--queue", q_out, "--subject", "t.chain", "--status", st_out,
                          "--status-interval", 100, "--max-backoff", 500, *mode, tag="out")
        inn = self.bridge("in", "--queue", q_in, "--subject", "t.chain", "--stream", "CHAIN",
                          "--durable", "chain", "--create", "1024:256", "--status", st_in,
                          "--status-interval", 100, "--max-backoff", 500, tag="in")
        producer = self.spawn([UTIL, "produce", q_out, 0, count, 1000, 256], tag="producer")
        time.sleep(1.0)
        self.server.stop()
        time.sleep(1.0)
        self.server.start()
        self.assertEqual(producer.wait(60), 0)
        records, dups = self.read_drain(drain, out_path, 60)
        self.assertEqual(len(records), count, "the receiver kept %d of %d" % (len(records), count))
        for i, (_, _, payload) in enumerate(records):
            check_payload(self, payload, "m", i)
        self.assertGreaterEqual(self.status(st_out).get("reconnects", 0), 1)
        if mode:  # the start's, and at least one after the restart
            self.assertGreaterEqual(self.status(st_out).get("recoveries", 0), 2)
        self.assertGreaterEqual(self.status(st_in).get("reconnects", 0), 1)
        self.stop(out, "rq-bridge out")
        self.stop(inn, "rq-bridge in")
        self.check_stream_once_in_order("CHAIN", count)
        print("server restart: %d messages once each (%d duplicates dropped)" % (count, dups),
              file=sys.stderr)


def main():
    global BRIDGE, UTIL
    if len(sys.argv) < 3:
        sys.exit("usage: test_bridge.py RQ-BRIDGE BRIDGE_UTIL [unittest args]")
    BRIDGE, UTIL = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    if shutil.which("nats-server") is None:
        print("SKIPPED: nats-server is not installed (Debian: apt-get install nats-server); "
              "scripts/test-all.sh installs it", file=sys.stderr)
        sys.exit(SKIP)
    # RQ_TEST_FILTER (scripts/mutate.py): only the tests matching it, as -k.
    only = os.environ.get("RQ_TEST_FILTER")
    argv = [sys.argv[0]] + (["-k", only] if only else []) + sys.argv[3:]
    result = unittest.main(argv=argv, verbosity=2, exit=False).result
    if result.testsRun == 0:
        sys.exit("no test matches %r" % only)
    sys.exit(0 if result.wasSuccessful() else 1)


if __name__ == "__main__":
    main()
