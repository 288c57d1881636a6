#!/bin/sh
# test_containers.sh RQCTL RQ_PRODUCER: rq between "containers" made with
# unshare(1) (docs/containers.md): two processes in separate PID and mount
# namespaces (the second also in its own user namespace) that share one
# tmpfs as /dev/shm, as Docker's --ipc=shareable / --ipc=container: do.
#
#  1. a producer in container A holds the role: container B is refused
#     (rqctl exit 5), though it cannot see A's processes;
#  2. A's producer is SIGKILLed: B takes the role over at once (the OFD
#     lock died with it; no PID is compared) and the takeover is counted;
#  3. B's consumer gets every message, A's and its own;
#  4. the shared tmpfs is small (1 MiB): creating a queue that does not
#     fit fails with a clear error (exit 1, "No space left on device"),
#     never SIGBUS.
# Needs root (or unprivileged user namespaces) and util-linux; exits 77
# (ctest: skipped) where namespaces cannot be made.
set -eu
rqctl=$1 producer=$2
if ! unshare --mount --pid --fork true 2>/dev/null; then
  echo "cannot make namespaces here: skipped"
  exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The outer mount namespace owns the shared tmpfs; it vanishes with it.
exec unshare --mount sh -eu -s "$rqctl" "$producer" "$work" <<'OUTER'
rqctl=$1 producer=$2 work=$3
ipc=$work/ipc
mkdir -p "$ipc"
mount -t tmpfs -o size=1m,mode=1777 rq-ipc "$ipc"
# container NAME [extra unshare options] -- COMMAND...: a new PID and mount
# namespace with $ipc as its /dev/shm and its own /proc.
container() {
  opts=$1; shift
  unshare $opts --pid --fork --mount --mount-proc \
    sh -c 'mount --bind "$0" /dev/shm && exec "$@"' "$ipc" "$@"
}
fail() { echo "FAIL: $*"; exit 1; }

# 1. container A: a producer holding the role (one message every 100 ms;
#    the queue, 16 slots, does not fill in the time this takes)
container "" "$producer" ctq 100 > "$work/a.out" 2>&1 &
a=$!
i=0
until [ -e "$ipc/rq.ctq" ] && grep -q "producer" "$work/a.out"; do
  i=$((i + 1)); [ $i -lt 500 ] || fail "container A's producer did not start"; sleep 0.01
done
sleep 0.2
rc=0
echo from-b | container "--user --map-root-user" "$rqctl" push ctq --timeout 0 2> "$work/b.err" || rc=$?
[ $rc -eq 5 ] || fail "container B pushed while A holds the role (exit $rc): $(cat "$work/b.err")"
echo "1. role held in container A: container B refused (exit 5): ok"

# 2. SIGKILL A's producer: from here it is the grandchild of the
#    background job (job -> unshare -> producer, PID 1 in its namespace)
children() { cat /proc/"$1"/task/*/children 2>/dev/null | tr ' ' '\n' | sed -n 1p; }
u=$(children $a)
p=$(children "$u")
[ -n "$p" ] && grep -q rq_producer /proc/"$p"/cmdline || fail "A's producer not found"
kill -KILL "$p"
wait $a 2>/dev/null || true
echo from-b | container "--user --map-root-user" "$rqctl" push ctq --timeout 1 \
  || fail "container B could not take the producer role over"
takeovers=$(container "" "$rqctl" stat ctq --json | sed -n 's/.*"producer_takeovers": *\([0-9]*\).*/\1/p')
[ "${takeovers:-0}" -ge 1 ] || fail "no takeover counted ($takeovers)"
echo "2. A's producer SIGKILLed: B took the role over, takeovers=$takeovers: ok"

# 3. B drains: A's messages, then B's own, none torn
container "--user --map-root-user" "$rqctl" pop ctq --count 0 --timeout 0 > "$work/msgs"
grep -q "^message 0 from producer" "$work/msgs" || fail "A's first message is missing"
[ "$(tail -n 1 "$work/msgs")" = "from-b" ] || fail "B's message is not last"
echo "3. B popped $(wc -l < "$work/msgs") messages, A's then its own: ok"

# 4. /dev/shm full: a 4 MiB queue in a 1 MiB tmpfs
rc=0
container "" "$rqctl" create big --slots 1024 --slot-size 4096 2> "$work/big.err" || rc=$?
[ $rc -eq 1 ] || fail "creating a queue larger than /dev/shm: exit $rc (want 1): $(cat "$work/big.err")"
grep -q "No space left on device" "$work/big.err" || fail "unclear error: $(cat "$work/big.err")"
echo "4. queue larger than /dev/shm: exit 1, \"$(cat "$work/big.err")\": ok"
umount "$ipc"
OUTER
