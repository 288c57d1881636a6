"""rqshm - Python interface to rq, the crash-tolerant shared-memory queue.

    import rqshm
    with rqshm.Queue.create("orders", rqshm.PRODUCER, slot_count=1024, slot_size=256) as q:
        q.push(b"hello")
    with rqshm.Queue.open("orders", rqshm.CONSUMER) as q:
        print(q.pop(timeout=1.0))

A thin layer (cffi, ABI mode: nothing to compile) over the shared library librq.so.0, found in this
order: the file named by the environment variable RQ_LIBRARY, a librq.so.0
next to this module, then the system's library path.

Timeouts are in seconds (float); None waits for ever, 0 never waits.
Errors are exceptions, one class per rq error code (rqshm.EBUSY,
rqshm.ETIMEDOUT, ...), all subclasses of rqshm.Error; the table is read
from the library when the module is imported.  (The package is not called
"rq": that name is taken by an unrelated, widely installed Python package.)
"""
import dataclasses
import typing
import math
import os
import sys
import time

import cffi

__all__ = ["Queue", "Stats", "Message", "ReservedBurst", "Error", "PRODUCER", "CONSUMER",
           "OBSERVER", "MPSC", "FULL_FENCES", "RECORDS", "MSG_REDELIVERED", "library_path",
           "name_valid", "unlink"]
__version__ = "0.1.0"

# The ABI this module is written for: librq.so.SOVERSION (CMakeLists.txt,
# RQ_SOVERSION).  The declarations below mirror rq.h for it (the tests
# compare the structs with the C compiler's layout).
SOVERSION = 0

PRODUCER, CONSUMER, OBSERVER = 1, 2, 3
MPSC, FULL_FENCES, RECORDS = 1 << 0, 1 << 1, 1 << 3
MSG_REDELIVERED = 1 << 0  # rq_msg_info.flags
_INFINITE = -1
_EAGAIN = -1  # RQ_EAGAIN (checked against the library at import)
# Non-blocking tries a blocking pop() makes before it sleeps (about 0.3 us
# each): Queue.pop.
SPIN_TRIES = 100
# How long close() waits for a call in progress on the handle (Queue.close).
CLOSE_WAIT = 0.1

# _MARK: a call marks itself in progress (appends to _inflight) as the
# first step inside its try, whose finally takes the mark off.  Python
# runs a signal handler, and raises its KeyboardInterrupt, only at a
# function's start, a backward jump or a call's return: here the append's.
# Made before the try, the mark would stay after such an interrupt, and
# close() would take the call for one still in progress (it would wait
# CLOSE_WAIT and leave the handle to the object's end).  Inside the try,
# an interrupt at the append's return finds the mark made, and the finally
# takes it off; none comes before the append (no call runs between the
# try's start and it).

# The most pop_burst() copies into in one call: each message takes
# slot_size bytes there (on a record queue, the largest record's), and a
# record queue's capacity counts bytes, not messages.
BURST_BYTES = 4 << 20

_STATS_FIELDS = [("uint32_t", n) for n in ("slot_count", "slot_size", "flags", "read_offset",
                                             "write_offset", "depth")] + \
    [("uint64_t", n) for n in ("pushed", "popped", "producer_waits", "consumer_waits",
                               "producer_wakes", "consumer_wakes", "producer_missed_wakes",
                               "consumer_missed_wakes", "producer_takeovers",
                               "consumer_takeovers", "lock_recoveries", "repairs")] + \
    [("int64_t", "producer_pid"), ("int64_t", "consumer_pid"), ("int", "producer_live"),
     ("int", "consumer_live"), ("int", "unlinked"), ("int", "lock_reserving"),
     ("int64_t", "lock_holder_pid"), ("int64_t", "lock_held_ms"),
     ("uint64_t", "dead_reservations")]

# rq_record_stats: what rq_stat_records adds for a record queue.
_RECORD_FIELDS = ("capacity", "max_record", "bytes_used", "bytes_free", "records",
                  "largest_record", "padding_bytes", "payload_bytes")

_CDEF = """
typedef struct rq rq;
typedef struct rq_config { uint32_t slot_count, slot_size, flags, mode; } rq_config;
typedef struct rq_stats { %s } rq_stats;
int rq_name_valid(const char *name);
int rq_open(rq **out, const char *name, int role, const rq_config *cfg);
int rq_open_wait(rq **out, const char *name, int role, const rq_config *cfg, int timeout_ms);
typedef struct rq_msg_info { uint64_t seq; uint32_t flags; uint32_t reserved; } rq_msg_info;
int rq_peek_info(rq *q, const void **msg, size_t *len, rq_msg_info *info, int timeout_ms);
int rq_pop_info(rq *q, void *buf, size_t cap, size_t *len, rq_msg_info *info, int timeout_ms);
int rq_next_seq(rq *q, uint64_t *seq);
int rq_push(rq *q, const void *msg, size_t len, int timeout_ms);
int rq_pop(rq *q, void *buf, size_t cap, size_t *len, int timeout_ms);
int rq_reserve(rq *q, void **slot, int timeout_ms);
int rq_reserve_len(rq *q, size_t len, void **slot, int timeout_ms);
typedef struct rq_record_stats { %s } rq_record_stats;
int rq_stat_records(rq *q, rq_record_stats *st);
int rq_commit(rq *q, size_t len);
int rq_peek(rq *q, const void **msg, size_t *len, int timeout_ms);
int rq_release(rq *q);
int rq_stat(rq *q, rq_stats *st);
void rq_close(rq *q);
void rq_interrupt(rq *q);
int rq_set_spin_us(rq *q, uint32_t us);
int rq_unlink(const char *name);
const char *rq_strerror(int err);
const char *rq_errname(int err);
int rq_poll_handle(rq *q, int *out);
int rq_poll_timeout(rq *q);
typedef struct rq_msg_view { const void *data; size_t len; uint64_t seq; uint32_t flags;
                             uint32_t reserved; } rq_msg_view;
int rq_push_burst(rq *q, const void *const *msgs, const size_t *lens, size_t count,
                  int timeout_ms);
int rq_pop_burst(rq *q, void *buf, size_t cap, size_t *lens, size_t max, int timeout_ms);
int rq_peek_burst(rq *q, rq_msg_view *msgs, size_t max, int timeout_ms);
int rq_release_burst(rq *q, size_t count);
int rq_reserve_burst(rq *q, void **slots, size_t count, int timeout_ms);
int rq_reserve_burst_len(rq *q, const size_t *lens, size_t count, void **bufs, int timeout_ms);
int rq_commit_burst(rq *q, const size_t *lens, size_t count);
""" % (" ".join("%s %s;" % f for f in _STATS_FIELDS),
       " ".join("uint64_t %s;" % f for f in _RECORD_FIELDS))

ffi = cffi.FFI()
ffi.cdef(_CDEF)


def _load():
    soname = "librq.so.%d" % SOVERSION
    env = os.environ.get("RQ_LIBRARY")
    if env:
        candidates = [env]
    else:
        here = os.path.join(os.path.dirname(os.path.abspath(__file__)), soname)
        candidates = [here] if os.path.exists(here) else []
        candidates.append(soname)
    errors = []
    for c in candidates:
        try:
            return ffi.dlopen(c), c
        except OSError as e:
            errors.append(str(e))
    raise ImportError("rqshm: cannot load %s (set RQ_LIBRARY to its path, or install rq "
                      "with -DRQ_SHARED=ON and run ldconfig): %s" % (soname, "; ".join(errors)))


_lib, library_path = _load()
_rq_open, _rq_push, _rq_pop = _lib.rq_open, _lib.rq_push, _lib.rq_pop
_rq_reserve, _rq_commit, _rq_peek, _rq_release = (_lib.rq_reserve, _lib.rq_commit,
                                                   _lib.rq_peek, _lib.rq_release)
_rq_stat, _rq_close, _rq_unlink = _lib.rq_stat, _lib.rq_close, _lib.rq_unlink
_rq_name_valid = _lib.rq_name_valid
_rq_push_burst, _rq_pop_burst = _lib.rq_push_burst, _lib.rq_pop_burst
_rq_peek_burst, _rq_release_burst = _lib.rq_peek_burst, _lib.rq_release_burst
_rq_peek_info, _rq_pop_info = _lib.rq_peek_info, _lib.rq_pop_info
_NULL = ffi.NULL


def _errname(code):
    return ffi.string(_lib.rq_errname(code)).decode()


def _strerror(code):
    return ffi.string(_lib.rq_strerror(code)).decode()


@dataclasses.dataclass(frozen=True)
class Stats:
    """A snapshot of a queue (rq_stat): geometry, offsets, depth, counters
    and role holders.  Counters may be off by one per crash."""
    slot_count: int
    slot_size: int
    flags: int
    read_offset: int
    write_offset: int
    depth: int
    pushed: int
    popped: int
    producer_waits: int
    consumer_waits: int
    producer_wakes: int
    consumer_wakes: int
    producer_missed_wakes: int
    consumer_missed_wakes: int
    producer_takeovers: int
    consumer_takeovers: int
    lock_recoveries: int
    repairs: int
    producer_pid: int
    consumer_pid: int
    producer_live: typing.Optional[bool]  # None: this handle cannot tell
    consumer_live: typing.Optional[bool]
    unlinked: bool  # the queue was unlinked while this handle had it open
    # MPSC: who holds the producers' lock, as the segment says
    lock_reserving: bool  # held for a reservation
    lock_holder_pid: int  # 0 free, -1 held with no pid recorded
    lock_held_ms: typing.Optional[int]  # at least this long; None: unknown
    dead_reservations: int  # lock recoveries whose dead owner was reserving
    # A record queue (rq_stat_records; None on a slot queue): bytes of the
    # ring, the largest message accepted, bytes in the ring now (headers,
    # payloads, padding) and free, messages in it now, the longest pushed,
    # padding and payload bytes published so far
    capacity: typing.Optional[int] = None
    max_record: typing.Optional[int] = None
    bytes_used: typing.Optional[int] = None
    bytes_free: typing.Optional[int] = None
    records: typing.Optional[int] = None
    largest_record: typing.Optional[int] = None
    padding_bytes: typing.Optional[int] = None
    payload_bytes: typing.Optional[int] = None


class Message(typing.NamedTuple):
    """A message with what rq_pop_info says about it (Queue.pop_info).
    seq: its number in the queue since the queue was created (0, 1, 2, ...;
    a redelivered message keeps its number).  redelivered: it may have been
    handed out before, to a consumer that died or closed before releasing
    it (RQ_MSG_REDELIVERED)."""
    data: bytes
    seq: int
    redelivered: bool


# ---- errors ---------------------------------------------------------------


class Error(Exception):
    """An rq error.  .code is the rq_error value (negative), .name its name
    ("RQ_EBUSY"); on RQ_ESYS .errno is the failing OS call's errno."""
    code = None

    def __init__(self, code, errno=None):
        self.code = code
        self.name = _errname(code)
        self.errno = errno
        text = _strerror(code)
        if errno:
            text += " (%s)" % os.strerror(errno)
        super().__init__("%s: %s" % (self.name, text))

    def __reduce__(self):
        # Made again from the code (pickle, copy, multiprocessing), not
        # from the message that args holds.
        return (type(self), (self.code, self.errno))


# Python's own exception that an rq code also is, so that generic handlers
# catch it (a timeout is a TimeoutError); codes not listed get Error alone.
_ALSO = {"RQ_ETIMEDOUT": TimeoutError, "RQ_EINVAL": ValueError, "RQ_ENOENT": LookupError,
         "RQ_ELOCKED": TimeoutError, "RQ_EINTR": InterruptedError}
_BY_CODE = {}


def _make_error_classes():
    """One class per code the library names, found by asking it about
    every code down to the first run of unknown ones."""
    unknown_run = 0
    code = -1
    while unknown_run < 16:
        name = _errname(code)
        if name == "RQ_UNKNOWN":
            unknown_run += 1
        else:
            unknown_run = 0
            short = name[3:]  # "RQ_EBUSY" -> "EBUSY"
            bases = (Error,) + ((_ALSO[name],) if name in _ALSO else ())
            cls = type(short, bases, {"code": code, "__doc__": _strerror(code),
                                      "__module__": __name__})
            _BY_CODE[code] = cls
            globals()[short] = cls
            __all__.append(short)
        code -= 1


_make_error_classes()
assert _errname(_EAGAIN) == "RQ_EAGAIN"


def _raise(rc):
    errno = ffi.errno if _BY_CODE.get(rc) is globals().get("ESYS") else None
    cls = _BY_CODE.get(rc, Error)
    raise cls(rc, errno)


def _ms(timeout):
    if timeout is None or timeout == math.inf:
        return _INFINITE
    if not timeout >= 0:  # negative, or NaN
        raise ValueError("timeout must be None (for ever) or >= 0 seconds")
    return min(int(math.ceil(timeout * 1000)), 2 ** 31 - 1)


def _name(name):
    if isinstance(name, str):
        name = name.encode()
    elif isinstance(name, (bytes, bytearray, memoryview)):
        name = bytes(name)
    else:
        raise TypeError("a queue name is str or bytes, not %s" % type(name).__name__)
    if b"\0" in name:
        raise ValueError("a queue name has no NUL character")
    return name


def name_valid(name):
    """True if NAME (str or bytes) is a valid queue name (1..200 of
    [A-Za-z0-9._-]); ValueError if it holds a NUL, TypeError if it is
    neither str nor bytes."""
    return bool(_rq_name_valid(_name(name)))


def unlink(name):
    """Removes the queue NAME (open handles keep working)."""
    rc = _rq_unlink(_name(name))
    if rc:
        _raise(rc)


# ---- zero-copy guards -------------------------------------------------------

# A zero-copy guard hands out memoryviews of bytes in the shared segment.
# A view or a slice of one kept past the guard's block would read or write
# a slot the ring has given back (and, after close(), unmapped memory).
# Every view of one ffi buffer shares one managed buffer, which holds a
# reference to it; so once the guard has released its own views, a
# reference beyond the caller's says that a view of the bytes escaped.


def _view(addr, size, readonly=False):
    """A memoryview of SIZE bytes at ADDR and the buffer behind it (None
    for an empty one, which points at nothing)."""
    if not size:  # nothing to point at (and writable when asked)
        return memoryview(b"" if readonly else bytearray()), None
    raw = ffi.buffer(addr, size)
    v = memoryview(raw).cast("B")
    return (v.toreadonly() if readonly else v), raw


def _still_viewed(raws, owners):
    """True if a view of one of RAWS (ffi buffers, or None) is still alive:
    each has only OWNERS references (the lists holding it) and the call's,
    else."""
    return any(raws[i] is not None and sys.getrefcount(raws[i]) > owners + 1
               for i in range(len(raws)))


def _views_alive_error(closed=False):
    if closed:  # a call that ended while close() waited handed them out
        return BufferError("the queue is closed, but views of its messages are still in use "
                           "(kept past their zero-copy block): its memory stays mapped until "
                           "the Queue object goes")
    return BufferError("the queue has views of its messages still in use (kept past their "
                       "zero-copy block): let them go before close()")


def _escaped_error(what):
    return BufferError("a view of the %s (or a slice of one) is still in use after its block: "
                       "copy what you keep (bytes(view[a:b])) and let the view go" % what)


class _Guard:
    """What the zero-copy guards share: their views, checked at the end
    (BufferError while one outlives the block), and the queue's list of
    buffers handed out, which close() checks."""

    def _hand_out(self, addr, size, readonly):
        v, raw = _view(addr, size, readonly)
        self._raws.append(raw)
        if raw is not None:
            self._queue._handed_out.append(raw)
        return v

    def _let_go(self, views):
        """Releases VIEWS; True if a view of their bytes is still alive.
        Its buffers then stay here (a later commit() checks again) and on
        the queue's list, which close() checks."""
        escaped = False
        for v in views:
            try:
                v.release()
            except BufferError:  # exported further (ffi.from_buffer, ...)
                escaped = True
        escaped = escaped or _still_viewed(self._raws, 2)  # this list and the queue's
        if not escaped:
            self._queue._forget(self._raws)
            self._raws = []
        return escaped


class Reservation(_Guard):
    """A reserved slot or record: .buf is a writable memoryview of the
    bytes reserved (slot_size, or the length asked for).  Publish with
    commit(length), at most that many; leaving the `with` block without it
    publishes nothing (an exception, too)."""

    def __init__(self, queue, addr, size):
        self._queue = queue
        self._raws = []
        self.buf = self._hand_out(addr, size, False)
        self.committed = False

    def commit(self, length):
        """Publishes the first LENGTH bytes of .buf; .buf is released.
        BufferError (nothing published, the slot still reserved: let the
        view go and commit again) while a view of .buf, or a slice of one,
        is still in use."""
        if self.committed:
            _raise(ESTATE.code)  # noqa: F821 (made at import)
        if self._let_go([self.buf]):
            raise _escaped_error("reserved bytes")
        self._queue._call(_rq_commit, length)
        self.committed = True

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        if self.committed:
            return False
        escaped = self._let_go([self.buf])
        self.committed = True  # dropped: nothing published
        self._queue._drop_reservation(exc_type is None)
        if escaped and exc_type is None:
            raise _escaped_error("reserved bytes")
        return False


class _Peek(_Guard):
    """`with q.peek() as msg:` msg is a read-only memoryview of the oldest
    message; its number and redelivery flag (rq_peek_info) are in .seq and
    .redelivered once the block is entered.  Leaving the block normally
    frees the slot (rq_release); an exception leaves the message in the
    queue, for the next peek."""

    def __init__(self, queue, timeout):
        self._queue = queue
        self._timeout = timeout
        self._view = None
        self._raws = []
        self.seq = None
        self.redelivered = None

    def __enter__(self):
        q = self._queue
        info = q._info
        self._raws = []
        # The view is made while the call still counts as in progress, so
        # that a close() from another thread waits for it and sees it.
        self._view = q._call(_rq_peek_info, q._addr, q._len, info, _ms(self._timeout),
                             then=lambda rc: self._hand_out(q._addr[0], q._len[0], True))
        self.seq = info.seq
        self.redelivered = bool(info.flags & MSG_REDELIVERED)
        return self._view

    def __exit__(self, exc_type, exc, tb):
        escaped = self._let_go([self._view])
        if exc_type is None:
            if escaped:  # the message stays, for the next peek
                raise _escaped_error("message")
            self._queue._call(_rq_release)
        return False


class ReservedBurst(_Guard):
    """Reserved slots or records (Queue.reserve_burst): .bufs is a list of
    writable memoryviews, one per message reserved (slot_size bytes each,
    or the lengths asked for).  commit(lengths) publishes the first
    len(lengths) of them, the i-th holding lengths[i] bytes, with one store
    (rq_commit_burst), and drops the rest.  Leaving the `with` block
    without commit() drops them all: nothing is published (an exception,
    too)."""

    def __init__(self, queue, ptrs, sizes):
        self._queue = queue
        self._raws = []
        self.bufs = [self._hand_out(p, n, False) for p, n in zip(ptrs, sizes)]
        self.committed = False

    def commit(self, lengths):
        """Publishes the first len(LENGTHS) buffers; .bufs are released.
        BufferError (nothing published, all still reserved) while a view of
        one of them, or a slice of one, is still in use."""
        if self.committed:
            _raise(ESTATE.code)  # noqa: F821 (made at import)
        lens = list(lengths)
        if self._let_go(self.bufs):
            raise _escaped_error("reserved bytes")
        self._queue._call(_lib.rq_commit_burst, ffi.new("size_t[]", lens or [0]), len(lens))
        self.committed = True

    def __len__(self):
        return len(self.bufs)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        if self.committed:
            return False
        escaped = self._let_go(self.bufs)
        self.committed = True
        self._queue._drop_reservation(exc_type is None)
        if escaped and exc_type is None:
            raise _escaped_error("reserved bytes")
        return False


class _PeekBurst(_Guard):
    """`with q.peek_burst(32) as msgs:` msgs is a list of read-only
    memoryviews of the oldest messages (up to the count asked for, at
    least one), their sequence numbers in .seqs and redelivery flags in
    .redelivered.  Leaving the block normally frees them all with one
    store (rq_release_burst); an exception leaves them in the queue, for
    the next peek."""

    def __init__(self, queue, max_count, timeout):
        self._queue = queue
        self._max = max_count
        self._timeout = timeout
        self._views = []
        self._raws = []
        self.seqs = []
        self.redelivered = []

    def __enter__(self):
        q = self._queue
        n = min(self._max, q.slot_count)
        if n < 1:
            _raise(EINVAL.code)  # noqa: F821 (made at import)
        msgs = ffi.new("rq_msg_view[]", n)
        # A guard entered again starts afresh (the last batch was released).
        self._views, self._raws, self.seqs, self.redelivered = [], [], [], []

        def hand_out(rc):  # while the call counts as in progress (_Peek)
            for i in range(rc):
                m = msgs[i]
                self._views.append(self._hand_out(m.data, m.len, True))
                self.seqs.append(m.seq)
                self.redelivered.append(bool(m.flags & MSG_REDELIVERED))
            return self._views
        return q._call(_rq_peek_burst, msgs, n, _INFINITE if self._timeout is None
                       else _ms(self._timeout), then=hand_out)

    def __exit__(self, exc_type, exc, tb):
        escaped = self._let_go(self._views)
        if exc_type is None and self._views:
            if escaped:  # the messages stay, for the next peek
                raise _escaped_error("message")
            self._queue._call(_rq_release_burst, len(self._views))
        return False


# ---- the queue ----------------------------------------------------------------


class Queue:
    """A handle on an rq queue in one role.  Use Queue.create / Queue.open,
    preferably as context managers (the handle is closed on exit; the queue
    itself persists until unlink())."""

    def __init__(self, handle, name, role):
        self._h = handle
        # One entry per call in progress on the handle, which close() waits
        # out (list.append and list.pop are atomic under the GIL).
        self._inflight = []
        self._deferred = None  # a handle close() left to __del__ (see there)
        self._handed_out = []  # ffi buffers behind the zero-copy views
        self.name = name
        self.role = role
        self._len = ffi.new("size_t *")
        self._addr = ffi.new("void **")
        self._info = ffi.new("rq_msg_info *")
        st = self.stat()
        self.slot_size = st.slot_size  # a record queue: its largest record
        self.slot_count = st.slot_count  # a record queue: its capacity in bytes
        self.kind = "records" if st.flags & RECORDS else "slots"
        self._buf = ffi.new("char[]", max(st.slot_size, 1))
        self._view = ffi.buffer(self._buf)

    @classmethod
    def _open(cls, name, role, cfg):
        out = ffi.new("rq **")
        rc = _rq_open(out, _name(name), role, cfg)
        if rc:
            _raise(rc)
        return cls(out[0], name, role)

    @classmethod
    def create(cls, name, role=PRODUCER, slot_count=1024, slot_size=256, flags=0, mode=0,
               kind="slots", capacity=None, max_record=None):
        """Opens NAME in ROLE, creating it with this geometry if missing
        (an existing queue of another geometry: EEXIST).  KIND "records"
        makes a record queue (RQ_RECORDS): messages of any length up to
        MAX_RECORD bytes packed into a ring of CAPACITY bytes (a multiple
        of 16, at least 64; MAX_RECORD at most CAPACITY / 2 - 4), instead
        of SLOT_COUNT slots of SLOT_SIZE bytes."""
        if kind == "records":
            if capacity is None or max_record is None:
                raise TypeError("a record queue needs capacity and max_record")
            slot_count, slot_size, flags = capacity, max_record, flags | RECORDS
        elif kind != "slots" or capacity is not None or max_record is not None:
            raise ValueError("kind is 'slots' (slot_count, slot_size) or 'records' "
                             "(capacity, max_record)")
        return cls._open(name, role, ffi.new("rq_config *", [slot_count, slot_size, flags, mode]))

    @classmethod
    def open(cls, name, role=CONSUMER):
        """Attaches to the existing queue NAME in ROLE (missing: ENOENT)."""
        return cls._open(name, role, ffi.NULL)

    @classmethod
    def open_wait(cls, name, role=CONSUMER, timeout=None):
        """Queue.open that waits up to TIMEOUT seconds (None: for ever) for
        NAME to be created and finished by another process (rq_open_wait),
        for a consumer or observer started before its producer.  It looks
        for the name with naps of 1 to 50 ms, so it returns at most 50 ms
        after the queue is complete.  Still missing when the time is up:
        ENOENT (a LookupError); ETIMEDOUT if the queue's creator was still
        initialising it."""
        out = ffi.new("rq **")
        rc = _lib.rq_open_wait(out, _name(name), role, ffi.NULL,
                               _INFINITE if timeout is None else _ms(timeout))
        if rc:
            _raise(rc)
        return cls(out[0], name, role)

    def _call(self, fn, *args, then=None):
        """FN(handle, *ARGS), marked in progress so that close() waits for
        it; the result, or THEN(result) (still marked: a zero-copy guard
        makes its views there), or the error raised."""
        inflight = self._inflight
        try:
            inflight.append(None)  # inside the try: see _MARK
            rc = fn(self._h, *args)  # the handle read once marked
            if rc >= 0 and then is not None:
                return then(rc)
        finally:
            inflight.pop()
        if rc < 0:
            self._fail(rc)
        return rc

    def _fail(self, rc):
        if not self._h:  # closed, maybe while the call waited: EINVAL, saying so
            e = EINVAL(EINVAL.code)  # noqa: F821 (made at import)
            e.args = ("RQ_EINVAL: the queue is closed",)
            raise e
        _raise(rc)

    def _forget(self, raws):
        """Drops RAWS from the list of buffers handed out (by identity:
        buffers compare by contents), and any other whose views are gone."""
        gone = set(id(raw) for raw in raws)
        kept = self._handed_out
        self._handed_out = [kept[i] for i in range(len(kept))
                            if id(kept[i]) not in gone and sys.getrefcount(kept[i]) > 2]

    def _drop_reservation(self, report):
        """Drops what this handle reserved (rq_commit_burst with no count:
        nothing published); REPORT: raise its error, if any."""
        if not self._h:
            return
        try:
            self._call(_lib.rq_commit_burst, ffi.new("size_t[]", [0]), 0)
        except Error:
            if report:
                raise

    def close(self):
        """Closes the handle.  A call in progress in another thread (a
        wait in pop(), say) is interrupted and raises EINVAL ("the queue is
        closed"), as any call after close() does; close() returns after
        it.  A call that does not return within CLOSE_WAIT seconds is one
        this thread is in itself (close() from a signal handler, which
        Python runs between two steps of the call): the handle is then
        freed when the Queue object goes, not under that call.
        BufferError, the handle left open, while a view from a zero-copy
        guard (or a slice of one) is still in use: its bytes would be
        unmapped."""
        # Taken in one step (no call between the load and the store, so no
        # thread switch or signal handler): a second close() finds NULL.
        # A call from now on gets RQ_EINVAL ("the queue is closed").
        h, self._h = self._h, _NULL
        if not h:
            return
        if _still_viewed(self._handed_out, 1):
            self._h = h
            raise _views_alive_error()
        until = time.monotonic() + CLOSE_WAIT
        while self._inflight:
            if time.monotonic() > until:
                self._deferred = h
                return
            _lib.rq_interrupt(h)
            time.sleep(0.001)
        if _still_viewed(self._handed_out, 1):  # handed out by a call just ended
            self._deferred = h
            raise _views_alive_error(closed=True)
        _rq_close(h)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        # No call is in progress once the object goes: each holds it.  A
        # view may still live (it does not hold the queue): then the handle
        # is left open, its memory mapped, rather than unmapped under it.
        deferred = getattr(self, "_deferred", None)
        if deferred and not _still_viewed(self._handed_out, 1):
            self._deferred = None
            _rq_close(deferred)
        if getattr(self, "_h", None):
            try:
                self.close()
            except Exception:  # BufferError: views alive, so the memory stays mapped
                pass

    @property
    def closed(self):
        return not self._h

    def interrupt(self):
        """Ends this handle's current wait (or its next one) with EINTR
        (also an InterruptedError); safe from another thread.  (From a
        Python signal handler it is too late: Python runs handlers between
        bytecodes, after the C call returns; call it from another thread.)"""
        inflight = self._inflight
        try:
            inflight.append(None)  # inside the try: see _MARK
            if self._h:
                _lib.rq_interrupt(self._h)
        finally:
            inflight.pop()

    def set_spin(self, seconds):
        """How long a waiting call of this handle polls before its first
        sleep (rq_set_spin_us): 0 (the default) sleeps at once; at most
        1 s, in steps of a microsecond.  A message or room that comes
        during the spin is taken without a wake-up system call on either
        side, at the price of a busy CPU for up to SECONDS per call."""
        if not 0 <= seconds <= 1:  # also refuses NaN
            raise ValueError("spin must be 0 to 1 s, not %r" % (seconds,))
        us = round(seconds * 1e6)
        self._call(_lib.rq_set_spin_us, us)

    def push(self, data, timeout=None):
        """Copies DATA (bytes, bytearray, memoryview, ...) into the queue,
        waiting up to TIMEOUT seconds while it is full."""
        if type(data) is not bytes:
            data = ffi.from_buffer(data)
        ms = _INFINITE if timeout is None else _ms(timeout)
        inflight = self._inflight
        try:
            inflight.append(None)  # inside the try: see _MARK
            rc = _rq_push(self._h, data, len(data), ms)
        finally:
            inflight.pop()
        if rc:
            self._fail(rc)

    def pop(self, timeout=None):
        """The oldest message, as bytes (at-most-once)."""
        buf, cap, ln, inflight = self._buf, self.slot_size, self._len, self._inflight
        ms = _INFINITE if timeout is None else _ms(timeout)
        try:
            inflight.append(None)  # inside the try: see _MARK
            h = self._h  # read once marked: close() waits for this call
            rc = _rq_pop(h, buf, cap, ln, 0)
            if rc == _EAGAIN and ms != 0:
                # Empty: try again a few microseconds before sleeping.  A
                # producer that is a little slower than this loop then finds
                # the consumer awake, and neither side pays for a sleep and a
                # wake signal per message.
                for _ in range(SPIN_TRIES):
                    rc = _rq_pop(h, buf, cap, ln, 0)
                    if rc != _EAGAIN:
                        break
                else:
                    rc = _rq_pop(h, buf, cap, ln, ms)
        finally:
            inflight.pop()
        if rc:
            self._fail(rc)
        return self._view[0:ln[0]]

    def pop_info(self, timeout=None):
        """The oldest message as a Message (data, seq, redelivered), with
        what rq_pop_info says about it; at-most-once, as pop()."""
        info = self._info
        self._call(_rq_pop_info, self._buf, self.slot_size, self._len, info,
                   _INFINITE if timeout is None else _ms(timeout))
        return Message(self._view[0:self._len[0]], info.seq,
                       bool(info.flags & MSG_REDELIVERED))

    def next_seq(self):
        """rq_next_seq.  A producer: the number the next message it pushes
        gets if no other producer goes first (right after a push, next_seq()
        - 1 is that message's number).  A consumer: the number of the oldest
        message not yet released.  EROLE for an observer."""
        out = ffi.new("uint64_t *")
        self._call(_lib.rq_next_seq, out)
        return out[0]

    def push_many(self, messages, timeout=None):
        """Pushes each message in turn; returns how many."""
        n = 0
        for data in messages:
            self.push(data, timeout)
            n += 1
        return n

    def pop_many(self, max_count, timeout=0):
        """Up to MAX_COUNT messages: waits up to TIMEOUT for the first, then
        takes what is there without waiting."""
        out = []
        ms = _ms(timeout)
        while len(out) < max_count:
            try:
                self._call(_rq_pop, self._buf, self.slot_size, self._len, ms if not out else 0)
            except (EAGAIN, ETIMEDOUT):  # noqa: F821
                break
            out.append(self._view[0:self._len[0]])
        return out

    def push_burst(self, messages, timeout=None):
        """Pushes MESSAGES (an iterable of bytes-like objects) in order, in
        batches of up to slot_count with one publish each (rq_push_burst);
        waits up to TIMEOUT seconds for room for each batch.  Returns how
        many were pushed: all of them, or the first N if the queue stayed
        full (EAGAIN / ETIMEDOUT if not even one went)."""
        if not isinstance(messages, (list, tuple)):
            messages = list(messages)
        total, ms = 0, _INFINITE if timeout is None else _ms(timeout)
        cap = self.slot_count
        while total < len(messages):
            bufs = [ffi.from_buffer(m) for m in messages[total:total + cap]]
            ptrs = ffi.new("void *[]", bufs)  # bufs keeps the bytes alive
            lens = ffi.new("size_t[]", [len(b) for b in bufs])
            try:
                rc = self._call(_rq_push_burst, ptrs, lens, len(bufs), ms)
            except (EAGAIN, ETIMEDOUT):  # noqa: F821
                if total:
                    break
                raise
            total += rc
        return total

    def pop_burst(self, max_count, timeout=0):
        """Up to MAX_COUNT messages as a list of bytes, copied and freed
        with one store (rq_pop_burst): waits up to TIMEOUT seconds for the
        first (None: for ever), then takes what is there; [] if none came.
        A call takes at most what a buffer of BURST_BYTES holds at
        slot_size (the largest record) a message, and at least one."""
        cap = self.slot_size
        n = min(max_count, self.slot_count, max(1, BURST_BYTES // max(cap, 1)))
        if n < 1:
            return []
        if getattr(self, "_burst_n", 0) < n:
            self._burst_buf = ffi.new("char[]", n * cap)
            self._burst_lens = ffi.new("size_t[]", n)
            self._burst_n = n
        buf, lens = self._burst_buf, self._burst_lens
        try:
            rc = self._call(_rq_pop_burst, buf, cap, lens, n,
                            _INFINITE if timeout is None else _ms(timeout))
        except (EAGAIN, ETIMEDOUT):  # noqa: F821
            return []
        view = ffi.buffer(buf, n * cap)
        return [view[i * cap:i * cap + lens[i]] for i in range(rc)]

    def peek_burst(self, max_count, timeout=None):
        """Zero-copy, at-least-once burst: `with q.peek_burst(32) as msgs:
        for m in msgs: handle(m)` frees them all when the block ends
        without an exception."""
        return _PeekBurst(self, max_count, timeout)

    def messages(self, timeout=None):
        """Iterates over messages as they arrive (pop); ends when none came
        within TIMEOUT seconds (None: never ends)."""
        while True:
            try:
                yield self.pop(timeout)
            except (EAGAIN, ETIMEDOUT):  # noqa: F821
                return

    def __iter__(self):
        return self.messages(None)

    def reserve(self, timeout=None, *, length=None):
        """Zero-copy push: `with q.reserve() as r: r.buf[:n] = ...; r.commit(n)`.
        LENGTH (keyword, so that reserve(timeout) keeps its meaning): the
        bytes to reserve (rq_reserve_len; on a record queue the space it
        takes), at most slot_size (else EMSGSIZE); None reserves slot_size
        (on a record queue: its largest record)."""
        # The guard (its view) is made while the call counts as in
        # progress: a close() from another thread waits for it and sees it.
        if length is None:
            size = self.slot_size
            return self._call(_rq_reserve, self._addr, _ms(timeout),
                              then=lambda rc: Reservation(self, self._addr[0], size))
        return self._call(_lib.rq_reserve_len, length, self._addr, _ms(timeout),
                          then=lambda rc: Reservation(self, self._addr[0], length))

    def reserve_burst(self, count=None, timeout=None, *, lengths=None):
        """Zero-copy burst push: `with q.reserve_burst(8) as rb: rb.bufs[0][:2]
        = b"hi"; ...; rb.commit([2, ...])` publishes the messages committed
        with one store.  COUNT slots at most (rq_reserve_burst: as many as
        are free, at least one; slot queues only); or LENGTHS, one per
        message (rq_reserve_burst_len, record queues too: all of them or,
        if the batch could never fit, its longest start that does).  Waits
        up to TIMEOUT seconds."""
        ms = _INFINITE if timeout is None else _ms(timeout)
        if lengths is None:
            if count is None or count < 1:
                _raise(EINVAL.code)  # noqa: F821 (made at import)
            n = min(count, self.slot_count)
            ptrs = ffi.new("void *[]", n)
            return self._call(_lib.rq_reserve_burst, ptrs, n, ms, then=lambda rc: ReservedBurst(
                self, [ptrs[i] for i in range(rc)], [self.slot_size] * rc))
        lens = list(lengths)
        if count is not None or not lens:
            _raise(EINVAL.code)  # noqa: F821
        ptrs = ffi.new("void *[]", len(lens))
        return self._call(_lib.rq_reserve_burst_len, ffi.new("size_t[]", lens), len(lens), ptrs,
                          ms, then=lambda rc: ReservedBurst(
                              self, [ptrs[i] for i in range(rc)], lens[:rc]))

    def peek(self, timeout=None):
        """Zero-copy, at-least-once pop: `with q.peek() as msg: handle(msg)`
        frees the slot only when the block ends without an exception."""
        return _Peek(self, timeout)

    def fileno(self):
        """A descriptor that becomes readable when this side can make
        progress (rq_poll_handle), for selectors, select.poll or asyncio's
        loop.add_reader: when it is readable (or poll_timeout() has
        passed), pop (push) with timeout 0 until EAGAIN, which arms it,
        then wait again.  It belongs to the handle: do not close it."""
        out = ffi.new("int *")
        self._call(_lib.rq_poll_handle, out)
        return out[0]

    def poll_timeout(self):
        """The longest wait, in seconds, on fileno() before trying again
        (rq_poll_timeout: 0.001 after a first arming without the barrier,
        else 1)."""
        return self._call(_lib.rq_poll_timeout) / 1000.0

    def stat(self):
        st = ffi.new("rq_stats *")
        self._call(_rq_stat, st)
        values = {f: getattr(st, f) for _, f in _STATS_FIELDS}
        for f in ("producer_live", "consumer_live"):
            values[f] = None if values[f] < 0 else bool(values[f])
        values["unlinked"] = bool(values["unlinked"])
        values["lock_reserving"] = bool(values["lock_reserving"])
        if values["lock_held_ms"] < 0:
            values["lock_held_ms"] = None
        if values["flags"] & RECORDS:
            rs = ffi.new("rq_record_stats *")
            self._call(_lib.rq_stat_records, rs)
            values.update({f: getattr(rs, f) for f in _RECORD_FIELDS})
        return Stats(**values)

    def __repr__(self):
        role = {PRODUCER: "PRODUCER", CONSUMER: "CONSUMER", OBSERVER: "OBSERVER"}.get(self.role)
        return "<rqshm.Queue %r %s%s>" % (self.name, role, " closed" if self.closed else "")
