"""End to end: Snakemake runs every real rule on the micro config (the demo dataset
at a handful of dialogs), from make-demo to the seven tables and the figures
(`micro_pipeline` in conftest.py; the tables, figures and report: test_report.py)."""

import json
import math
import subprocess
import sys

import h5py

from helpers.snakemake_output import planned_jobs


def test_demo_vocab_and_tokenize_run_through_snakemake(micro_pipeline):
    manifest = json.loads((micro_pipeline / "resources/demo/MANIFEST.json").read_text())
    assert manifest["files"]
    vocab = json.loads((micro_pipeline / "results/text/v1.0_vocab.json").read_text())
    assert vocab["words"][:4] == ["<PAD>", "<S>", "</S>", "<UNK>"]
    with h5py.File(micro_pipeline / "results/text/v1.0_train.h5") as f:
        assert f["answer_options"].shape == (9, 10, 100)  # train2014 + val2014 images
        assert (f["num_rounds"][:] == 10).all()
    with h5py.File(micro_pipeline / "results/text/v1.0_val.h5") as f:
        assert "gt_relevance" in f and (f["dense_round"][:] >= 1).all()
    with h5py.File(micro_pipeline / "results/text/v1.0_test.h5") as f:
        assert (f["num_rounds"][:] <= 10).all() and (f["gt_index"][:] == -1).any()
    for log in ["make_demo.log", "vocab/v1.0.log", "tokenize/v1.0_test.log", "train/v1.0-lg_attn_kl-gen.log"]:
        assert (micro_pipeline / "results/logs" / log).exists()


def test_features_describe_the_demo_regions(micro_pipeline):
    regions = json.loads((micro_pipeline / "resources/demo/region_boxes.json").read_text())
    with h5py.File(micro_pipeline / "results/features/val2018.h5") as f:
        for row, image_id in enumerate(f["image_id"][:]):
            given = regions[str(image_id)]
            assert f["num_boxes"][row] == len(given)
            assert abs(f["boxes"][row, : len(given)] - given).max() < 1e-3
            assert math.isfinite(float(abs(f["features"][row]).max()))


def test_evaluations_and_the_submission(micro_pipeline):
    val = json.loads((micro_pipeline / "results/runs/v1.0-lg_attn_kl-multi/val_prior.json").read_text())
    assert set(val["decoders"]) == {"gen", "disc", "avg"} and "ndcg" in val["decoders"]["gen"]
    submission = json.loads((micro_pipeline / "results/submissions/v1.0-ltmi-disc_test.json").read_text())
    with h5py.File(micro_pipeline / "results/text/v1.0_test.h5") as f:
        num_rounds = dict(zip(f["image_id"][:].tolist(), f["num_rounds"][:].tolist()))
    assert {e["image_id"]: e["round_id"] for e in submission} == num_rounds
    assert all(sorted(e["ranks"]) == list(range(1, 101)) for e in submission)


def test_a_second_run_has_nothing_to_do(repo, venv_env, micro_pipeline):
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "-n", "--cores", "1",
         "--directory", str(micro_pipeline), "--configfile", str(repo / "tests/configs/micro.yaml")],
        env=venv_env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr



def test_forcerun_of_one_stage_reruns_it_and_what_depends_on_it(repo, venv_env, micro_pipeline):
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "results/table5.csv", "-n",
         "--cores", "1", "--directory", str(micro_pipeline),
         "--configfile", str(repo / "tests/configs/micro.yaml"), "--forcerun", "tokenize"],
        env=venv_env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    jobs = planned_jobs(result.stdout)
    # Table 5 = v1.0 val, discriminative: tokens of v1.0 train and val, two runs, two evaluations
    assert jobs == {"tokenize": 2, "train": 2, "evaluate": 2, "table": 1}, jobs


def test_naming_the_human_judgments_reruns_the_tables_only(repo, venv_env, micro_pipeline, tmp_path):
    """As the README says to, once the sheet is filled in: the tables rerun, not the evaluations
    (each job is passed only the config it reads: workflow/rules/common.smk, config_arg)."""
    judgments = tmp_path / "judgments.csv"
    judgments.write_text("item,response,annotator,human_generated,better_or_equal\n")
    result = _dry_run_with(repo, venv_env, micro_pipeline, tmp_path, f"evaluate: {{human_judgments: {judgments}}}")
    assert planned_jobs(result.stdout) == {"table": 7, "tables_markdown": 1, "all": 1}


def test_settings_that_do_not_change_results_rerun_nothing(repo, venv_env, micro_pipeline, tmp_path):
    """Worker counts, extraction batching, the log interval (core.config.RESULT_NEUTRAL_KEYS)
    reach the jobs apart from their params: changing them after a finished run reruns nothing
    (a larger extraction batch on a new GPU must not re-extract, retrain and re-evaluate)."""
    neutral = ("features: {batch_size: 2, num_workers: 1}\ntext: {workers: 2}\n"
               "train: {num_workers: 1, log_every: 3, cpu_processes: 1}")
    result = _dry_run_with(repo, venv_env, micro_pipeline, tmp_path, neutral, "-p")
    assert "Nothing to be done" in result.stdout + result.stderr, planned_jobs(result.stdout)
    # ... and they do reach the commands: the plan of one training run shows them
    forced = _dry_run_with(repo, venv_env, micro_pipeline, tmp_path, neutral, "-p", "--forcerun", "train",
                           "--", "results/runs/v1.0-ltmi-gen/checkpoint.pt")
    assert """--neutral-config '{"train": {"cpu_processes": 1, "gpus": 0, "log_every": 3, "num_workers": 1}}'""" \
        in forced.stdout


def _dry_run_with(repo, venv_env, folder, tmp_path, override: str, *options) -> subprocess.CompletedProcess:
    """A dry run of the micro config with `override` (YAML) on top, in `folder`."""
    path = tmp_path / f"override{len(list(tmp_path.glob('override*.yaml')))}.yaml"
    path.write_text(override + "\n")
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "-n", "--cores", "1",
         "--directory", str(folder), "--configfile", str(repo / "tests/configs/micro.yaml"), str(path), *options],
        env=venv_env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result
