import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def one_thread():
    """Tiny models run fastest single-threaded (use: pytestmark = pytest.mark.usefixtures("one_thread"))."""
    from helpers.model_batches import torch_threads  # imports torch: only for the tests that ask

    with torch_threads(1):
        yield


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def runs_base(tmp_path_factory) -> Path:
    """Where the tiny trained runs of helpers/tiny_runs.py are kept, shared by the
    evaluation, grounding, tables, human-evaluation and figures tests."""
    base = tmp_path_factory.getbasetemp() / "tiny_runs"
    base.mkdir(exist_ok=True)
    return base


@pytest.fixture(scope="session")
def venv_env() -> dict:
    """Environment for subprocesses: this interpreter's bin first on PATH, as
    `make` arranges, so that rules calling `python -m visdial_lg` find it."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.fixture(scope="session")
def micro_pipeline(repo, venv_env, tmp_path_factory) -> Path:
    """The whole DAG (default target: every table and figure) on the micro config,
    run once per session by Snakemake with the local executor."""
    workdir = tmp_path_factory.mktemp("micro")
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), "--cores", "2",
         "--directory", str(workdir), "--configfile", str(repo / "tests/configs/micro.yaml")],
        env=venv_env, capture_output=True, text=True, timeout=1800,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return workdir
