#!/usr/bin/env python3
"""test_poll_examples.py - runs the event-loop examples against a live
producer: rq_poll_loop (a queue, a Unix socket and a timerfd in one epoll
set) and, when built, rq_uv_poll (libuv's uv_poll).

    python3 tests/test_poll_examples.py PRODUCER POLL_LOOP [UV_POLL]
"""
import os
import socket
import subprocess
import sys
import tempfile
import time


def remove_queue(name):
    for prefix in ("rq.", "rql.", "rqd.", "rqs."):
        try:
            os.unlink("/dev/shm/" + prefix + name)
        except FileNotFoundError:
            pass


def start_producer(producer, name):
    return subprocess.Popen([producer, name, "1"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def check_poll_loop(producer, poll_loop):
    name = "t.%d.pollloop" % os.getpid()
    remove_queue(name)
    sock = os.path.join(tempfile.mkdtemp(), "s")
    loop = subprocess.Popen([poll_loop, name, sock, "3"], stdout=subprocess.PIPE, text=True)
    prod = None
    try:
        for _ in range(200):
            if os.path.exists(sock):
                break
            time.sleep(0.01)
        prod = start_producer(producer, name)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(sock)
            s.sendall(b"hello")
            s.settimeout(5)
            assert s.recv(5) == b"hello", "the socket is not echoed"
        out, _ = loop.communicate(timeout=30)
    finally:
        if prod:
            prod.kill()
            prod.wait()
        if loop.poll() is None:
            loop.kill()
        remove_queue(name)
    assert loop.returncode == 0, "rq_poll_loop exited with %s" % loop.returncode
    queued = [l for l in out.splitlines() if l.startswith("queue: ")]
    assert "tick 3:" in out, out
    assert len(queued) >= 100, "only %d messages in 3 s: %s" % (len(queued), out[-500:])
    print("rq_poll_loop: %d queue messages, a socket echo, 3 timer ticks" % len(queued))


def check_uv_poll(producer, uv_poll):
    name = "t.%d.uvpoll" % os.getpid()
    remove_queue(name)
    uv = subprocess.Popen([uv_poll, name, "500"], stdout=subprocess.PIPE, text=True)
    prod = None
    try:
        time.sleep(0.2)
        prod = start_producer(producer, name)
        out, _ = uv.communicate(timeout=30)
    finally:
        if prod:
            prod.kill()
            prod.wait()
        if uv.poll() is None:
            uv.kill()
        remove_queue(name)
    assert uv.returncode == 0 and "done: 500 messages" in out, out
    print("rq_uv_poll: 500 messages through uv_poll")


def main(argv):
    producer, poll_loop = argv[1], argv[2]
    check_poll_loop(producer, poll_loop)
    if len(argv) > 3:
        check_uv_poll(producer, argv[3])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
