"""The study's published tables: a hand-written CSV in the real schema with every id form."""

from __future__ import annotations

import pytest

from evals.analysis import analyze, import_study_table, parse_eval_name, parse_model_id
from evals.analysis.study_import import SkippedModelId

# The main table's schema (unnamed index, model_id, eval dataset, Performance, std); made-up numbers.
MAIN_CSV = """\
,model_id,eval dataset,Performance,std
0,olmo1b_hf_ckpt1000_mnli_3epoch_2e-6_4shots,mnli_matched,0.55,0.004
1,olmo1b_checkpoint-1000_original_hf_4shots,mnli_matched,0.35,0.005
2,olmo1b_hf_main_mnli_3epoch_2e-6_4shots,mnli_matched,0.79,0.004
3,olmo1b_original_hf_4shots,mnli_matched,0.33,0.005
4,olmo1b_hf_main_xsum_3epoch_2e-7,xsum_inputoutput,0.12,0.001
5,olmo1b_original_hf,xsum_inputoutput,0.10,0.001
6,olmo1b_checkpoint-18000_original_hf_2shots,paws_instruct,0.5,0.01
7,olmo1b_hf_main_paws_3epoch_2e-6_7shots,paws,0.8,0.01
8,olmo1b_checkpoint-18000_original,socialiqa,0.03,0.0008
9,checkpoint-1000_4shots,socialiqa,0.018,0.0007
10,olmo1b_hf_ckpt1000_tulu_5epoch_2e-6_4shots,llmbar_Adversarial_Neighbor,0.6,0.04
11,olmo1b_checkpoint-1000_original_hf_4shots,llmbar_Adversarial_Neighbor,0.45,0.04
12,olmo1b_hf_main_mnli_3epoch_2e-5,mnli_matched,0.4,0.005
13,olmo1b_hf_ckpt1000_socialiqa_3epoch_2e-6_4shots,sciq_instruct,0.2,0.003
14,olmo1b_checkpoint-1000_original_hf_4shots,qqp,1.0,0.0
15,olmo1b_hf_ckpt1000_paws_3epoch_2e-6_4shots,qqp,0.7,0.003
16,some_other_model,paws,0.5,0.01
17,olmo1b_checkpoint-1000_original_hf_4shots,llmbar_Natural,0.5,0.05
"""

# The official multiple-choice table's schema (no std); its sciq is multiple choice.
OFFICIAL_CSV = """\
,model_id,eval dataset,Performance
0,olmo1b_hf_ckpt1000_tulu_5epoch_2e-6,arc_easy,0.40
1,checkpoint-1000,arc_easy,0.38
2,olmo1b_hf_main_tulu_5epoch_2e-6,sciq,0.80
3,olmo1b_original_hf,sciq,0.85
4,checkpoint-1000,qqp,0.50
"""


@pytest.fixture
def tables(tmp_path):
    main, official = tmp_path / "all_perf_table.csv", tmp_path / "official_eval_table.csv"
    main.write_text(MAIN_CSV)
    official.write_text(OFFICIAL_CSV)
    return str(main), str(official)


def find(records, **where):
    hits = [r for r in records if all(getattr(r, k) == v for k, v in where.items())]
    assert len(hits) == 1, f"{where}: {len(hits)} records"
    return hits[0]


def test_model_id_grammar():
    ft = parse_model_id("olmo1b_hf_ckpt342000_xsum_3epoch_2e-7_4shots")
    assert (ft.model_kind, ft.checkpoint, ft.checkpoint_step, ft.train_dataset, ft.lr, ft.epochs, ft.shots) == (
        "finetuned", "342000", 342000, "xsum", 2e-7, 3, 4)
    main = parse_model_id("olmo1b_hf_main_tulu_5epoch_2e-6")
    assert (main.checkpoint, main.checkpoint_step, main.shots, main.epochs) == ("main", None, 0, 5)
    base = parse_model_id("olmo1b_checkpoint-738000_original_hf_2shots")
    assert (base.model_kind, base.checkpoint, base.shots, base.train_dataset) == ("base", "738000", 2, None)
    assert parse_model_id("olmo1b_original_hf_7shots").checkpoint == "main"
    for legacy in ("olmo1b_checkpoint-18000_original", "checkpoint-1000_4shots"):
        with pytest.raises(SkippedModelId) as skipped:
            parse_model_id(legacy)
        assert skipped.value.reason == "legacy"
    official = parse_model_id("checkpoint-424000", official=True)
    assert (official.model_kind, official.checkpoint, official.shots) == ("base", "424000", 4)
    assert parse_model_id("olmo1b_original_hf", official=True).checkpoint == "main"


def test_eval_names():
    assert parse_eval_name("mnli_matched_inputoutput") == ("mnli_matched", "io")
    assert parse_eval_name("cnn_instruct") == ("cnn", "instruct")
    assert parse_eval_name("llmbar_Adversarial_Manual") == ("llmbar_adversarial_manual", "default")
    assert parse_eval_name("sciq") == ("sciq", "default")
    assert parse_eval_name("sciq", official=True) == ("sciq_mc", "default")


def test_main_table_import(tables):
    report = import_study_table(tables[0])
    records = report.records
    assert report.rows == 18 and len(records) == 15
    assert report.skipped == {"legacy model id": 2, "unrecognised model id": 1}
    notes = " ".join(report.notes())
    assert "skipped 2 rows with legacy model id" in notes and "checkpoint-1000_4shots" in notes
    ft = find(records, checkpoint="1000", train_dataset="mnli", eval_dataset="mnli_matched")
    assert (ft.model_kind, ft.value, ft.std, ft.shots, ft.lr, ft.train_format, ft.metric) == (
        "finetuned", 0.55, 0.004, 4, 2e-6, "default", "accuracy")
    assert (ft.mode, ft.source, ft.base_model, ft.epochs) == ("faithful", "study", "allenai/OLMo-1B-hf", 3)
    zero_shot = find(records, train_dataset="xsum")
    assert (zero_shot.checkpoint, zero_shot.checkpoint_step, zero_shot.shots, zero_shot.eval_format,
            zero_shot.metric) == ("main", None, 0, "io", "rougeL")
    assert find(records, model_kind="base", checkpoint="18000").eval_format == "instruct"
    assert find(records, train_dataset="paws", eval_dataset="paws").shots == 7
    assert find(records, model_kind="finetuned", eval_dataset="llmbar_adversarial_neighbor").train_dataset == "tulu"
    assert find(records, model_kind="base", eval_dataset="llmbar_natural").checkpoint == "1000"
    assert find(records, eval_dataset="sciq").eval_format == "instruct"
    ablation = find(records, train_dataset="mnli", checkpoint="main", shots=0)
    assert ablation.lr == 2e-5


def test_official_table_stays_distinct(tables):
    main, official = import_study_table(tables[0]), import_study_table(tables[1], official=True)
    records = main.records + official.records
    assert len(official.records) == 5 and not official.skipped
    sciq = find(records, model_kind="finetuned", eval_dataset="sciq_mc")
    assert (sciq.source, sciq.metric, sciq.shots, sciq.std, sciq.checkpoint) == ("study_official", "acc", 4, None, "main")
    qqp = [r for r in records if r.eval_dataset == "qqp" and r.model_kind == "base"]
    assert sorted((r.source, r.value) for r in qqp) == [("study", 1.0), ("study_official", 0.5)]
    analysis = analyze(records)  # same model and dataset in two sources: two records, no duplicate error
    transfer = analysis.transfer
    sciq_delta = transfer[(transfer["eval_dataset"] == "sciq_mc") & (transfer["checkpoint"] == "main")]
    assert sciq_delta["delta"].iloc[0] == pytest.approx(-0.05)
    mnli_main = transfer[(transfer["train_dataset"] == "mnli") & (transfer["checkpoint"] == "main")
                         & (transfer["shots"] == 4)]
    assert mnli_main["delta"].iloc[0] == pytest.approx(0.79 - 0.33)
    qqp_row = analysis.forgetting[analysis.forgetting["eval_dataset"] == "qqp"].iloc[0]
    assert qqp_row["delta"] == pytest.approx(-0.3) and qqp_row["label_artifact"] and qqp_row["source"] == "study"
    groups = analysis.groups
    pt = groups[(groups["group"] == "learned_in_pt") & (groups["checkpoint"] == "main") & (groups["shots"] == 4)]
    assert pt["delta_mean"].iloc[0] == pytest.approx(-0.05) and pt["n"].iloc[0] == 1


def test_missing_column_is_named(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(",model_id,eval dataset,Performance\n0,olmo1b_original_hf,paws,0.5\n")
    with pytest.raises(ValueError, match="std"):
        import_study_table(str(path))
