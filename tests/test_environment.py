"""`import latentmf` leaves OMP_NUM_THREADS as the user set it, and an absurd value does not end the
process (LLVM's libomp, which clang builds and the macOS wheels use, aborts at its first OpenMP
call when the variable asks for 100000000 threads; see cpp/bindings/openmp.cpp).

Each case runs in a fresh interpreter, since the variable matters when the OpenMP runtime starts.
The child reads the variable through os.environ and through the C library's getenv, after the
import, in a forked child process (whose OpenMP runtime starts again), and after a fit with the
default thread count; then it sets an absurd value itself and forks again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

CHILD = r"""
import ctypes, json, os, signal, sys, time
import latentmf

libc = ctypes.CDLL(None)
libc.getenv.restype = ctypes.c_char_p

def seen():
    value = libc.getenv(b"OMP_NUM_THREADS")
    return [os.environ.get("OMP_NUM_THREADS"), None if value is None else value.decode()]

def fit():
    ratings = latentmf.datasets.synthetic(200, 100, 3000)
    return latentmf.MatrixFactorization(factors=4, epochs=2).fit(ratings).history_["loss"][-1]

def in_a_forked_child(work):
    # What work() returns in a forked child, or why there is nothing (the child must finish in 120 s).
    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(read)
        os.write(write, json.dumps(work()).encode())
        os._exit(0)
    os.close(write)
    deadline = time.monotonic() + 120
    while (done := os.waitpid(child, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    if done[0] == 0:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
        return "killed after 120 s"
    output = os.read(read, 1 << 16)
    return json.loads(output) if done[1] == 0 else f"exit status {done[1]}"

report = {"after import": seen()}
# Forked before any OpenMP thread exists: GCC's libgomp cannot serve a child forked after its
# threads started, while LLVM's libomp starts its runtime again in every child.
report["child"] = in_a_forked_child(lambda: {"seen": seen(), "loss": fit()})
report["after fork"] = seen()
report["loss"] = fit()
report["after fit"] = seen()
report["max_threads"] = latentmf.build_info()["max_threads"]
# A value set after the import (beyond the processors) is the one a later fork keeps.
os.environ["OMP_NUM_THREADS"] = "3,100000000"
report["child after a change"] = in_a_forked_child(seen)
report["after a change and a fork"] = seen()
print(json.dumps(report))
"""

PROCESSORS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _run(value: str | None) -> dict:
    env = {key: item for key, item in os.environ.items() if key != "OMP_NUM_THREADS"}
    if value is not None:
        env["OMP_NUM_THREADS"] = value
    result = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="forks a child process (POSIX)")
@pytest.mark.parametrize("value", ["64", "100000000", "2,100000000", "1", None])
def test_import_leaves_omp_num_threads_as_it_was_and_fits_work(value):
    report = _run(value)
    for moment in ("after import", "after fork", "after fit"):
        assert report[moment] == [value, value], moment
    assert report["child"] == {"seen": [value, value], "loss": report["loss"]}
    assert report["max_threads"] <= PROCESSORS
    changed = ["3,100000000", "3,100000000"]
    assert (report["child after a change"], report["after a change and a fork"]) == (changed, changed)
