"""The package stands alone: a wheel installed outside the checkout carries its config
schema, validates a config and runs a command, with no file of the repository at hand."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest


def _run(args, cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=600, **kwargs)


@pytest.mark.slow  # builds a wheel and a venv (~20 s)
def test_a_wheel_installed_outside_the_checkout_validates_configs(repo, tmp_path):
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w",
                  tmp_path / "wheels", repo], cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    wheel = next((tmp_path / "wheels").glob("visdial_lg-*.whl"))

    venv = tmp_path / "venv"
    assert _run([sys.executable, "-m", "venv", venv], cwd=tmp_path).returncode == 0
    python = venv / "bin" / "python"
    installed = _run([python, "-m", "pip", "install", "--no-deps", "--no-index", wheel], cwd=tmp_path)
    assert installed.returncode == 0, installed.stderr
    # The dependencies (torch, yaml, jsonschema, ...) come from this environment's site-packages,
    # added as a plain path: its .pth files, among them the editable install of the checkout, stay unread.
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                     cwd=tmp_path).stdout.strip())
    (site / "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    script = (
        "import visdial_lg, visdial_lg.core.config as c\n"
        f"assert {str(repo)!r} not in visdial_lg.__file__, visdial_lg.__file__\n"
        "cfg = c.validate({'train': {'epochs': '5'}})\n"
        "print(cfg['train']['epochs'], cfg['train']['lr'])\n"
        "try:\n"
        "    c.validate({'train': {'epochz': 5}})\n"
        "except c.ConfigError as e:\n"
        "    print(e)\n"
        "from importlib import resources\n"
        "from visdial_lg.report.explorer import PAGE_FILES\n"
        "page = resources.files('visdial_lg') / 'resources' / 'explorer'\n"
        "assert all((page / name).is_file() for name in PAGE_FILES), 'the explorer page is not in the wheel'\n"
    )
    validated = _run([python, "-c", script], cwd=outside)
    assert validated.returncode == 0, validated.stderr
    lines = validated.stdout.splitlines()
    assert lines[0] == "5 0.001" and lines[1].startswith("unknown config key 'train.epochz' (known keys: ")

    info = _run([venv / "bin" / "visdial-lg", "model-info", "--run", "v1.0-ltmi-disc"], cwd=outside)
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["total"] == 42_486_266  # LTMI-disc at the paper's sizes, as released
