"""A failed trial is reported with its own error, not just its id."""

from ray_jobs.grid import GridReport
from ray_jobs.train_trials import _last_line


def test_failed_trials_name_their_cause():
    wrapped = RuntimeError("ray::ImplicitFunc.train() (pid=1)\n  File x.py, line 3\nValueError: boom at step 2\n")
    assert _last_line(wrapped) == "ValueError: boom at step 2"
    report = GridReport(trials_failed=["t1", "t2"], trial_errors={"t1": _last_line(wrapped)})
    message = report.failure_message()
    assert "t1: ValueError: boom at step 2" in message and "t2: no COMPLETED marker" in message
    assert not report.ok
