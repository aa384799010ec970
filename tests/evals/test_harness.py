"""lm-evaluation-harness tasks on a ptft model (evals/harness.py), with no downloads: a tiny OLMo and
one lm-eval multiple-choice task whose data ships in tests/evals/data/harness/.

The records equal lm-eval's own reported numbers (and those numbers follow from its per-sample
log-likelihoods, which equal ptft's engine on the same weights); they carry the model's identity;
a rerun skips the work; ptft and lm-eval records of one dataset name never collide or pair; a spec
that asks for harness tasks fails early when lm-eval is missing or a task name is unknown.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys

import pytest
import yaml

pytest.importorskip("lm_eval", reason="lm-eval is an optional extra (pip install 'ptft[harness]'): "
                    "the harness tests need it")

from evals.config import EvalConfig  # noqa: E402
from evals.harness import (  # noqa: E402
    HARNESS_FORMAT,
    HARNESS_SOURCE,
    HarnessConfig,
    HarnessError,
    check_tasks,
    merge_results,
    require_lm_eval,
    run_harness,
    run_name,
)
from evals.jobs import EvalJob, ModelRef  # noqa: E402
from evals.results import ResultRecord, read_records  # noqa: E402
from evals.runner import evaluate_model, model_identity  # noqa: E402
from ptft.core.ids import content_hash  # noqa: E402
from ptft.core.layout import EvalOutput  # noqa: E402

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "harness")
TASK = "ptft_tiny_mc"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SMOKE = os.path.join(REPO, "configs", "smoke.yaml")


@pytest.fixture(scope="module")
def include_path(tmp_path_factory) -> str:
    """The shipped task YAMLs with their jsonl's absolute path (`datasets` reads data_files from the cwd)."""
    folder = tmp_path_factory.mktemp("harness-tasks")
    for name in ("tiny_mc.yaml", "tiny_gen.yaml"):
        with open(os.path.join(DATA, name), encoding="utf-8") as f:
            config = yaml.safe_load(f)
        config["dataset_kwargs"]["data_files"]["test"] = os.path.join(DATA, "tiny_mc.jsonl")
        with open(folder / name, "w", encoding="utf-8") as f:
            yaml.safe_dump(config, f)
    return str(folder)


@pytest.fixture(scope="module")
def model(tiny_model_dir) -> ModelRef:
    """A fine-tuned identity on the tiny weights: every identity field is set and must come through."""
    return ModelRef.of(tiny_model_dir, model_kind="finetuned", base_model="tiny-olmo", checkpoint="step600",
                       checkpoint_step=600, train_dataset="rte", train_format="default", lr=1e-3,
                       trial_id="t-harness", epochs=1)


def _config(include_path: str, **changes) -> HarnessConfig:
    base = HarnessConfig(tasks=(TASK,), num_fewshot=2, limit=8, include_path=include_path, batch_size=4,
                         precision="fp32", device="cpu", bootstrap_iters=100)
    return dataclasses.replace(base, **changes)


@pytest.fixture(scope="module")
def first_run(model, include_path, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("harness-out"))
    config = _config(include_path)
    return out, config, run_harness(model, config, out)


def test_records_equal_lm_eval_numbers(first_run):
    import lm_eval

    out, config, records = first_run
    name = run_name(config)
    reported = json.load(open(EvalOutput(out).harness_file(name, "results.json")))
    numbers = reported["results"][TASK]
    assert [r.metric for r in records] == ["acc", "acc_norm"]
    for record in records:
        assert record.value == numbers[f"{record.metric},none"]
        assert record.std == numbers[f"{record.metric}_stderr,none"]
        assert record.eval_dataset == TASK and record.n == 8 and record.shots == 2
        assert record.source == HARNESS_SOURCE and record.eval_format == HARNESS_FORMAT and record.mode == "fixed"
        assert record.extra["harness_version"] == lm_eval.__version__
        assert record.extra["task_version"] == 1.0 and record.extra["task_hash"]
        assert record.extra["n_shot"] == 2 and record.extra["limit"] == 8
        assert record.extra["n_samples"] == {"original": 12, "effective": 8}
        assert record.predictions == EvalOutput(out).harness_file(name, "samples.jsonl")
    # lm-eval's number is what its per-sample log-likelihoods say: the argmax candidate is the gold one.
    samples = [json.loads(line) for line in open(records[0].predictions)]
    assert len(samples) == 8 and all(s["task"] == TASK for s in samples)
    hits = [max(range(len(s["filtered_resps"])), key=lambda i: s["filtered_resps"][i][0]) == s["target"]
            for s in samples]
    assert records[0].value == pytest.approx(sum(hits) / len(hits))


def test_lm_eval_scored_ptfts_weights(first_run, tiny_lm):
    """lm-eval's log-likelihoods are ptft's engine's on the same context and candidates: the model lm-eval
    scored is the one ptft loads (same weights, dtype, tokenizer)."""
    from evals.loglikelihood import loglikelihood
    from evals.requests import LoglikelihoodRequest

    out, config, records = first_run
    sample = json.loads(open(records[0].predictions).readline())
    context = sample["arguments"][0][0]
    candidates = tuple(arg[1] for arg in sample["arguments"])
    (ours,) = loglikelihood(tiny_lm, [LoglikelihoodRequest(context, candidates)], batch_size=4)
    theirs = [resp[0] for resp in sample["filtered_resps"]]
    assert list(ours.loglikelihoods) == pytest.approx(theirs, abs=1e-4)


def test_prompt_adapter_scores_through_its_virtual_tokens(tiny_model_dir, tiny_lm, include_path, tmp_path):
    """A prompt-tuned model (`ModelRef.adapter`): lm-eval's log-likelihoods and greedy generations are
    ptft's engine's with the adapter loaded, and differ from the bare base's."""
    from evals.generation import generate
    from evals.loglikelihood import loglikelihood
    from evals.model_loading import load_model
    from evals.requests import GenerationRequest, LoglikelihoodRequest

    from .test_adapters import _save_adapter

    adapter = _save_adapter(tiny_model_dir, str(tmp_path / "prompt"), "prompt_tuning")
    model = ModelRef.of(tiny_model_dir, adapter=adapter, model_kind="finetuned", base_model="tiny-olmo",
                        checkpoint="step600", train_dataset="rte", train_format="default", lr=1e-3,
                        method="prompt-5")
    config = _config(include_path, tasks=(TASK, "ptft_tiny_gen"), limit=3, num_fewshot=1, batch_size=2)
    out = str(tmp_path / "out")
    records = run_harness(model, config, out)
    assert {(r.eval_dataset, r.metric) for r in records} == {(TASK, "acc"), (TASK, "acc_norm"),
                                                             ("ptft_tiny_gen", "exact_match")}
    assert "adapter_sha256" in json.load(open(EvalOutput(out).harness(run_name(config))))["cache_inputs"]["model"]
    prompted = load_model(tiny_model_dir, precision="fp32", device="cpu", adapter=adapter)
    samples = [json.loads(line) for line in open(records[0].predictions)]
    for sample in (s for s in samples if s["task"] == TASK):
        request = LoglikelihoodRequest(sample["arguments"][0][0], tuple(a[1] for a in sample["arguments"]))
        theirs = [resp[0] for resp in sample["filtered_resps"]]
        (ours,) = loglikelihood(prompted, [request], batch_size=4)
        assert list(ours.loglikelihoods) == pytest.approx(theirs, abs=1e-4)
        (bare,) = loglikelihood(tiny_lm, [request], batch_size=4)
        assert list(bare.loglikelihoods) != pytest.approx(theirs, abs=1e-4)
    generated = [s for s in samples if s["task"] == "ptft_tiny_gen"]
    assert len(generated) == 3
    ours = generate(prompted, [GenerationRequest(s["arguments"][0][0], ("\n",), 6) for s in generated])
    assert [o.text for o in ours] == [s["resps"][0][0] for s in generated]


def test_records_carry_the_models_identity(first_run, model):
    out, config, records = first_run
    for record in records:
        assert record.identity() == model.identity
        # the same model key as ptft's own records of this model (evaluate_model's `model_key`)
        assert record.extra["model_key"] == content_hash(model_identity(model), length=16)
    marker = json.load(open(EvalOutput(out).harness(run_name(config))))
    assert marker["cache_inputs"]["model"] == model_identity(model)
    assert marker["cache_inputs"]["harness_version"] == require_lm_eval()
    assert TASK in marker["cache_inputs"]["task_configs"]
    assert [ResultRecord.from_dict(row) for row in marker["records"]] == records
    assert read_records(EvalOutput(out).results) == records


def test_rerun_skips_and_a_changed_setting_recomputes(first_run, model, include_path):
    out, config, records = first_run
    files = [EvalOutput(out).harness(run_name(config)),
             *(EvalOutput(out).harness_file(run_name(config), s) for s in ("samples.jsonl", "results.json"))]
    before = [os.stat(f).st_mtime_ns for f in files]
    assert run_harness(model, config, out) == records
    assert [os.stat(f).st_mtime_ns for f in files] == before  # nothing rewritten: lm-eval did not run

    fewer = dataclasses.replace(config, limit=6)
    assert run_name(fewer) == run_name(config)  # same task set: the same marker, recomputed in place
    changed = run_harness(model, fewer, out)
    assert [r.n for r in changed] == [6, 6] and changed[0].extra["cache_key"] != records[0].extra["cache_key"]
    assert read_records(EvalOutput(out).results) == changed
    assert run_harness(model, config, out)[0].n == 8  # and back


def test_ptft_and_harness_records_share_the_folder(model, include_path, tmp_path):
    """The fan-out's order (harness, then ptft's jobs, then the merge): results.jsonl holds both, with one
    identity and model key, and rerunning evaluate_model alone never drops the harness's marker."""
    out = str(tmp_path)
    harness = run_harness(model, _config(include_path), out)
    ptft = evaluate_model(model, [EvalJob("rte", "default", 0)], EvalConfig(limit=4, batch_size=4, device="cpu",
                          precision="fp32", bootstrap_resamples=50), out, data_source="mini", progress=False)
    assert {r.source for r in read_records(EvalOutput(out).results)} == {"ptft"}  # evaluate_model's table
    merge_results(EvalOutput(out), harness)
    table = read_records(EvalOutput(out).results)
    assert sorted(r.source for r in table) == ["lm_eval", "lm_eval", "ptft"]
    assert {r.identity() for r in table} == {model.identity}
    assert {r.extra["model_key"] for r in table} == {ptft[0].extra["model_key"]}


def test_sources_never_collide_or_pair(first_run):
    """A ptft record and an lm_eval record of one dataset name, format, shots and metric: distinct keys,
    and the transfer table pairs each fine-tuned record with its own source's base only."""
    from evals.analysis.compute import analyze
    from evals.analysis.frame import check_duplicates

    _, _, records = first_run
    lm_ft = dataclasses.replace(records[0], eval_dataset="rte", eval_format="default", value=0.75)
    lm_base = dataclasses.replace(lm_ft, model_kind="base", train_dataset=None, train_format=None, lr=None,
                                  trial_id=None, epochs=None, value=0.25)
    ptft_ft = dataclasses.replace(lm_ft, source="ptft", value=0.5, extra={})
    ptft_base = dataclasses.replace(lm_base, source="ptft", value=0.5, extra={})
    both = [lm_ft, lm_base, ptft_ft, ptft_base]
    check_duplicates(both)  # no DuplicateRecordError: the key includes the source
    assert len({r.key() for r in both}) == 4
    transfer = analyze(both).transfer
    rows = {row["source"]: row for row in transfer.to_dict("records") if row["eval_dataset"] == "rte"}
    assert set(rows) == {"lm_eval", "ptft"}
    assert rows["lm_eval"]["delta"] == pytest.approx(0.5) and rows["ptft"]["delta"] == pytest.approx(0.0)


# ------------------------------------------------------------------------------ errors, the spec
def test_unknown_task_lists_close_matches(include_path):
    with pytest.raises(HarnessError, match=r"harness_tasks\[1\]: unknown lm-eval task 'ptft_tiny_mcq'.*"
                                           r"close matches: ptft_tiny_mc"):
        check_tasks([TASK, "ptft_tiny_mcq"], include_path)
    with pytest.raises(HarnessError, match="is not a folder"):
        check_tasks([TASK], os.path.join(include_path, "missing"))


def test_unknown_task_fails_before_loading(model, include_path, tmp_path):
    config = _config(include_path, tasks=("ptft_tiny_mcq",))
    with pytest.raises(HarnessError, match="close matches: ptft_tiny_mc"):
        run_harness(dataclasses.replace(model, path_or_id=str(tmp_path / "no-model")), config, str(tmp_path))
    assert not os.path.exists(tmp_path / "harness")


def test_missing_or_wrong_lm_eval(monkeypatch):
    import lm_eval

    monkeypatch.setattr(lm_eval, "__version__", "0.4.2")
    with pytest.raises(HarnessError, match=r"lm-eval 0.4.2 is installed.*lm-eval>=0.4.13,<0.5"):
        require_lm_eval()
    monkeypatch.setitem(sys.modules, "lm_eval", None)  # what `import lm_eval` sees when it is not installed
    with pytest.raises(HarnessError, match=r"not installed.*pip install 'ptft\[harness\]'"):
        require_lm_eval()


def _smoke(**eval_fields) -> dict:
    with open(SMOKE, encoding="utf-8") as f:
        raw = yaml.safe_load(f)
    raw["eval"].update(eval_fields)
    return raw


def test_spec_without_lm_eval_names_the_install(monkeypatch):
    from ptft.study.spec import SpecError, parse_spec

    monkeypatch.setitem(sys.modules, "lm_eval", None)
    assert parse_spec(_smoke(), base_dir=os.path.dirname(SMOKE)).eval.harness_config() is None  # not asked: fine
    with pytest.raises(SpecError, match=r"eval\.harness_tasks.*pip install 'ptft\[harness\]'"):
        parse_spec(_smoke(harness_tasks=["hellaswag"]), base_dir=os.path.dirname(SMOKE))


def test_spec_harness_fields(include_path):
    from ptft.study.spec import SpecError, parse_spec

    base_dir = os.path.dirname(SMOKE)
    spec = parse_spec(_smoke(harness_tasks=["hellaswag", TASK], harness_shots=0, harness_limit=5,
                             harness_include_path=include_path), base_dir=base_dir)
    config = spec.eval.harness_config()
    assert config == HarnessConfig(tasks=("hellaswag", TASK), num_fewshot=0, limit=5, include_path=include_path,
                                   batch_size=16, max_length=2048, precision="auto", device=None,
                                   fewshot_seed=1234, bootstrap_iters=1000)
    with pytest.raises(SpecError, match=r"eval\.harness_tasks\[0\]: unknown lm-eval task 'hellaswg'.*hellaswag"):
        parse_spec(_smoke(harness_tasks=["hellaswg"]), base_dir=base_dir)
    with pytest.raises(SpecError, match=r"eval\.harness_tasks\[1\]: 'hellaswag' is listed twice"):
        parse_spec(_smoke(harness_tasks=["hellaswag", "hellaswag"]), base_dir=base_dir)
    with pytest.raises(SpecError, match=r"eval\.harness_limit: is 5, but eval\.harness_tasks is empty"):
        parse_spec(_smoke(harness_limit=5), base_dir=base_dir)
    with pytest.raises(SpecError, match=r"eval\.harness_tasks: is empty, but harness_include_path is set"):
        parse_spec(_smoke(harness_include_path=include_path), base_dir=base_dir)
    with pytest.raises(SpecError, match=r"eval\.harness_shots"):
        parse_spec(_smoke(harness_tasks=["hellaswag"], harness_shots=-1), base_dir=base_dir)
    with pytest.raises(SpecError, match=r"eval\.harness_include_path: 'no/such/tasks' is not a folder"):
        parse_spec(_smoke(harness_tasks=[TASK], harness_include_path="no/such/tasks"), base_dir=base_dir)


def test_the_ledger_counts_a_model_done_only_with_its_harness_marker(include_path, tmp_path):
    """Harness tasks added to a grid whose ptft records are all there: its models are evaluated again
    (ptft's jobs come from the cache, the harness runs), until the harness marker is written."""
    import json

    from evals.harness import run_name
    from ptft.core import storage
    from ptft.core.layout import GridLayout
    from ptft.grid.ledger import read_state
    from ptft.study.plan import build_plan
    from ptft.study.spec import parse_spec
    from tests.ray_jobs.conftest import write_spec

    for step in ("step100", "step400"):
        (tmp_path / "ck" / step).mkdir(parents=True)
    raw = yaml.safe_load(write_spec(tmp_path, tmp_path / "ck", name="h").read_text())

    def state(**eval_fields):
        spec_raw = dict(raw, eval={**raw["eval"], **eval_fields})
        plan = build_plan(parse_spec(spec_raw))
        return plan, read_state(plan, GridLayout(plan.spec.storage_root()))

    plan, before = state()
    layout = GridLayout(plan.spec.storage_root())
    base_jobs = [j for j in plan.eval_jobs if j.model_kind == "base"]
    for job in base_jobs:
        storage.atomic_write_text(layout.evals(f"base-{job.checkpoint}").record(job.job_id),
                                  json.dumps({"job_id": job.job_id, "value": 0.5, "metric": "accuracy"}))
    _, done = state()
    assert all(done.evals[j.job_id] == "done" for j in base_jobs)
    harness_plan, pending = state(harness_tasks=[TASK], harness_include_path=include_path)
    assert all(pending.evals[j.job_id] == "ready" for j in base_jobs)
    name = run_name(harness_plan.spec.eval.harness_config())
    storage.atomic_write_json(layout.evals(f"base-{base_jobs[0].checkpoint}").harness(name), {"records": []})
    _, partly = state(harness_tasks=[TASK], harness_include_path=include_path)
    assert partly.evals[base_jobs[0].job_id] == "done"
    assert all(partly.evals[j.job_id] == "ready" for j in base_jobs if j.checkpoint != base_jobs[0].checkpoint)
