"""A worker ended by SIGTERM while the interpreter exits prints no ``Exception ignored ... SystemExit``."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[4]
# A process ended as Ray ends a worker: its SIGTERM handler raises SystemExit(1) (as Ray's does), and
# it is exiting, its interpreter waiting for a thread, when the signal comes.
WORKER = """
import signal, sys, threading, time
if {quiet}:
    from trainables.worker.termination import quiet_termination
    quiet_termination()
signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(1))
threading.Thread(target=time.sleep, args=(5,)).start()
print("exiting", flush=True)
"""


@pytest.mark.parametrize("quiet", [False, True])
def test_a_worker_ended_while_it_exits_says_nothing_with_quiet_termination(quiet):
    process = subprocess.Popen([sys.executable, "-c", WORKER.format(quiet=quiet)], cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    assert process.stdout.readline() == "exiting\n"
    time.sleep(0.5)  # the main thread has returned: the interpreter waits in threading._shutdown
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=30)
    if quiet:
        assert err == "" and process.returncode == 0
    else:  # what Ray copied into the job's log: the report that quiet_termination drops
        assert "Exception ignored in: <module 'threading'" in err and err.rstrip().endswith("SystemExit: 1")


def test_other_exceptions_that_cannot_propagate_are_still_reported():
    code = ("from trainables.worker.termination import quiet_termination\nquiet_termination()\n"
            "class A:\n    def __del__(self):\n        raise ValueError('still reported')\nA()\n")
    err = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=30).stderr
    assert "Exception ignored in" in err and "ValueError: still reported" in err
