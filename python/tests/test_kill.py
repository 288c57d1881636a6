"""Kill tests across languages: one side (or both) SIGKILLed at random and
started again, the other side checking every message: sequence numbers
without a gap, no torn message, duplicates only where a killed side could
not record what it had done (at most one per kill).

Both peers (tests/peer.c as rq_peer, and peer.py here) keep their progress
in a file, so a restarted one goes on where the killed one stopped."""
import os
import random
import signal
import struct
import subprocess
import sys
import time

import pytest

import rqshm

HERE = os.path.dirname(os.path.abspath(__file__))
PEER_PY = [sys.executable, os.path.join(HERE, "peer.py")]
SEED = int(os.environ.get("RQ_KILL_SEED", str(int(time.time()))))


def progress(path):
    try:
        with open(path, "rb") as f:
            data = f.read(16)
    except FileNotFoundError:  # killed before it made the file
        return 0, 0
    return struct.unpack("<QQ", data) if len(data) == 16 else (0, 0)


# peer.py imports rqshm from this source tree, as the tests do.
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(
    [os.path.dirname(HERE)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))


def start(cmd, mode, name, total, path):
    return subprocess.Popen(cmd + [mode, name, str(total), path], stderr=subprocess.PIPE,
                            env=ENV)


@pytest.fixture
def qname(tmp_path):
    name = "pykill.%d.%d" % (os.getpid(), random.randrange(1 << 30))
    yield name
    try:
        rqshm.unlink(name)
    except rqshm.ENOENT:
        pass


def run_with_kills(victims, steady, total, kills, tmp_path, name):
    """VICTIMS: {label: (cmd, mode)} killed at random and restarted until
    done; STEADY: (cmd, mode) never killed (or None).  Each kill waits
    until the victim has made progress since it was started (a loaded
    machine may take long to start Python), then a random 0-50 ms more.
    Returns (kills made, kills that hit a victim mid-stream, the
    consumer's duplicates)."""
    rnd = random.Random(SEED)
    print("RQ_KILL_SEED=%d" % SEED)
    paths = {label: str(tmp_path / ("%s.progress" % label)) for label in victims}
    steady_path = str(tmp_path / "steady.progress")
    procs = {label: start(cmd, mode, name, total, paths[label])
             for label, (cmd, mode) in victims.items()}
    base = {label: 0 for label in victims}
    steady_proc = start(steady[0], steady[1], name, total, steady_path) if steady else None
    made = hits = 0
    deadline = time.monotonic() + 600

    def check_steady():
        if steady_proc and steady_proc.poll() not in (None, 0):
            for p in procs.values():
                p.kill()
            pytest.fail("the checking side exited %d: %s"
                        % (steady_proc.returncode, steady_proc.stderr.read().decode()))

    while procs and time.monotonic() < deadline:
        for label, p in list(procs.items()):
            if p.poll() is not None:
                assert p.returncode == 0, "%s exited %d: %s" % (label, p.returncode,
                                                                p.stderr.read().decode())
                del procs[label]
        check_steady()
        if not procs or made >= kills:
            time.sleep(0.05)
            continue
        label = rnd.choice(sorted(procs))
        p = procs[label]
        while progress(paths[label])[0] == base[label] and p.poll() is None \
                and time.monotonic() < deadline:
            check_steady()
            time.sleep(0.005)
        if p.poll() is not None:
            continue
        time.sleep(rnd.uniform(0, 0.05))
        p.kill()
        p.wait()
        made += 1
        now = progress(paths[label])[0]
        hits += base[label] < now < total
        cmd, mode = victims[label]
        base[label] = now
        procs[label] = start(cmd, mode, name, total, paths[label])
    assert not procs, "still running at the deadline: %s" % sorted(procs)
    if steady_proc:
        steady_proc.wait(timeout=60)
        assert steady_proc.returncode == 0, steady_proc.stderr.read().decode()
    consumer = [l for l, (_, m) in victims.items() if m == "consume"]
    cpath = paths[consumer[0]] if consumer else steady_path
    nxt, dups = progress(cpath)
    assert nxt == total
    return made, hits, dups


def test_python_producer_killed_c_consumer_checks(tmp_path, qname):
    peer_c = [os.environ["RQ_PEER"]]
    made, hits, dups = run_with_kills({"py-producer": (PEER_PY, "produce")},
                                      (peer_c, "consume"), 300000, 30, tmp_path, qname)
    print("kills %d (mid-stream %d), duplicates %d" % (made, hits, dups))
    assert made >= 10 and hits >= made * 3 // 4
    assert dups <= made


def test_c_producer_and_python_consumer_killed(tmp_path, qname):
    peer_c = [os.environ["RQ_PEER"]]
    made, hits, dups = run_with_kills({"c-producer": (peer_c, "produce"),
                                       "py-consumer": (PEER_PY, "consume")},
                                      None, 200000, 30, tmp_path, qname)
    print("kills %d (mid-stream %d), duplicates %d" % (made, hits, dups))
    assert made >= 10 and hits >= made * 3 // 4
    assert dups <= made
