"""Helpers for tests/test_cluster.py that the workers of a Dask or Ray cluster import by name
(a module of its own, so that a worker does not import the test module).

Marker: an object hung on the models and the training loader of a sweep, which counts how often
it is pickled (in the process that pickles it: PICKLED) and records every unpickling as a line
"name pid" in a file (the workers are other processes on this machine). Copies (copy.deepcopy,
which the sweep uses on h2) are not pickling and are not counted.

StallingLoss: BCCrossEntropyLoss (the same arithmetic, so the same bits) that, for
lambda_c == 0.5 and only on the first attempt, writes its process id to stall_dir/stalled and
waits there (up to 60 s) for the test to kill its worker process.
"""
import os
import time

from bcml.loss import BCCrossEntropyLoss

PICKLED = []   # names of the markers pickled in this process


def _unpickled(name, log):
    with open(log, "a") as f:
        f.write("%s %d\n" % (name, os.getpid()))
    return Marker(name, log)


class Marker:
    def __init__(self, name, log):
        self.name, self.log = name, log

    def __reduce__(self):
        PICKLED.append(self.name)
        return _unpickled, (self.name, self.log)

    def __deepcopy__(self, memo):
        return self

    def __copy__(self):
        return self


def unpicklings(log):
    """[(name, pid)] of the markers unpickled so far."""
    if not os.path.exists(log):
        return []
    with open(log) as f:
        return [(name, int(pid)) for name, pid in (line.split() for line in f if line.strip())]


STALL_LAMBDA = 0.5


class StallingLoss(BCCrossEntropyLoss):
    def __init__(self, h1, h2, lambda_c, stall_dir=None, **kwargs):
        super().__init__(h1, h2, lambda_c, **kwargs)
        if stall_dir is None or lambda_c != STALL_LAMBDA:
            return
        try:   # only the first attempt stalls; a retry (after the kill) finds the file
            fd = os.open(os.path.join(stall_dir, "stalled"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.write(fd, b"%d" % os.getpid())
        os.close(fd)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:   # the test kills this process meanwhile
            time.sleep(0.05)
