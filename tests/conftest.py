"""Threads for the test processes: the unit suite runs on pytest-xdist workers (``-n 2``).

Torch's OpenMP threads busy-wait by default. With two workers of two threads each on a
2-core machine (or beside other jobs), the spinning threads take the CPU from the working
ones: measured on this project's machine under load, a training step took 7-12x the wall
time and 6-10x the CPU time of the same step with ``OMP_WAIT_POLICY=PASSIVE`` or one thread.
So each worker gets its share of the cores, and idle threads sleep. Both are read when
torch loads, hence here, before any test module imports it; either can be overridden.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _workers > 1:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // _workers)))
