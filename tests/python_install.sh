#!/bin/sh
# python_install.sh PYTHON SOURCE_DIR WORK_DIR LIBRARY: installs the Python
# package the way the README says (pip, no network, no build isolation, in
# a virtual environment that sees Debian's cffi), then uses the installed
# copy, from outside the source tree, to move one message.
set -eu
python=$1 src=$2 work=$3 lib=$4
rm -rf "$work"
"$python" -m venv --system-site-packages "$work/venv"
"$work/venv/bin/python" -m pip install -q --no-build-isolation --no-index "$src/python"
cd "$work"
RQ_LIBRARY=$lib "$work/venv/bin/python" - "$work" <<'PY'
import os, sys
import rqshm
assert rqshm.__file__.startswith(sys.argv[1] + "/venv/"), rqshm.__file__
name = "pyinstall.%d" % os.getpid()
with rqshm.Queue.create(name, rqshm.PRODUCER, slot_count=2, slot_size=16) as p, \
        rqshm.Queue.open(name, rqshm.CONSUMER) as c:
    p.push(b"installed")
    assert c.pop(timeout=1) == b"installed"
rqshm.unlink(name)
print("installed rqshm %s from %s: ok" % (rqshm.__version__, rqshm.__file__))
PY
