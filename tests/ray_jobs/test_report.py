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


def test_results_name_the_family_and_each_checkpoint_its_own_folder(tmp_path):
    """A local family's id is one checkpoint's folder: rows of every checkpoint used to read as that one."""
    from ptft.core.layout import GridLayout
    from ptft.grid.ledger import read_state
    from ptft.study.checkpoints import RevisionResolver
    from ptft.study.plan import build_plan
    from ptft.study.spec import load_spec
    from ray_jobs.eval_fanout import pending_work
    from ray_jobs.train_trials import trial_run
    from tests.ray_jobs.conftest import write_spec

    for step in ("step100", "step400"):
        (tmp_path / "ck" / step).mkdir(parents=True)
    path = write_spec(tmp_path, tmp_path / "ck", name="family", n_checkpoints=2)
    plan = build_plan(load_spec(str(path), ["model.name=tiny-family"]))
    layout = GridLayout(plan.spec.storage_root())
    work = pending_work(plan, read_state(plan, layout), layout, RevisionResolver())
    assert {run.model.identity.base_model for run in work} == {"tiny-family"}
    assert {run.model.path_or_id for run in work} == {str(tmp_path / "ck" / s) for s in ("step100", "step400")}
    first = next(t for t in plan.trials if t.checkpoint.label == "step100")
    config = trial_run(plan, first, layout, RevisionResolver(), None).grid.wandb_config
    assert config["model"] == str(tmp_path / "ck" / "step100") and config["base_model"] == "tiny-family"
