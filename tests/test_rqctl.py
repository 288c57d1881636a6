#!/usr/bin/env python3
"""test_rqctl.py - rqctl, run as a child process: every command, its errors
and exit codes, and JSON output checked by parsing it.

    python3 tests/test_rqctl.py path/to/rqctl

Linux only (corrupt segments are made by writing /dev/shm/rq.NAME).
"""
import json
import os
import resource
import re
import signal
import struct
import subprocess
import sys
import time
import unittest

RQCTL = None
SHM = "/dev/shm"
HERE = os.path.dirname(os.path.abspath(__file__))

# exit codes (docs/rqctl.md)
(OK, FAILED, USAGE, NOENT, CORRUPT, BUSY, TIMEOUT, EXISTS, MSGSIZE, OWNER, ATTACHED,
 UNLINKED) = range(12)

# queue segment layout (src/layout.h), little-endian
OFF_MAGIC, OFF_LAYOUT_VERSION, OFF_SLOT_COUNT = 0, 8, 20
# pushed is counted by write_position (line 1, after write_offset)
OFF_WRITE_OFFSET, OFF_PUSHED = 64, 72

_counter = 0


def fresh(tag):
    """A name no other test (or earlier run) uses."""
    global _counter
    _counter += 1
    name = "rqctl-test.%d.%d.%s" % (os.getpid(), _counter, tag)
    for prefix in ("rq.", "rqc.", "rql.", "rqcl."):
        try:
            os.unlink(os.path.join(SHM, prefix + name))
        except FileNotFoundError:
            pass
    return name


def run(*args, stdin=b"", timeout=30):
    """Runs rqctl ARGS; returns (exit code, stdout bytes, stderr text)."""
    p = subprocess.run([RQCTL, *args], input=stdin, capture_output=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr.decode("utf-8", "replace")


def stat_json(name, *extra):
    rc, out, err = run("stat", "--json", *extra, name)
    assert rc == OK, (rc, err)
    return json.loads(out)


def poke(path, offset, fmt, value):
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(struct.pack(fmt, value))


def wait_until(predicate, seconds=10.0):
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        if predicate():
            return True
        time.sleep(0.02)
    return False


class RqctlCase(unittest.TestCase):
    def setUp(self):
        self.names = []
        self.children = []

    def tearDown(self):
        for child in self.children:
            if child.poll() is None:
                child.kill()
            child.communicate()  # reaps it and closes its pipes
        for name in self.names:
            for prefix in ("rq.", "rqc.", "rql.", "rqcl."):
                try:
                    os.unlink(os.path.join(SHM, prefix + name))
                except FileNotFoundError:
                    pass

    def queue(self, tag, slots=8, size=64, *extra):
        name = fresh(tag)
        self.names.append(name)
        rc, _, err = run("create", name, "--slots", str(slots), "--slot-size", str(size), *extra)
        self.assertEqual(rc, OK, err)
        return name

    def spawn(self, *args, stdin=subprocess.DEVNULL):
        child = subprocess.Popen([RQCTL, *args], stdin=stdin, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
        self.children.append(child)
        return child

    def assertRun(self, expect, *args, stdin=b"", err_has=None):
        rc, out, err = run(*args, stdin=stdin)
        self.assertEqual(rc, expect, "rqctl %s: exit %d, stderr: %s" % (" ".join(args), rc, err))
        if err_has is not None:
            self.assertIn(err_has, err)
        return out, err


class Help(RqctlCase):
    COMMANDS = ("create", "unlink", "list", "stat", "push", "pop", "request", "dump")

    def test_help_for_the_tool_and_every_command(self):
        out, _ = self.assertRun(OK, "--help")
        for cmd in self.COMMANDS:
            self.assertRegex(out.decode(), r"\n  %s " % cmd)
        for cmd in self.COMMANDS:
            for args in ((cmd, "--help"), (cmd, "-h"), ("help", cmd)):
                out, _ = self.assertRun(OK, *args)
                self.assertTrue(out.decode().startswith("usage: rqctl %s" % cmd), out)

    def test_version_matches_rq_h(self):
        with open(os.path.join(HERE, "..", "include", "rq.h")) as f:
            header = f.read()
        parts = [re.search(r"#define RQ_VERSION_%s (\d+)" % p, header).group(1)
                 for p in ("MAJOR", "MINOR", "PATCH")]
        out, _ = self.assertRun(OK, "--version")
        self.assertEqual(out.decode().strip(), "rqctl (rq) " + ".".join(parts))

    def test_bad_usage_is_exit_2(self):
        name = self.queue("usage")
        cases = [
            (), ("bogus",), ("--bogus",), ("help", "bogus"),
            ("create",), ("create", "a", "b", "--slots", "1", "--slot-size", "1"),
            ("create", name + "x"), ("create", name + "x", "--slots", "4"),
            ("create", "q", "--slots", "0", "--slot-size", "1"),
            ("create", "q", "--slots", "abc", "--slot-size", "1"),
            ("create", "q", "--slots", "-1", "--slot-size", "1"),
            ("create", "q", "--slots", "1", "--slot-size", "1073741825"),
            ("create", "q", "--slots", "1", "--slot-size", "1", "--mode", "0888"),
            ("create", "q", "--slots", "1", "--slot-size", "1", "--mode", "0"),
            ("create", "q", "--slots", "1", "--slot-size", "1", "--mode", "01777"),
            ("create", "q", "--coalesce", "--slots", "1"),
            ("create", "q", "--coalesce", "--capacity", "256", "--max-record", "8"),
            ("unlink",), ("unlink", name, name), ("list", name),
            ("stat",), ("stat", name, "--count", "2"),
            ("stat", name, "--queue", "--coalesce"), ("stat", name, "--watch=abc"),
            ("stat", name, "--watch=0"),
            ("push",), ("push", name, "--timeout", "-1"), ("push", name, "--timeout", "x"),
            ("pop", name, "--count", "-1"), ("pop", name, "--timeout", "1e99"),
            ("pop", name, "extra"), ("request",),
        ]
        for args in cases:
            rc, out, err = run(*args)
            self.assertEqual(rc, USAGE, "rqctl %s: exit %d (%s)" % (args, rc, err))
            self.assertNotEqual(err, "", args)
        # the queue was never touched by any of them
        self.assertEqual(stat_json(name)["counters"]["pushed"], 0)

    def test_names_follow_rq_rules(self):
        for bad in ("a b", "a/b", "", "x" * 201, "\u00e9t\u00e9", "a\nb", "..\\x"):
            for args in (("create", bad, "--slots", "1", "--slot-size", "1"), ("stat", bad),
                         ("push", bad), ("pop", bad), ("unlink", bad), ("request", bad)):
                rc, _, err = run(*args)
                self.assertEqual(rc, USAGE, (args, err))
                self.assertIn("invalid name", err)
                self.assertNotIn("\n", err.rstrip("\n"))  # a hostile name cannot add lines
        prefix = "rqctl-test.%d." % os.getpid()
        longest = prefix + "n" * (200 - len(prefix))
        self.names.append(longest)
        self.assertRun(OK, "create", longest, "--slots", "1", "--slot-size", "1")
        self.assertEqual(stat_json(longest)["name"], longest)


class Records(RqctlCase):
    def test_create_stat_dump_a_record_queue(self):
        name = fresh("rec")
        self.names.append(name)
        self.assertRun(OK, "create", name, "--capacity", "256", "--max-record", "100")
        self.assertRun(OK, "create", name, "--capacity", "256", "--max-record", "100")
        _, err = self.assertRun(EXISTS, "create", name, "--capacity", "512", "--max-record", "100")
        self.assertIn("records in 256 bytes, at most 100 each", err)
        self.assertRun(EXISTS, "create", name, "--slots", "4", "--slot-size", "100")
        for bad in (("--capacity", "250", "--max-record", "10"),
                    ("--capacity", "256", "--max-record", "125"),
                    ("--capacity", "256"), ("--capacity", "256", "--max-record", "8", "--slots", "2")):
            self.assertRun(USAGE, "create", fresh("rec.bad"), *bad)
        # 4 + 90 -> 96 bytes, twice, then 4 + 3 -> 8 bytes
        lines = b"a" * 90 + b"\n" + b"b" * 90 + b"\n" + b"ccc\n"
        self.assertRun(OK, "push", name, stdin=lines)
        st = stat_json(name)
        self.assertEqual((st["slot_count"], st["slot_size"], st["depth"]), (256, 100, 3))
        r = st["records"]
        self.assertEqual((r["capacity"], r["bytes_used"], r["bytes_free"], r["records"],
                          r["largest_record"], r["padding_bytes"]), (256, 200, 56, 3, 90, 0))
        out, _ = self.assertRun(OK, "stat", name)
        self.assertIn("bytes used:         200 of 256 bytes (56 free)", out.decode())
        out, _ = self.assertRun(OK, "list")
        self.assertIn("records in 256 B (up to 100 B), 3 records, 200 B used", out.decode())
        self.assertRun(OK, "pop", name, "--count", "2")
        # 4 + 60 -> 64 bytes do not fit the 56 left before the end: padding
        self.assertRun(OK, "push", name, stdin=b"d" * 60 + b"\n")
        dump = json.loads(self.assertRun(OK, "dump", "--json", name)[0])
        self.assertEqual([(e["seq"], e["offset"], e["len"], e["padding"]) for e in dump["entries"]],
                         [(2, 192, 3, 0), (3, 0, 60, 56)])
        self.assertEqual((dump["records"], dump["padding_bytes"], dump["largest_record"]),
                         (2, 56, 60))
        out, _ = self.assertRun(OK, "dump", name, "--bytes", "2")
        self.assertIn("2 records, 63 bytes of payload, 56 bytes of padding", out.decode())
        self.assertIn(" 6464", out.decode())
        self.assertEqual(stat_json(name)["records"]["padding_bytes"], 56)
        # The spool cannot be written (a file size limit; standard output,
        # a pipe, can): the error names the spool, not standard output.
        def small_files():
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (16, 16))
        p = subprocess.run([RQCTL, "dump", name], capture_output=True, preexec_fn=small_files)
        self.assertEqual(p.returncode, FAILED, p.stderr)
        self.assertIn(b"the walk's temporary file: File too large", p.stderr)
        self.assertEqual(p.stdout, b"")
        out, _ = self.assertRun(OK, "pop", name, "--count", "2")
        self.assertEqual(out, b"ccc\n" + b"d" * 60 + b"\n")
        slots = self.queue("rec.slots")
        self.assertRun(USAGE, "dump", slots, err_has="not a record queue")
        self.assertRun(NOENT, "dump", fresh("rec.none"))
        with open("/dev/full", "wb") as full:
            p = subprocess.run([RQCTL, "dump", name], stdout=full, stderr=subprocess.PIPE)
        self.assertEqual(p.returncode, FAILED, p.stderr)
        self.assertIn(b"writing standard output", p.stderr)

    def test_dump_under_a_busy_consumer_shows_one_walk(self):
        """A dump that the consumer overtakes walks the records again: the
        text shows the last walk only, each record once, as many lines as
        its summary counts."""
        name = fresh("rec.busy")
        self.names.append(name)
        self.assertRun(OK, "create", name, "--capacity", "4096", "--max-record", "64")
        path = os.path.join(SHM, "rqctl-test.%d.lines" % os.getpid())
        with open(path, "wb") as f:
            f.write(b"".join(b"message %d\n" % i for i in range(200000)))
        self.addCleanup(os.unlink, path)
        pusher = subprocess.Popen([RQCTL, "push", "--file", path, name],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        popper = subprocess.Popen([RQCTL, "pop", name, "--count", "200000"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.children += [pusher, popper]
        walks = 0
        while popper.poll() is None and walks < 200:
            rc, out, err = run("dump", "--bytes", "0", name)
            if rc != OK:
                continue  # 6 if the consumer overtook 100 walks in a row
            walks += 1
            text = out.decode().splitlines()
            seqs = [int(line.split()[0]) for line in text[:-1]]
            self.assertEqual(len(seqs), len(set(seqs)), text[-1])
            self.assertEqual(seqs, sorted(seqs))
            self.assertTrue(text[-1].startswith("%d records," % len(seqs)), text[-1])
        self.assertEqual(popper.wait(60), OK)
        self.assertEqual(pusher.wait(60), OK)
        self.assertGreater(walks, 0)


class BridgeFiles(RqctlCase):
    def test_planted_files_cannot_hide_the_owners(self):
        """/dev/shm is writable by anyone: files planted under another
        user's name beyond rqctl's limit of 16 must not push the queue
        owner's own bridge file out of `rqctl stat`."""
        if os.geteuid() != 0:
            self.skipTest("needs root to plant files owned by another user")
        name = self.queue("bfiles")
        paths = []
        try:
            for i in range(20):
                path = os.path.join(SHM, "rqb.out.%d.%s" % (100000 + i, name))
                with open(path, "w") as f:
                    f.write("{}")
                os.chown(path, 65534, 65534)
                paths.append(path)
            mine = os.path.join(SHM, "rqb.in.%d.%s" % (os.getpid(), name))
            with open(mine, "w") as f:
                json.dump({"direction": "in", "state": "running", "messages": 7, "lag": 0,
                           "errors": 0, "last_error": "", "pid": os.getpid(),
                       "time": int(time.time())}, f)
            paths.append(mine)
            out, _ = self.assertRun(OK, "stat", name)
            text = out.decode()
            self.assertIn("pid %d alive" % os.getpid(), text)
            self.assertIn("5 more files not shown", text)
            pids = [b["pid"] for b in stat_json(name)["bridges"]]
            self.assertEqual(len(pids), 16)
            self.assertIn(os.getpid(), pids)
        finally:
            for path in paths:
                os.unlink(path)


class CreateUnlink(RqctlCase):
    def test_create_sets_geometry_flags_and_mode(self):
        name = self.queue("geo", 5, 100)
        st = stat_json(name)
        self.assertEqual((st["kind"], st["name"], st["slot_count"], st["slot_size"], st["mpsc"]),
                         ("queue", name, 5, 100, False))
        self.assertEqual(os.stat(os.path.join(SHM, "rq." + name)).st_mode & 0o777, 0o600)
        mpsc = self.queue("mpsc", 3, 7, "--mpsc", "--mode", "0640")
        st = stat_json(mpsc)
        self.assertEqual((st["slot_count"], st["slot_size"], st["mpsc"]), (3, 7, True))
        self.assertEqual(os.stat(os.path.join(SHM, "rq." + mpsc)).st_mode & 0o777, 0o640)

    def test_create_again_same_geometry_is_ok_other_geometry_is_exit_7(self):
        name = self.queue("again", 4, 16)
        self.assertRun(OK, "push", name, stdin=b"kept\n")
        self.assertRun(OK, "create", name, "--slots", "4", "--slot-size", "16")
        for other in (("--slots", "5", "--slot-size", "16"), ("--slots", "4", "--slot-size", "17"),
                      ("--slots", "4", "--slot-size", "16", "--mpsc")):
            _, err = self.assertRun(EXISTS, "create", name, *other)
            self.assertIn("4 slots of 16 bytes", err)
        out, _ = self.assertRun(OK, "pop", name)
        self.assertEqual(out, b"kept\n")

    def test_unlink(self):
        name = self.queue("unlink")
        self.assertRun(OK, "unlink", name)
        self.assertFalse(os.path.exists(os.path.join(SHM, "rq." + name)))
        self.assertRun(NOENT, "unlink", name, err_has="no such queue")
        self.assertRun(NOENT, "unlink", "--coalesce", name)

    def test_coalescing_objects(self):
        name = fresh("co")
        self.names.append(name)
        self.assertRun(OK, "create", name, "--coalesce", "--mode", "0660")
        path = os.path.join(SHM, "rqc." + name)
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o660)
        st = stat_json(name)
        self.assertEqual((st["kind"], st["owed"], st["counters"]["requests"]),
                         ("coalesce", False, 0))
        self.assertEqual(st["worker"], {"live": False, "pid": 0})
        self.assertRun(OK, "request", name)
        self.assertRun(OK, "request", name)
        st = stat_json(name, "--coalesce")
        self.assertEqual((st["owed"], st["counters"]["requests"], st["counters"]["rounds"]),
                         (True, 2, 0))
        out, _ = self.assertRun(OK, "stat", name)
        self.assertIn("work owed:          yes", out.decode())
        self.assertRun(NOENT, "stat", "--queue", name)
        # not a queue: the hint names --coalesce, and nothing is removed
        self.assertRun(NOENT, "unlink", name, err_has="use --coalesce")
        self.assertTrue(os.path.exists(path))
        self.assertRun(OK, "unlink", "--coalesce", name)
        self.assertFalse(os.path.exists(path))


class Missing(RqctlCase):
    def test_missing_objects_are_exit_3_and_nothing_is_created(self):
        name = fresh("missing")
        self.names.append(name)
        for args in (("stat", name), ("stat", "--queue", name), ("stat", "--coalesce", name),
                     ("stat", "--json", name), ("push", name), ("pop", name, "--timeout", "0"),
                     ("unlink", name), ("unlink", "--coalesce", name), ("request", name)):
            rc, out, err = run(*args, stdin=b"x\n")
            self.assertEqual(rc, NOENT, (args, err))
            self.assertEqual(out, b"", args)
            self.assertIn(name, err)
        self.assertFalse(os.path.exists(os.path.join(SHM, "rq." + name)))
        self.assertFalse(os.path.exists(os.path.join(SHM, "rqc." + name)))


class PushPop(RqctlCase):
    def test_lines_round_trip_exactly_and_in_order(self):
        name = self.queue("lines", 16, 32)
        data = b"first\n\nt\tab \xc3\xa9\x01\n" + b"x" * 32 + b"\nlast without newline"
        self.assertRun(OK, "push", name, stdin=data)
        self.assertEqual(stat_json(name)["depth"], 5)
        out, _ = self.assertRun(OK, "pop", name, "--count", "2")
        self.assertEqual(out, b"first\n\n")
        out, _ = self.assertRun(OK, "pop", name, "--count", "0", "--timeout", "0")
        self.assertEqual(out, b"t\tab \xc3\xa9\x01\n" + b"x" * 32 + b"\nlast without newline\n")
        st = stat_json(name)
        self.assertEqual((st["depth"], st["counters"]["pushed"], st["counters"]["popped"]),
                         (0, 5, 5))

    def test_null_delimited_messages_may_hold_newlines(self):
        name = self.queue("null", 8, 32)
        self.assertRun(OK, "push", "--null", name, stdin=b"a\nb\x00\x00c\n\x00")
        out, _ = self.assertRun(OK, "pop", "-0", "-n", "3", name)
        self.assertEqual(out, b"a\nb\x00\x00c\n\x00")

    def test_push_from_file(self):
        name = self.queue("file")
        path = os.path.join(os.environ.get("TMPDIR", "/tmp"), fresh("file") + ".txt")
        with open(path, "wb") as f:
            f.write(b"one\ntwo\n")
        try:
            self.assertRun(OK, "push", name, "--file", path)
        finally:
            os.unlink(path)
        out, _ = self.assertRun(OK, "pop", name, "-n", "2", "-t", "0")
        self.assertEqual(out, b"one\ntwo\n")
        self.assertRun(FAILED, "push", name, "--file", path, err_has="No such file")

    def test_a_line_longer_than_the_slot_is_exit_8_and_stops_there(self):
        name = self.queue("big", 8, 4)
        _, err = self.assertRun(MSGSIZE, "push", name, stdin=b"ok\nfour\ntoolong\nafter\n")
        self.assertIn("message 3: 7 bytes", err)
        self.assertIn("at most 4", err)
        self.assertIn("2 pushed before it", err)
        out, _ = self.assertRun(OK, "pop", name, "-n", "0", "-t", "0")
        self.assertEqual(out, b"ok\nfour\n")

    def test_full_queue_times_out_with_exit_6(self):
        name = self.queue("full", 2, 8)
        t0 = time.monotonic()
        _, err = self.assertRun(TIMEOUT, "push", name, "--timeout", "0.2", stdin=b"1\n2\n3\n4\n")
        self.assertGreaterEqual(time.monotonic() - t0, 0.2)
        self.assertIn("message 3 not pushed", err)
        self.assertIn("2 pushed before it", err)
        self.assertRun(TIMEOUT, "push", name, "--timeout", "0", stdin=b"x\n")
        self.assertEqual(stat_json(name)["depth"], 2)

    def test_empty_queue_times_out_with_exit_6(self):
        name = self.queue("empty")
        out, err = self.assertRun(TIMEOUT, "pop", name, "--timeout", "0")
        self.assertEqual(out, b"")
        self.assertIn("is empty", err)
        self.assertRun(OK, "push", name, stdin=b"a\nb\n")
        t0 = time.monotonic()
        out, err = self.assertRun(TIMEOUT, "pop", name, "--count", "3", "--timeout", "0.2")
        self.assertGreaterEqual(time.monotonic() - t0, 0.2)
        self.assertEqual(out, b"a\nb\n")
        self.assertIn("2 of 3", err)
        out, _ = self.assertRun(OK, "pop", name, "--count", "0", "--timeout", "0")
        self.assertEqual(out, b"")

    def test_a_waiting_pop_is_woken_by_a_push(self):
        name = self.queue("wake")
        popper = self.spawn("pop", name, "--timeout", "20")
        self.assertTrue(wait_until(lambda: stat_json(name)["consumer"]["live"]))
        self.assertRun(OK, "push", name, stdin=b"hello\n")
        out, err = popper.communicate(timeout=10)
        self.assertEqual((popper.returncode, out), (OK, b"hello\n"), err)

    def test_a_failed_write_keeps_the_message_in_the_queue(self):
        name = self.queue("keep")
        self.assertRun(OK, "push", name, stdin=b"precious\nsecond\n")
        with open("/dev/full", "wb") as full:
            p = subprocess.run([RQCTL, "pop", name, "-n", "2"], stdout=full, stderr=subprocess.PIPE)
        self.assertEqual(p.returncode, FAILED)
        self.assertIn(b"stays in queue", p.stderr)
        read_end, write_end = os.pipe()
        os.close(read_end)  # a reader that went away: EPIPE, not a silent death
        p = subprocess.run([RQCTL, "pop", name], stdout=write_end, stderr=subprocess.PIPE)
        os.close(write_end)
        self.assertEqual(p.returncode, FAILED, p.stderr)
        self.assertEqual(stat_json(name)["depth"], 2)
        out, _ = self.assertRun(OK, "pop", name, "-n", "2")
        self.assertEqual(out, b"precious\nsecond\n")


class Roles(RqctlCase):
    def test_a_held_consumer_role_is_exit_5_and_taken_over_after_death(self):
        name = self.queue("cons")
        holder = self.spawn("pop", name, "--timeout", "60")
        self.assertTrue(wait_until(lambda: stat_json(name)["consumer"]["live"]))
        st = stat_json(name)
        self.assertEqual(st["consumer"], {"live": True, "pid": holder.pid})
        out, _ = self.assertRun(OK, "stat", name)
        self.assertIn("live, pid %d" % holder.pid, out.decode())
        _, err = self.assertRun(BUSY, "pop", name, "--timeout", "0")
        self.assertIn("held by live process %d" % holder.pid, err)
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        st = stat_json(name)
        self.assertEqual(st["consumer"], {"live": False, "pid": holder.pid})
        self.assertRun(TIMEOUT, "pop", name, "--timeout", "0")  # the role is free again
        self.assertEqual(stat_json(name)["counters"]["consumer_takeovers"], 1)

    def test_a_held_producer_role_is_exit_5_unless_mpsc(self):
        name = self.queue("prod")
        holder = self.spawn("push", name, stdin=subprocess.PIPE)  # waits on its input
        self.assertTrue(wait_until(lambda: stat_json(name)["producer"]["live"]))
        self.assertEqual(stat_json(name)["producer"]["pid"], holder.pid)
        _, err = self.assertRun(BUSY, "push", name, stdin=b"x\n")
        self.assertIn("held by live process %d" % holder.pid, err)
        holder.communicate(b"from holder\n", timeout=10)
        self.assertEqual(holder.returncode, OK)
        self.assertRun(OK, "push", name, stdin=b"after\n")
        out, _ = self.assertRun(OK, "pop", name, "-n", "2")
        self.assertEqual(out, b"from holder\nafter\n")

        mpsc = self.queue("mpscprod", 8, 64, "--mpsc")
        first = self.spawn("push", mpsc, stdin=subprocess.PIPE)
        self.assertTrue(wait_until(lambda: stat_json(mpsc)["producer"]["live"]))
        self.assertRun(OK, "push", mpsc, stdin=b"second\n")
        first.communicate(b"first\n", timeout=10)
        self.assertEqual(first.returncode, OK)
        out, _ = self.assertRun(OK, "stat", mpsc)
        self.assertIn("many (mpsc)", out.decode())
        out, _ = self.assertRun(OK, "pop", mpsc, "-n", "2")
        self.assertEqual(out, b"second\nfirst\n")


class UnlinkInUse(RqctlCase):
    """Unlinking a queue in use would split it: refused unless --force, and
    with --force the users are told."""

    def test_unlink_is_refused_while_a_role_is_held(self):
        name = self.queue("inuse")
        holder = self.spawn("pop", name, "--timeout", "60")
        self.assertTrue(wait_until(lambda: stat_json(name)["consumer"]["live"]))
        _, err = self.assertRun(ATTACHED, "unlink", name)
        self.assertIn("consumer (pid %d)" % holder.pid, err)
        self.assertIn("--force", err)
        self.assertTrue(os.path.exists(os.path.join(SHM, "rq." + name)))
        producer = self.spawn("push", name, stdin=subprocess.PIPE)
        self.assertTrue(wait_until(lambda: stat_json(name)["producer"]["live"]))
        _, err = self.assertRun(ATTACHED, "unlink", name)
        self.assertIn("producer (pid %d) and consumer (pid %d)"
                      % (producer.pid, holder.pid), err)
        producer.communicate(b"", timeout=10)
        # --force: unlinked; the waiting consumer is told within a re-check
        t0 = time.monotonic()
        self.assertRun(OK, "unlink", "--force", name)
        self.assertFalse(os.path.exists(os.path.join(SHM, "rq." + name)))
        _, err = holder.communicate(timeout=10)
        self.assertLess(time.monotonic() - t0, 5)
        self.assertEqual(holder.returncode, UNLINKED, err)
        self.assertIn("unlinked", err.decode())
        # nobody holds a role any more: unlinked without --force
        name2 = self.queue("idle")
        self.assertRun(OK, "unlink", name2)

    def test_create_beside_an_unlinked_queue_in_use_is_refused(self):
        name = self.queue("split")
        holder = self.spawn("pop", name, "--timeout", "60")
        self.assertTrue(wait_until(lambda: stat_json(name)["consumer"]["live"]))
        self.assertRun(OK, "unlink", "--force", name)
        _, err = self.assertRun(UNLINKED, "create", name, "--slots", "8", "--slot-size", "64")
        self.assertIn("unlinked", err)
        holder.communicate(timeout=10)
        self.assertRun(OK, "create", name, "--slots", "8", "--slot-size", "64")

    def test_a_worker_blocks_a_coalescing_unlink(self):
        co = fresh("cwork")
        self.names.append(co)
        self.assertRun(OK, "create", "--coalesce", co)
        worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        self.children.append(worker)
        # A worker is a library user: hold the role with an OFD lock on the
        # lock object's consumer byte, as rq_coalesce_open does.
        import fcntl
        fd = take_lock(os.path.join(SHM, "rqcl." + co), fcntl.F_WRLCK, 2, 1, os.O_RDWR)
        try:
            _, err = self.assertRun(ATTACHED, "unlink", "--coalesce", co)
            self.assertIn("worker", err)
        finally:
            os.close(fd)
        self.assertRun(OK, "unlink", "--coalesce", co)


class StartUp(RqctlCase):
    def test_wait_waits_for_the_queue_to_be_created(self):
        name = fresh("wait")
        self.names.append(name)
        self.assertRun(NOENT, "pop", "--timeout", "0", name)
        t0 = time.monotonic()
        self.assertRun(NOENT, "pop", "--wait=0.3", "--timeout", "0", name)
        self.assertGreaterEqual(time.monotonic() - t0, 0.3)
        consumer = self.spawn("pop", "--wait=20", "--timeout", "20", name)
        watcher = self.spawn("stat", "--json", "--wait", name)
        time.sleep(0.3)
        self.assertIsNone(consumer.poll())
        self.assertRun(OK, "create", name, "--slots", "4", "--slot-size", "16")
        self.assertRun(OK, "push", "--wait", name, stdin=b"first\n")
        out, err = consumer.communicate(timeout=20)
        self.assertEqual((consumer.returncode, out), (OK, b"first\n"), err)
        out, err = watcher.communicate(timeout=20)
        self.assertEqual(watcher.returncode, OK, err)
        self.assertEqual(json.loads(out)["slot_count"], 4)

    def test_eexist_names_the_existing_geometry(self):
        name = self.queue("geom", 16, 100, "--mpsc")
        _, err = self.assertRun(EXISTS, "create", name, "--slots", "8", "--slot-size", "100")
        self.assertIn("16 slots of 100 bytes, mpsc", err)


class Corrupt(RqctlCase):
    def check_corrupt(self, name):
        for args in (("stat", name), ("stat", "--json", name), ("push", name),
                     ("pop", name, "--timeout", "0")):
            rc, out, err = run(*args, stdin=b"x\n")
            self.assertEqual(rc, CORRUPT, (args, err))
            self.assertIn(name, err)

    def test_corrupt_and_incompatible_segments_are_exit_4(self):
        path = lambda n: os.path.join(SHM, "rq." + n)
        name = self.queue("magic")
        poke(path(name), OFF_MAGIC, "<Q", 0x1234)
        self.check_corrupt(name)
        name = self.queue("version")
        poke(path(name), OFF_LAYOUT_VERSION, "<I", 99)
        self.check_corrupt(name)
        name = self.queue("geometry")
        poke(path(name), OFF_SLOT_COUNT, "<I", 0)
        self.check_corrupt(name)
        name = self.queue("offset", 8)
        poke(path(name), OFF_WRITE_OFFSET, "<I", 0xFFFFFFFF)
        self.check_corrupt(name)
        name = self.queue("short")
        os.truncate(path(name), 100)
        self.check_corrupt(name)
        co = fresh("comagic")
        self.names.append(co)
        self.assertRun(OK, "create", "--coalesce", co)
        poke(os.path.join(SHM, "rqc." + co), OFF_MAGIC, "<Q", 0x1234)
        self.assertRun(CORRUPT, "stat", co)
        self.assertRun(CORRUPT, "request", co)

    def test_unlink_of_an_unreadable_object_needs_force(self):
        """A queue this rqctl cannot read (corrupt, or made by an rq of
        another layout version whose users may still run) may be in use:
        unlink refuses to guess, and --force unlinks it."""
        path = lambda prefix, n: os.path.join(SHM, prefix + n)
        for what, off, fmt, value in (("uversion", OFF_LAYOUT_VERSION, "<I", 99),
                                      ("umagic", OFF_MAGIC, "<Q", 0x1234)):
            name = self.queue(what)
            poke(path("rq.", name), off, fmt, value)
            _, err = self.assertRun(ATTACHED, "unlink", name)
            self.assertIn("cannot tell whether queue '%s' is in use" % name, err)
            self.assertIn("--force", err)
            self.assertTrue(os.path.exists(path("rq.", name)))
            self.assertRun(OK, "unlink", "--force", name)
            self.assertFalse(os.path.exists(path("rq.", name)))
        co = fresh("ucomagic")
        self.names.append(co)
        self.assertRun(OK, "create", "--coalesce", co)
        poke(path("rqc.", co), OFF_MAGIC, "<Q", 0x1234)
        _, err = self.assertRun(ATTACHED, "unlink", "--coalesce", co)
        self.assertIn("cannot tell whether coalescing object", err)
        self.assertRun(OK, "unlink", "--coalesce", "--force", co)
        self.assertFalse(os.path.exists(path("rqc.", co)))

    def test_scribbled_counters_still_give_valid_json(self):
        name = self.queue("counter")
        # a multiple of 2N, as the empty queue's write_offset 0 asks
        poke(os.path.join(SHM, "rq." + name), OFF_PUSHED, "<Q", 2**64 - 16)
        st = stat_json(name)
        self.assertEqual(st["counters"]["pushed"], float(2**64 - 16))
        out, _ = self.assertRun(OK, "stat", name)
        self.assertIn("pushed:             18446744073709551600", out.decode())


class StatAndList(RqctlCase):
    def test_stat_text_and_json_agree(self):
        name = self.queue("stat", 6, 48)
        self.assertRun(OK, "push", name, stdin=b"a\nb\nc\n")
        self.assertRun(OK, "pop", name)
        st = stat_json(name)
        self.assertEqual((st["depth"], st["read_offset"], st["write_offset"]), (2, 1, 3))
        self.assertEqual(sorted(st["counters"]), sorted([
            "pushed", "popped", "producer_waits", "consumer_waits", "producer_wakes",
            "consumer_wakes", "producer_missed_wakes", "consumer_missed_wakes",
            "producer_takeovers", "consumer_takeovers", "lock_recoveries", "dead_reservations",
            "repairs"]))
        size = os.stat(os.path.join(SHM, "rq." + name)).st_size
        self.assertEqual((st["owner"], st["mode"], st["bytes"]),
                         ({"user": "root", "uid": 0}, "0600", size))
        self.assertIn(st["fences"], ("asymmetric", "full"))
        self.assertFalse(st["producer"]["live"])
        self.assertGreater(st["producer"]["pid"], 0)
        text = self.assertRun(OK, "stat", name)[0].decode()
        for line in ("queue:              " + name, "slots:              6",
                     "slot size:          48 bytes", "depth:              2",
                     "read offset:        1", "write offset:       3", "pushed:             3",
                     "popped:             1", "producer:           none (last pid %d)"
                     % st["producer"]["pid"], "owner:              root (uid 0)",
                     "mode:               0600", "size:               %d bytes" % size,
                     "prod. missed wakes: 0", "cons. missed wakes: 0"):
            self.assertIn(line + "\n", text)
        self.assertRegex(text, r"\nfences: +(asymmetric|full) ")

    def test_watch_gives_count_snapshots(self):
        name = self.queue("watch")
        t0 = time.monotonic()
        out, _ = self.assertRun(OK, "stat", "--json", "--watch=0.1", "--count", "3", name)
        self.assertGreaterEqual(time.monotonic() - t0, 0.2)
        lines = out.decode().splitlines()
        self.assertEqual(len(lines), 3)
        snaps = [json.loads(line) for line in lines]
        self.assertTrue(all(s["name"] == name for s in snaps))
        self.assertLess(snaps[0]["time"], snaps[1]["time"])
        self.assertLess(snaps[1]["time"], snaps[2]["time"])
        out, _ = self.assertRun(OK, "stat", "-w0.05", "-n", "2", name)
        text = out.decode()
        self.assertEqual(text.count("queue:              " + name), 2)
        self.assertIn("/s)", text)  # rates from the second snapshot on

    def test_watch_ends_with_exit_3_when_the_queue_goes(self):
        name = self.queue("watchgone")
        watcher = self.spawn("stat", "--json", "--watch=0.05", name)
        self.assertTrue(wait_until(lambda: watcher.stdout.readline() != b""))
        self.assertRun(OK, "unlink", name)
        _, err = watcher.communicate(timeout=10)
        self.assertEqual(watcher.returncode, NOENT, err)

    def test_list_shows_queues_and_coalescing_objects(self):
        q = self.queue("listq", 3, 9, "--mpsc")
        co = fresh("listc")
        self.names.append(co)
        self.assertRun(OK, "create", "--coalesce", co)
        bad = self.queue("listbad")
        poke(os.path.join(SHM, "rq." + bad), OFF_MAGIC, "<Q", 0x1234)
        out, _ = self.assertRun(OK, "list", "--json")
        entries = {(e["kind"], e["name"]): e for e in json.loads(out)}
        self.assertEqual(entries[("queue", q)]["slot_count"], 3)
        self.assertEqual(entries[("queue", q)]["mpsc"], True)
        self.assertEqual(entries[("coalesce", co)]["owed"], False)
        self.assertEqual(entries[("queue", bad)]["error"], "RQ_ECORRUPT")
        self.assertEqual(entries[("queue", bad)]["message"], "corrupt segment")
        text = self.assertRun(OK, "list")[0].decode()
        self.assertRegex(text, r"\nqueue +%s +root +0600 +1736 +3 slots x 9 B mpsc, depth 0"
                         % re.escape(q))
        self.assertRegex(text, r"\ncoalesce +%s +root +0600 +\d+ +idle" % re.escape(co))
        self.assertRegex(text, r"\nqueue +%s +root +0600 +\d+ +error: corrupt segment"
                         % re.escape(bad))
        for key in (("queue", q), ("coalesce", co), ("queue", bad)):
            self.assertEqual(entries[key]["owner"], {"user": "root", "uid": 0})
            self.assertEqual(entries[key]["mode"], "0600")
        self.assertEqual(entries[("queue", q)]["bytes"], 1736)
        self.assertEqual(entries[("queue", bad)]["bytes"],
                         os.stat(os.path.join(SHM, "rq." + bad)).st_size)

    def test_list_survives_hostile_names_in_dev_shm(self):
        # Not made by rq, but anybody can put such a file there.
        raw = b"rq.rqctl-test.%d.\"quote\\back\nline\x01\xff\xc3" % os.getpid()
        path = os.path.join(os.fsencode(SHM), raw)
        with open(path, "wb") as f:
            f.write(b"\0" * 16)
        try:
            out, _ = self.assertRun(OK, "list", "--json")
            entries = json.loads(out)  # valid JSON whatever the bytes
            shown = "rqctl-test.%d.\"quote\\x5cback\\x0aline\\x01\\xff\\xc3" % os.getpid()
            hits = [e for e in entries if e["name"] == shown]
            self.assertEqual(len(hits), 1, [e["name"] for e in entries])
            self.assertEqual(hits[0]["error"], "RQ_EINVAL")
            text = self.assertRun(OK, "list")[0]
            self.assertIn(shown.encode() + b" ", text)
            self.assertFalse(re.search(rb"[\x00-\x09\x0b-\x1f\x7f-\xff]", text))
        finally:
            os.unlink(path)


NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]

# struct flock on Linux x86-64 / arm64: type, whence, start, len, pid
def flock(kind, start, length):
    return struct.pack("hhxxxxqqixxxx", kind, os.SEEK_SET, start, length, 0)


def take_lock(path, kind, start, length, flags):
    """Opens PATH and takes an OFD lock on it; returns the fd."""
    import fcntl
    fd = os.open(path, flags)
    fcntl.fcntl(fd, fcntl.F_OFD_SETLK, flock(kind, start, length))
    return fd


class TrustTest(unittest.TestCase):
    """Two users (root and nobody, through util-linux setpriv), a stopped
    creator, a read-only squatter: rqctl neither adopts, hangs nor is
    squatted."""

    def need_root(self):
        if os.geteuid() != 0:
            self.skipTest("not root: no second user (setpriv needs root)")

    def test_a_foreign_queue_is_exit_9_naming_its_owner(self):
        self.need_root()
        name = fresh("foreign")
        p = subprocess.run([*NOBODY, RQCTL, "create", "--slots", "4", "--slot-size", "64",
                            "--mode", "0666", name], capture_output=True, timeout=30)
        self.assertEqual(p.returncode, OK, p.stderr)
        rc, _, err = run("create", "--slots", "4", "--slot-size", "64", name)
        self.assertEqual(rc, OWNER, err)
        self.assertIn("nobody (uid 65534)", err)
        self.assertIn("mode 0666", err)
        rc, _, err = run("push", "--timeout", "0", name, stdin=b"secret\n")
        self.assertEqual(rc, OWNER, err)
        rc, _, err = run("pop", "--timeout", "0", name)
        self.assertEqual(rc, OWNER, err)
        self.assertEqual(stat_json(name)["slot_count"], 4)  # an observer only reads
        self.assertEqual(run("unlink", name)[0], OK)

    def test_a_stopped_creator_holds_up_no_stat_and_makes_push_exit_6(self):
        name = fresh("stopped")
        self.assertEqual(run("create", "--slots", "4", "--slot-size", "64", name)[0], OK)
        pid = os.fork()
        if pid == 0:
            # A creator holds the init lock (byte 0) and is stopped.  Byte 0 of
            # the segment too: where the lock was before the lock object.
            try:
                import fcntl
                for prefix in ("rql.", "rq."):
                    path = os.path.join(SHM, prefix + name)
                    if os.path.exists(path):
                        take_lock(path, fcntl.F_WRLCK, 0, 1, os.O_RDWR)
                os.kill(os.getpid(), signal.SIGSTOP)
            finally:
                os._exit(0)
        try:
            os.waitpid(pid, os.WUNTRACED)
            t0 = time.monotonic()
            # stat only reads a complete segment and takes no lock: at once
            rc, _, err = run("stat", name, timeout=20)
            self.assertEqual(rc, OK, err)
            self.assertLess(time.monotonic() - t0, 2)
            # a producer needs the init lock: its open gives up
            rc, _, err = run("push", "--timeout", "0", name, stdin=b"a\n", timeout=20)
            self.assertEqual(rc, TIMEOUT, err)
            self.assertIn("stopped or very slow", err)
            self.assertLess(time.monotonic() - t0, 10)
            rc, _, err = run("list", timeout=20)
            self.assertEqual(rc, OK, err)
        finally:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        self.assertEqual(stat_json(name)["slot_count"], 4)
        run("unlink", name)

    def test_a_read_only_squatter_holds_nothing_up(self):
        self.need_root()
        name = fresh("squat")
        self.assertEqual(run("create", "--slots", "4", "--slot-size", "64", "--mode", "0644",
                             name)[0], OK)
        # nobody may read the queue: it takes read locks on bytes 0..2.
        squat = ("import fcntl, os, struct, sys, time\n"
                 "fd = os.open(sys.argv[1], os.O_RDONLY)\n"
                 "fcntl.fcntl(fd, fcntl.F_OFD_SETLK, struct.pack('hhxxxxqqixxxx', "
                 "fcntl.F_RDLCK, 0, 0, 3, 0))\n"
                 "print('held', flush=True)\n"
                 "time.sleep(60)\n")
        p = subprocess.Popen([*NOBODY, sys.executable, "-c", squat,
                              os.path.join(SHM, "rq." + name)], stdout=subprocess.PIPE)
        try:
            self.assertEqual(p.stdout.readline().strip(), b"held")
            rc, _, err = run("push", "--timeout", "1", name, stdin=b"a\n", timeout=20)
            self.assertEqual(rc, OK, err)
            rc, out, err = run("pop", "--count", "1", "--timeout", "1", name, timeout=20)
            self.assertEqual((rc, out), (OK, b"a\n"), err)
            s = stat_json(name)
            self.assertEqual(s["producer"]["live"], False)
            # as nobody: geometry and depth, liveness unknown
            p2 = subprocess.run([*NOBODY, RQCTL, "stat", "--json", name], capture_output=True,
                                timeout=20)
            self.assertEqual(p2.returncode, OK, p2.stderr)
            s = json.loads(p2.stdout)
            self.assertEqual((s["slot_count"], s["depth"]), (4, 0))
            self.assertIsNone(s["producer"]["live"])
        finally:
            p.kill()
            p.wait()
            p.stdout.close()
        run("unlink", name)

    def test_nobody_sees_every_queue_like_ipcs(self):
        """A second user lists and stats what it may read (read-only, roles
        unknown) and gets one ipcs-like line for what it may not."""
        self.need_root()
        readable = fresh("r644")
        hidden = fresh("r600")
        co = fresh("c600")
        try:
            self.assertEqual(run("create", "--slots", "4", "--slot-size", "64", "--mode", "0644",
                                 readable)[0], OK)
            self.assertEqual(run("create", "--slots", "2", "--slot-size", "8", hidden)[0], OK)
            self.assertEqual(run("create", "--coalesce", co)[0], OK)
            self.assertEqual(run("push", readable, stdin=b"a\nb\n")[0], OK)
            p = subprocess.run([*NOBODY, RQCTL, "list", "--json"], capture_output=True,
                               timeout=30)
            self.assertEqual(p.returncode, OK, p.stderr)
            entries = {(e["kind"], e["name"]): e for e in json.loads(p.stdout)}
            r = entries[("queue", readable)]
            self.assertEqual((r["depth"], r["mode"], r["owner"]["user"]), (2, "0644", "root"))
            self.assertIsNone(r["consumer"]["live"])
            h = entries[("queue", hidden)]
            self.assertEqual((h["error"], h["mode"], h["owner"]["uid"]), ("RQ_ESYS", "0600", 0))
            self.assertEqual(h["bytes"], os.stat(os.path.join(SHM, "rq." + hidden)).st_size)
            self.assertIn("no read access", h["message"])
            self.assertEqual(entries[("coalesce", co)]["error"], "RQ_ESYS")
            p = subprocess.run([*NOBODY, RQCTL, "list"], capture_output=True, timeout=30)
            self.assertEqual(p.returncode, OK, p.stderr)
            text = p.stdout.decode()
            self.assertRegex(text, r"\nqueue +%s +root +0600 +\d+ +error: no read access"
                             % re.escape(hidden))
            self.assertRegex(text, r"\nqueue +%s +root +0644 +\d+ +4 slots x 64 B, depth 2, "
                             r"producer unknown, consumer unknown" % re.escape(readable))
            p = subprocess.run([*NOBODY, RQCTL, "stat", readable], capture_output=True,
                               timeout=30)
            self.assertEqual(p.returncode, OK, p.stderr)
            self.assertIn("mode:               0644\n", p.stdout.decode())
            # nobody cannot unlink root's queue, and is not misled into it
            p = subprocess.run([*NOBODY, RQCTL, "unlink", "--force", readable],
                               capture_output=True, timeout=30)
            self.assertNotEqual(p.returncode, OK)
        finally:
            for n in (readable, hidden):
                run("unlink", "--force", n)
            run("unlink", "--coalesce", "--force", co)

    def test_an_impossible_geometry_is_exit_2_and_leaves_nothing(self):
        name = fresh("huge")
        rc, _, err = run("create", "--slots", str(1 << 30), "--slot-size", str(1 << 30), name)
        self.assertEqual(rc, USAGE, err)
        self.assertFalse(os.path.exists(os.path.join(SHM, "rq." + name)))
        self.assertEqual(run("stat", name)[0], NOENT)

    def test_list_shows_no_lock_objects(self):
        name = fresh("locks")
        self.assertEqual(run("create", "--slots", "2", "--slot-size", "8", name)[0], OK)
        rc, out, err = run("list", "--json")
        self.assertEqual(rc, OK, err)
        names = [o["name"] for o in json.loads(out)]
        self.assertEqual(names.count(name), 1)
        self.assertFalse(any(n.startswith("l.") for n in names))
        run("unlink", name)
        self.assertFalse(os.path.exists(os.path.join(SHM, "rql." + name)))


class Signals(RqctlCase):
    """SIGINT and SIGTERM end a waiting push, pop or stat --watch at once
    (rq_interrupt from the handler), with exit 128 + the signal and a
    clean close: the roles are free again, nothing counted as a death."""

    def stop(self, child, sig, live_key=None, name=None):
        if live_key:
            self.assertTrue(wait_until(lambda: stat_json(name)[live_key]["live"]))
        else:
            time.sleep(0.3)
        t0 = time.monotonic()
        child.send_signal(sig)
        _, err = child.communicate(timeout=10)
        # Promptly: the pop and push here would wait for ever, the watch 5 s
        # (a loaded 2-core machine running ASan has taken 0.74 s).
        self.assertLess(time.monotonic() - t0, 2.5, err)
        self.assertEqual(child.returncode, 128 + sig, err)
        return err.decode()

    def test_sigterm_ends_a_waiting_pop(self):
        name = self.queue("sigpop")
        err = self.stop(self.spawn("pop", name), signal.SIGTERM, "consumer", name)
        self.assertIn("stopped by SIGTERM: 0 messages popped", err)
        st = stat_json(name)
        self.assertFalse(st["consumer"]["live"])
        self.assertEqual(st["counters"]["consumer_takeovers"], 0)
        self.assertRun(OK, "push", name, stdin=b"after\n")
        out, _ = self.assertRun(OK, "pop", name)
        self.assertEqual(out, b"after\n")

    def test_sigint_ends_a_push_waiting_for_room(self):
        name = self.queue("sigpush", 2, 16, "--mpsc")
        child = self.spawn("push", name, stdin=subprocess.PIPE)
        child.stdin.write(b"a\nb\nc\n")
        child.stdin.flush()
        self.assertTrue(wait_until(lambda: stat_json(name)["depth"] == 2))
        err = self.stop(child, signal.SIGINT)
        self.assertIn("stopped by SIGINT: message 3 not pushed; 2 pushed before it", err)
        st = stat_json(name)
        self.assertEqual(st["lock"], {"held": False})
        self.assertEqual(st["counters"]["lock_recoveries"], 0)
        self.assertEqual(st["counters"]["producer_takeovers"], 0)

    def test_sigterm_ends_a_watch(self):
        name = self.queue("sigwatch")
        child = self.spawn("stat", "--watch=5", name)
        err = self.stop(child, signal.SIGTERM)
        self.assertIn("stopped by SIGTERM", err)

    def test_stat_shows_the_producers_lock(self):
        name = self.queue("lockline", 4, 16, "--mpsc")
        out, _ = self.assertRun(OK, "stat", name)
        self.assertRegex(out.decode(), r"\nproducers' lock: +free\n")
        self.assertIn("dead reservations:", out.decode())
        name2 = self.queue("nolockline")
        out, _ = self.assertRun(OK, "stat", name2)
        self.assertNotIn("producers' lock", out.decode())
        self.assertNotIn("lock", stat_json(name2))


def main():
    global RQCTL
    if len(sys.argv) < 2:
        sys.exit("usage: test_rqctl.py path/to/rqctl [unittest args]")
    RQCTL = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)


if __name__ == "__main__":
    main()
