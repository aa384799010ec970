"""Plan counts, id stability (same inputs -> same ids, anywhere) and id sensitivity."""

import json
import os
import subprocess
import sys

import pytest

from ptft.cli.main import main
from ptft.study.estimate import estimate_plan
from ptft.study.plan import build_plan
from ptft.study.spec import parse_spec
from tests.study.conftest import PAPER, REPO, edited


def plan_of(raw):
    return build_plan(parse_spec(raw))


def test_paper_plan_counts(paper_raw):
    plan = plan_of(paper_raw)
    assert len(plan.cells) == 40 and len(plan.trials) == 40
    assert {c.train_dataset for c in plan.cells} == {"mnli", "paws", "socialiqa", "xsum", "tulu"}
    assert {t.lr for t in plan.trials if t.train_dataset == "xsum"} == {2e-7}
    assert {t.lr for t in plan.trials if t.train_dataset != "xsum"} == {2e-6}
    assert {c.epochs for c in plan.cells if c.train_dataset == "tulu"} == {5}
    assert {c.epochs for c in plan.cells if c.train_dataset != "tulu"} == {3}
    models = plan.eval_models()
    assert len([m for m in models if m.startswith("base:")]) == 8  # each base checkpoint once
    assert len([m for m in models if m.startswith("winner:")]) == 40
    # every model gets the same job list; io only where the dataset has it
    sizes = {len(jobs) for jobs in models.values()}
    assert len(sizes) == 1
    assert all(j.job.shots == 4 and j.job.mode == "faithful" for j in plan.eval_jobs)
    assert len({j.job_id for j in plan.eval_jobs}) == len(plan.eval_jobs)
    assert len({c.cell_id for c in plan.cells}) == 40


def test_ids_same_across_processes_and_directories(tmp_path):
    code = (f"import json,sys; sys.path.insert(0, {REPO!r}); from ptft.study.spec import load_spec; from ptft.study.plan import build_plan;"
            f"p=build_plan(load_spec({PAPER!r})); print(json.dumps([c.cell_id for c in p.cells]+[t.trial_id for t in p.trials]"
            "+[j.job_id for j in p.eval_jobs]))")
    runs = []
    for seed in ("0", "123"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True,
                             text=True, check=True).stdout
        runs.append(json.loads(out))
    assert runs[0] == runs[1]


def test_ids_change_with_defining_fields(paper_raw):
    base = plan_of(paper_raw)
    cell_ids = {c.cell_id for c in base.cells}
    trial_ids = {t.trial_id for t in base.trials}

    # epochs, seed, mode, a checkpoint: new cells (and so new trials)
    for change in ({"train__epochs": 2}, {"train__seed": 7}, {"train__mode": "fixed"}):
        other = plan_of(edited(paper_raw, **change))
        changed = {c.cell_id for c in other.cells if c.train_dataset != "tulu"}  # tulu overrides epochs
        assert changed.isdisjoint(cell_ids), change
    # batch size: same cells, new trials
    other = plan_of(edited(paper_raw, train__batch_size=2))
    assert {c.cell_id for c in other.cells} == cell_ids
    assert {t.trial_id for t in other.trials}.isdisjoint(trial_ids)
    # an extra lr adds trials, keeps old ones, and changes the winner's eval jobs
    other = plan_of(edited(paper_raw, train__learning_rates=[2e-6, 1e-5]))
    assert trial_ids <= {t.trial_id for t in other.trials}
    assert len(other.trials) == 40 + 32  # xsum has its own lr list
    base_winner_jobs = {j.job_id for j in base.eval_jobs if j.model_kind == "finetuned"}
    other_winner_jobs = {j.job_id for j in other.eval_jobs if j.model_kind == "finetuned"}
    assert len(base_winner_jobs & other_winner_jobs) > 0  # xsum cells did not change
    assert base_winner_jobs != other_winner_jobs
    # eval settings never change training ids; base eval ids change with shots
    other = plan_of(edited(paper_raw, eval__shots=[2]))
    assert {t.trial_id for t in other.trials} == trial_ids
    assert {j.job_id for j in other.eval_jobs}.isdisjoint({j.job_id for j in base.eval_jobs})
    # eval batch size never changes scores, so it keeps every id
    other = plan_of(edited(paper_raw, eval__batch_size=1))
    assert [j.job_id for j in other.eval_jobs] == [j.job_id for j in base.eval_jobs]


def test_checkpoint_order_does_not_change_ids(paper_raw):
    base = plan_of(paper_raw)
    raw = edited(paper_raw, model__checkpoints=list(reversed(paper_raw["model"]["checkpoints"])))
    other = plan_of(raw)
    assert {c.cell_id for c in other.cells} == {c.cell_id for c in base.cells}


def test_log_uniform_lrs_are_sampled_reproducibly(paper_raw):
    raw = edited(paper_raw, train__learning_rates={"log_uniform": [1e-6, 1e-4], "samples": 3, "seed": 5})
    a, b = plan_of(raw), plan_of(raw)
    lrs = sorted({t.lr for t in a.trials if t.train_dataset == "mnli"})
    assert len(lrs) == 3 and all(1e-6 <= lr <= 1e-4 for lr in lrs)
    assert [t.trial_id for t in a.trials] == [t.trial_id for t in b.trials]


def test_eval_models_all_evaluates_every_trial(smoke_raw):
    plan = plan_of(edited(smoke_raw, eval__models="all"))
    finetuned = {m for m in plan.eval_models() if not m.startswith("base:")}
    assert finetuned == {f"trial:{t.trial_id}" for t in plan.trials}
    assert len(plan.cells) == 8 and len(plan.trials) == 16


def test_estimate_is_six_n_tokens(paper_raw):
    from ptft import tasks

    plan = plan_of(paper_raw)
    est = estimate_plan(plan, gpu="h100", mfu=0.5)
    mnli = next(t for t in plan.trials if t.train_dataset == "mnli")
    task = tasks.get_task("mnli")
    expected = (task.train_subset_size - 200) * min(task.tokens_per_example, 2048) * 3
    assert est.train_tokens_per_trial[mnli.trial_id] == expected
    assert est.train_flops == pytest.approx(6 * est.num_params * est.train_tokens)
    assert est.gpu_hours == pytest.approx((est.train_flops + est.eval_flops) / (0.5 * 989e12) / 3600)
    slower = estimate_plan(plan, gpu="a100", mfu=0.5)
    assert slower.gpu_hours == pytest.approx(est.gpu_hours * 989 / 312)


def test_plan_cli_json(capsys):
    assert main(["plan", PAPER, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= {"cells", "trials", "eval_jobs", "estimate"}
    assert len(out["cells"]) == 40
    assert {"cell_id", "checkpoint", "train_dataset", "train_format", "epochs"} <= set(out["cells"][0])
    assert {"job_id", "model", "eval_dataset", "eval_format", "shots"} <= set(out["eval_jobs"][0])
    assert out["estimate"]["gpu_hours"] > 0


def test_plan_cli_table_and_errors(capsys, tmp_path):
    assert main(["plan", PAPER]) == 0
    out = capsys.readouterr().out
    assert "40 cells" in out and "40 trials" in out and "GPU-hours" in out and "nothing was launched" in out
    bad = tmp_path / "bad.yaml"
    bad.write_text(open(PAPER).read().replace("- mnli\n", "- mlni\n", 1))
    assert main(["plan", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "train.datasets[0]: unknown dataset 'mlni' (did you mean 'mnli'?)" in err


def test_mini_data_is_costed_as_mini(smoke_raw):
    from ptft import tasks
    from ptft.study.estimate import _train_rows

    mnli = tasks.get_task("mnli")
    assert _train_rows(mnli, "mini") == len(tasks.load_rows("mnli", mnli.train_split, "mini"))
    assert _train_rows(mnli, "mini") < _train_rows(mnli, "hub")
    unlimited = edited(smoke_raw, eval__limit=None)  # with a limit both count `limit` rows per set
    mini = estimate_plan(plan_of(unlimited))
    hub = estimate_plan(plan_of(edited(unlimited, data__source="hub")))
    assert mini.data_source == "local" and hub.data_source == "hub"
    assert mini.eval_tokens < hub.eval_tokens


def test_cpu_grid_gets_a_wall_clock_from_measured_throughput(smoke_raw, tmp_path):
    from ptft.core import storage
    from ptft.core.layout import GridLayout
    from ptft.study.estimate import CPU_THROUGHPUT

    raw = edited(smoke_raw, storage=str(tmp_path / "grid"), model__num_params=1_000_000)
    plan = plan_of(raw)
    assert plan.spec.resources.gpus_per_worker == 0
    recorded = estimate_plan(plan).wall
    assert recorded.where == "cpu" and recorded.throughput_source.startswith("CPU_THROUGHPUT")
    expected = (6.0 * 1_000_000 * estimate_plan(plan).train_tokens / CPU_THROUGHPUT.train_flops_per_s
                + len(plan.trials) * CPU_THROUGHPUT.trial_fixed_s["in_process"])
    assert recorded.train_seconds == pytest.approx(expected)
    # Once trials finish, their own manifests set the rate: here one ran 10x slower than the recorded one.
    out = GridLayout(plan.spec.storage_root()).trial(plan.trials[0].trial_id)
    rate = CPU_THROUGHPUT.train_flops_per_s / 10
    storage.atomic_write_json(out.manifest, {"tokens": {"real": 1000, "train_seconds": 6.0 * 1e6 * 1000 / rate}})
    storage.atomic_write_text(out.completed, "")
    measured = estimate_plan(plan).wall
    assert measured.throughput_source == "measured in this grid's storage"
    assert measured.train_seconds > 5 * recorded.train_seconds


def test_gpu_grid_splits_train_and_eval_hours(paper_raw):
    est = estimate_plan(plan_of(paper_raw), gpu="h100", mfu=0.5)
    assert est.wall.where == "gpu"
    assert est.train_gpu_hours + est.eval_gpu_hours == pytest.approx(est.gpu_hours)
    assert est.wall.train_wall_s == pytest.approx(est.train_gpu_hours * 3600 / est.wall.train_concurrency)
