"""The commands the README tells users to type, taken from README.md itself and run:
if the README changes and a command stops working, these tests fail.

Each command runs as written, with the options a test needs appended: our
Snakefile, a temporary working directory and a config file (the real config for
dry runs, the micro config for real runs); a real run also gets a cheap target in
place of the README's `results/table1.csv`.
"""

import os
import re
import shlex
import signal
import subprocess
import sys
import time

import pytest

from helpers.snakemake_output import planned_jobs

README_TARGET = "results/table1.csv"


def readme_command(repo, containing: str) -> list[str]:
    """The one command line of a ```bash block of README.md that contains `containing`,
    split as the shell would (comments dropped)."""
    text = (repo / "README.md").read_text()
    blocks = re.findall(r"^```bash\n(.*?)^```", text, flags=re.M | re.S)
    lines = [line for block in blocks for line in block.splitlines() if containing in line]
    assert len(lines) == 1, f"README.md: expected one command with {containing!r}, found {lines}"
    argv = shlex.split(lines[0], comments=True)
    assert argv[0] == "snakemake", lines[0]
    return argv


def snakemake_argv(repo, argv, workdir, configfile):
    """A README `snakemake ...` command as this test runs it."""
    return [sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"), *argv[1:],
            "--directory", str(workdir), "--configfile", str(configfile)]


def run(argv, env, cwd):
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_readme_config_override_is_planned_with_its_value(repo, venv_env, tmp_path):
    argv = readme_command(repo, "--config train=")
    if "-n" not in argv and "--dry-run" not in argv:
        argv.insert(1, "-n")  # offline: only the plan
    result = run([*snakemake_argv(repo, argv, tmp_path, repo / "config.yaml"), "-p"], venv_env, repo)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert planned_jobs(result.stdout).get("train", 0) > 0
    # The nested value arrives as the string '5' and reaches the training jobs as the integer 5.
    # --config's train section (the neutral settings, num_workers and the like, travel apart)
    train_config = [c for c in re.findall(r'"train": \{[^}]*\}', result.stdout) if '"num_workers"' not in c]
    assert train_config and all('"epochs": 5,' in c for c in train_config), train_config[:2]


def _wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _locks(workdir) -> list:
    locks = workdir / ".snakemake/locks"
    return list(locks.iterdir()) if locks.exists() else []


def _group_alive(pgid) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
def test_readme_unlock_and_rerun_after_snakemake_is_killed(repo, venv_env, tmp_path):
    """kill -9 of Snakemake while extraction runs: a rerun then stops at the output of
    the orphaned job (without --rerun-incomplete) or at the stale lock (with it); the
    README's unlock, then its rerun, finish the target."""
    workdir, micro = tmp_path / "work", repo / "tests/configs/micro.yaml"
    target = "results/features/trainval2014.h5"  # make_demo, then one extraction job (seconds)
    unlock = readme_command(repo, "--unlock")
    rerun = readme_command(repo, "--rerun-incomplete")
    assert README_TARGET in rerun, rerun
    rerun = [target if arg == README_TARGET else arg for arg in rerun]
    same_command = [arg for arg in rerun if arg != "--rerun-incomplete"]

    # The run to be killed, in its own process group so that its orphaned job can be
    # waited for; its console goes to a file, which outlives it.
    with open(tmp_path / "killed.out", "w") as console:
        killed = subprocess.Popen(snakemake_argv(repo, same_command, workdir, micro), cwd=repo,
                                  env=venv_env, stdout=console, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        extract_log = workdir / "results/logs/extract/trainval2014-0-of-1.log"
        _wait_for(lambda: extract_log.exists() or killed.poll() is not None, 120, "the extraction job")
        assert killed.poll() is None, (tmp_path / "killed.out").read_text()[-3000:]
        os.kill(killed.pid, signal.SIGKILL)  # kill -9 of Snakemake, not of its job
        killed.wait()
        # The job, orphaned, runs on and writes its output, which Snakemake never marked
        # complete. Wait for it, so that the reruns below don't race with it.
        _wait_for(lambda: not _group_alive(killed.pid), 300, "the orphaned job")
    finally:
        if _group_alive(killed.pid):
            os.killpg(killed.pid, signal.SIGKILL)
    assert _locks(workdir)

    # The same command again stops at the output the orphaned job left behind...
    result = run(snakemake_argv(repo, same_command, workdir, micro), venv_env, repo)
    assert result.returncode != 0
    assert "--rerun-incomplete" in result.stdout + result.stderr
    # ...and with --rerun-incomplete, as the README says, at the lock of the killed run.
    result = run(snakemake_argv(repo, rerun, workdir, micro), venv_env, repo)
    assert result.returncode != 0
    assert "Directory cannot be locked" in result.stdout + result.stderr
    assert "--unlock" in result.stdout + result.stderr

    result = run(snakemake_argv(repo, unlock, workdir, micro), venv_env, repo)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert not _locks(workdir)

    # Unlocked, the README's rerun redoes that job and finishes.
    result = run(snakemake_argv(repo, rerun, workdir, micro), venv_env, repo)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (workdir / target).exists()
    assert not _locks(workdir)
