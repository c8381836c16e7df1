"""The Snakemake workflow: lint, the offline plan of the real run, config errors."""

import subprocess
import sys

import pytest

from helpers.snakemake_output import planned_jobs

SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def snakemake(repo, env, *args, cwd=None):
    return subprocess.run(
        [*SNAKEMAKE, "-s", str(repo / "Snakefile"), *args],
        cwd=cwd or repo, env=env, capture_output=True, text=True, timeout=300,
    )


def test_lint_finds_nothing(repo, venv_env):
    result = snakemake(repo, venv_env, "--lint")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Lints for" not in result.stdout + result.stderr


def test_real_run_is_planned_offline_from_downloads_to_table1(repo, venv_env, tmp_path):
    # targets first: --configfile and --config take several values
    result = snakemake(repo, venv_env, "results/table1.csv", "-n", "--cores", "8",
                       "--directory", str(tmp_path), "--configfile", str(repo / "config.yaml"))
    assert result.returncode == 0, result.stderr
    jobs = planned_jobs(result.stdout)
    chain = ["download", "unzip", "extract_features", "merge_features", "vocab", "tokenize",
             "train", "evaluate", "table"]
    assert all(jobs.get(rule, 0) > 0 for rule in chain), jobs
    # Table 1: LTMI, LTMI-LG and LTMI-LG* with the generative decoder, on v0.9 and v1.0.
    assert jobs["train"] == 6 and jobs["evaluate"] == 6
    for run in ["v0.9-ltmi-gen", "v1.0-lg_attn_kl-gen", "v1.0-lg_attn_kl-multi"]:
        assert f"results/runs/{run}/checkpoint.pt" in result.stdout
    assert "results/features/trainval2014.h5" in result.stdout
    assert "results/text/v1.0_glove.pt" in result.stdout  # GloVe is on in the real config


def test_every_table_of_the_demo_is_planned(repo, venv_env, tmp_path):
    result = snakemake(repo, venv_env, "-n", "--cores", "2", "--directory", str(tmp_path),
                       "--configfile", str(repo / "configs/demo.yaml"))
    assert result.returncode == 0, result.stderr
    jobs = planned_jobs(result.stdout)
    assert jobs["make_demo"] == 1 and jobs["table"] == 7 and jobs["tables_markdown"] == 1
    assert jobs["attention_figures"] == 1 and jobs["dialog_figure"] == 1 and jobs["explorer"] == 1
    assert jobs["evaluate_test"] == 2
    assert "download" not in jobs  # the demo needs no network
    # every run of every table: 5 per version, plus the 4 ablations on v1.0
    assert jobs["train"] == 14


def test_three_seeds_train_every_run_three_times_without_touching_seed_0(repo, venv_env, tmp_path):
    """configs/demo-seeds.yaml (make demo-seeds): 3 x 14 trainings, the seeds as @s1/@s2 runs,
    and a seed-0 training job's command (hence its params) is the one-seed demo's exactly."""
    def plan(*configs):
        result = snakemake(repo, venv_env, "-n", "-p", "--cores", "2", "--directory", str(tmp_path),
                           "--configfile", *[str(repo / c) for c in configs])
        assert result.returncode == 0, result.stderr
        return result.stdout

    one, three = plan("configs/demo.yaml"), plan("configs/demo.yaml", "configs/demo-seeds.yaml")
    jobs = planned_jobs(three)
    assert jobs["train"] == 42 and jobs["significance"] == 1 and jobs["tables_markdown"] == 1
    for run in ("v1.0-lg_attn_kl-gen", "v1.0-lg_attn_kl-gen@s1", "v1.0-lg_attn_kl-gen@s2"):
        assert f"results/runs/{run}/checkpoint.pt" in three
    command = next(line.strip() for line in one.splitlines() if "train --run-id v1.0-ltmi-gen " in line)
    assert command in three and "seeds" not in command


def test_existing_feature_files_replace_extraction(repo, venv_env, tmp_path):
    existing = tmp_path / "trainval.h5"
    existing.write_bytes(b"")
    result = snakemake(repo, venv_env, "results/features/trainval2014.h5", "-n", "--cores", "1",
                       "--directory", str(tmp_path), "--configfile", str(repo / "config.yaml"),
                       "--config", f"features={{'existing': {{'trainval2014': '{existing}'}}}}")
    assert result.returncode == 0, result.stderr
    jobs = planned_jobs(result.stdout)
    assert jobs == {"import_features": 1}


@pytest.mark.parametrize("override, message", [
    ("trian={'epochs': 1}", "unknown config key 'trian'"),
    ("local={'visdial_2.0_train': 'x.json'}", "unknown key 'local.visdial_2.0_train'"),
])
def test_bad_config_stops_the_workflow_with_the_key(repo, venv_env, tmp_path, override, message):
    result = snakemake(repo, venv_env, "-n", "--cores", "1", "--directory", str(tmp_path),
                       "--configfile", str(repo / "config.yaml"), "--config", override)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr


@pytest.mark.parametrize("device", [None, "cpu"])
def test_the_real_config_asks_for_the_configured_device_and_resources(repo, venv_env, tmp_path, device):
    """The real config's torch jobs run where `device` says (default auto: CUDA when torch sees a
    GPU, else the CPU), never a hard-wired cuda; what they ask the scheduler for comes from
    `resources` and `train.gpus`."""
    override = ["--config", f"device={device}"] if device else []
    result = snakemake(repo, venv_env, "results/table1.csv", "-n", "-p", "--cores", "8", "--directory", str(tmp_path),
                       "--configfile", str(repo / "config.yaml"), *override)
    assert result.returncode == 0, result.stderr
    commands = [line for line in result.stdout.splitlines() if " --device " in line]
    assert {"extract", "train", "evaluate"} <= {c.split("python -m visdial_lg ")[-1].split()[0] for c in commands}
    assert all(f"--device {device or 'auto'} " in c for c in commands)
    assert "--device cuda" not in result.stdout
    assert "gpu=1, runtime=1440, mem_mb=32000" in result.stdout  # resources.extract
    assert "gpu=1, runtime=360, mem_mb=24000" in result.stdout  # train.gpus, resources.train
