from __future__ import annotations

import io

from orchestrator.execute import ProgressReporter


def test_progress_line_counts_and_eta():
    stream = io.StringIO()
    reporter = ProgressReporter(total=4, name="s", stream=stream, min_interval_s=0)
    reporter.update(running=2)
    assert "0/4 done, 0 failed, 2 running, 2 queued" in reporter.line()
    assert "ETA ?" in reporter.line()
    reporter.update(running=2, finished_ok=1)
    reporter.update(running=1, finished_failed=1)
    line = reporter.line()
    assert "1/4 done, 1 failed, 1 running, 1 queued" in line
    assert "ETA ?" not in line
    assert stream.getvalue().count("\n") == 3


def test_error_line_names_the_exception_of_a_multi_line_remote_report():
    from orchestrator.execute import error_line

    report = ("RayTaskError(ValueError): ray::ImplicitFunc.train() (pid=1)\n  File \"x.py\", line 3, in f\n"
              "    raise ValueError(...)\nValueError: bad value 'x'; accepted: 'y'\n\nmore detail on a line of its own")
    assert error_line(report) == "ValueError: bad value 'x'; accepted: 'y'"
    assert error_line("not run: its parent did not land") == "not run: its parent did not land"
