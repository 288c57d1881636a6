"""peer.py - the Python side of the kill tests, the twin of tests/peer.c
(same command line, message format, progress file and exit codes):

    python3 peer.py produce|consume NAME TOTAL PROGRESS

Message: uint64 seq, uint32 n, n payload bytes (byte i = seq * 31 + i),
uint32 FNV-1a of all that; n = seq % 64.  PROGRESS holds two uint64: the
next sequence number (sent, or expected), then the duplicates seen.
"""
import ctypes
import mmap
import os
import struct
import sys

import rqshm

SLOTS, SLOT_SIZE = 64, 128


def fnv1a(data):
    h = 2166136261
    for b in data:
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h


def make(seq):
    n = seq % 64
    head = struct.pack("<QI", seq, n) + bytes((seq * 31 + i) & 0xFF for i in range(n))
    return head + struct.pack("<I", fnv1a(head))


def check(msg):
    """The sequence number of an intact message, or None if it is torn."""
    if len(msg) < 16:
        return None
    seq, n = struct.unpack_from("<QI", msg)
    if n != seq % 64 or len(msg) != 16 + n:
        return None
    if bytes(msg[12:12 + n]) != bytes((seq * 31 + i) & 0xFF for i in range(n)):
        return None
    (h,) = struct.unpack_from("<I", msg, 12 + n)
    return seq if h == fnv1a(msg[:12 + n]) else None


class Progress(ctypes.Structure):
    """The progress file's two words.  Each is stored with one aligned
    8-byte store: struct.pack_into zero-fills the field and then writes it
    byte by byte, so a kill in between left the producer's count at 0 once
    (it then sent 25,526 messages again)."""
    _fields_ = [("next", ctypes.c_uint64), ("dups", ctypes.c_uint64)]


def map_progress(path):
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.ftruncate(fd, 16)
    m = mmap.mmap(fd, 16)
    os.close(fd)
    return Progress.from_buffer(m)


def produce(name, total, prog):
    with rqshm.Queue.create(name, rqshm.PRODUCER, slot_count=SLOTS, slot_size=SLOT_SIZE) as q:
        seq = prog.next
        while seq < total:
            q.push(make(seq))
            seq += 1
            prog.next = seq
    return 0


def consume(name, total, prog):
    with rqshm.Queue.create(name, rqshm.CONSUMER, slot_count=SLOTS, slot_size=SLOT_SIZE) as q:
        while True:
            nxt, dups = prog.next, prog.dups
            if nxt >= total:
                return 0
            with q.peek() as msg:  # released at the end of the block
                seq = check(msg)
                if seq is None:
                    print("peer.py: torn message (%d bytes) after %d" % (len(msg), nxt),
                          file=sys.stderr)
                    return 3
                if seq > nxt:
                    print("peer.py: gap: got %d, expected %d" % (seq, nxt), file=sys.stderr)
                    return 4
                if seq < nxt:
                    prog.dups = dups + 1
                else:
                    prog.next = seq + 1


def main(argv):
    mode, name, total, path = argv[1], argv[2], int(argv[3]), argv[4]
    prog = map_progress(path)
    return {"produce": produce, "consume": consume}[mode](name, total, prog)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
