"""The micro pipeline through `profiles/slurm` on a real SLURM cluster.

Runs only where a cluster answers `sinfo`. CI (`.ci/run`) starts a one-node
cluster on localhost before the tests; by hand:

    eval "$(bash .ci/slurm/start-cluster.sh)"     # root; installs slurm-wlm + munge if missing
    .venv/bin/pytest tests/workflow/test_slurm.py
    bash .ci/slurm/stop-cluster.sh

Without SLURM_CONF in the environment the cluster of start-cluster.sh is
found in its default folder. With VISDIAL_LG_REQUIRE_SLURM=1 (CI) a missing
cluster fails the test instead of skipping it. The test checks that the jobs really went
through SLURM: Snakemake's submission lines with SLURM job ids, one SLURM log
per job under `.snakemake/slurm_logs/`, and slurmctld's own records of each
job (its log and squeue), while the table rules stay on the submitting host.

Targets: by default Table 5 of the micro pipeline (demo, features of two image
sets, vocabulary, tokens, two trainings, two evaluations, the table: every
kind of rule), a few minutes on 2 cores; VISDIAL_LG_SLURM_TARGETS="all" (or
other targets, space-separated) runs more.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers.snakemake_output import planned_jobs

CLUSTER_DIR = Path(os.environ.get("VISDIAL_LG_SLURM_DIR", "/tmp/visdial-lg-slurm"))
TARGETS = os.environ.get("VISDIAL_LG_SLURM_TARGETS", "results/table5.csv").split()
TIMEOUT_S = 1200


def _local_rules() -> set[str]:
    """The rules Snakemake runs on the submitting host: `all` and those marked `localrule: True`."""
    rules = {"all"}
    for path in (Path(__file__).resolve().parents[2] / "workflow" / "rules").glob("*.smk"):
        for block in re.split(r"^rule ", path.read_text(), flags=re.MULTILINE)[1:]:
            if re.search(r"^\s+localrule: True", block, flags=re.MULTILINE):
                rules.add(block.split(":", 1)[0])
    return rules


LOCAL_RULES = _local_rules()
SUBMITTED = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (.+?)\)\.")


def slurm_env(base: dict) -> dict:
    env = dict(base)
    default_conf = CLUSTER_DIR / "etc" / "slurm.conf"
    if "SLURM_CONF" not in env and default_conf.exists():
        env["SLURM_CONF"] = str(default_conf)
    return env


def node_states(env: dict) -> list[str] | None:
    """The nodes' states as sinfo reports them, or None where no cluster answers."""
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return None
    try:
        done = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], env=env, capture_output=True, text=True,
                              timeout=15)
    except subprocess.TimeoutExpired:
        return None
    return done.stdout.split() if done.returncode == 0 else None


def scontrol_config(env: dict) -> dict[str, str]:
    done = subprocess.run(["scontrol", "show", "config"], env=env, capture_output=True, text=True, timeout=30)
    pairs = (line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs}


@pytest.fixture(scope="module")
def cluster(venv_env):
    env = slurm_env(venv_env)
    states = node_states(env)
    if states is None:
        reason = ("no SLURM cluster answers `sinfo` (CI starts one: "
                  'eval "$(bash .ci/slurm/start-cluster.sh)")')
        if os.environ.get("VISDIAL_LG_REQUIRE_SLURM"):  # CI: a cluster was started, so this is a failure
            pytest.fail(reason)
        pytest.skip(reason)
    usable = [s for s in states if s.rstrip("*~#") in ("idle", "mixed", "allocated", "completing")]
    assert usable, f"SLURM answers but no node is up: {states}"
    return env


def run_snakemake(cmd: list[str], env: dict, cwd: Path) -> tuple[int, str]:
    """Run Snakemake; past the time limit interrupt it (it cancels its SLURM jobs) and fail."""
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=TIMEOUT_S)
        return proc.returncode, out
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        run_id = re.search(r"SLURM run ID: (\S+)", out or "")
        if run_id:  # whatever Snakemake did not cancel
            subprocess.run(["scancel", "--name", run_id.group(1)], env=env, timeout=30)
        pytest.fail(f"the SLURM run took more than {TIMEOUT_S} s:\n{(out or '')[-5000:]}")


@pytest.fixture(scope="module")
def slurm_run(repo, cluster, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("slurm")
    config = scontrol_config(cluster)
    ctld_log = Path(config.get("SlurmctldLogFile", ""))
    ctld_offset = ctld_log.stat().st_size if ctld_log.is_file() else None
    cmd = [sys.executable, "-m", "snakemake", "-s", str(repo / "Snakefile"),
           "--workflow-profile", str(repo / "profiles" / "slurm"),
           "--configfile", str(repo / "tests" / "configs" / "micro.yaml"),
           "--directory", str(workdir), "--jobs", "4", "--local-cores", "1",
           # a small cluster on a small machine: poll soon, files are local
           "--slurm-init-seconds-before-status-checks", "2", "--latency-wait", "5",
           *TARGETS]
    started = time.monotonic()
    returncode, out = run_snakemake(cmd, cluster, workdir)
    elapsed = time.monotonic() - started
    (workdir / "snakemake.out").write_text(out)
    assert returncode == 0, f"{' '.join(cmd)}\n{out[-6000:]}"
    ctld_text = None
    if ctld_offset is not None:
        with open(ctld_log, "rb") as f:
            f.seek(ctld_offset)
            ctld_text = f.read().decode(errors="replace")
    return {"workdir": workdir, "out": out, "ctld_log": ctld_text, "elapsed": elapsed, "env": cluster}


def submissions(out: str) -> dict[int, tuple[str, Path]]:
    """SLURM job id -> (rule, SLURM log) of every job Snakemake submitted."""
    jobs = {}
    for _, slurm_id, log in SUBMITTED.findall(out):
        rule = re.search(r"slurm_logs/rule_(\w+)/", log)
        assert rule, log
        jobs[int(slurm_id)] = (rule.group(1), Path(log))
    return jobs


def test_the_pipeline_reaches_its_targets(slurm_run):
    for target in TARGETS:
        if target != "all":
            assert (slurm_run["workdir"] / target).stat().st_size > 0, target
    print(f"SLURM run: {slurm_run['elapsed']:.0f} s")


def test_every_remote_job_was_submitted_to_slurm(slurm_run):
    out = slurm_run["out"]
    assert "SLURM run ID" in out
    planned = planned_jobs(out)
    jobs = submissions(out)
    remote = {rule: n for rule, n in planned.items() if rule not in LOCAL_RULES}
    submitted = {}
    for rule, _ in jobs.values():
        submitted[rule] = submitted.get(rule, 0) + 1
    assert submitted == remote
    # each kind of rule: CPU stages, GPU-class stages (on CPU here), training
    assert {"make_demo", "tokenize", "extract_features", "merge_features", "train", "evaluate"} <= set(submitted)


def test_each_job_left_a_slurm_log_from_its_job_step(slurm_run):
    for slurm_id, (rule, log) in submissions(slurm_run["out"]).items():
        assert log.is_file(), f"SLURM job {slurm_id} ({rule}): no log {log}"
        assert log.parent.is_relative_to(slurm_run["workdir"] / ".snakemake" / "slurm_logs")
        text = log.read_text()
        # the job step: Snakemake inside the allocation, running this job's rule
        assert "--executor slurm-jobstep" in text, log
        assert re.search(rf"^(local)?rule {rule}:", text, re.M), log


def test_slurmctld_ran_every_job(slurm_run):
    jobs = submissions(slurm_run["out"])
    env = slurm_run["env"]
    ids = ",".join(str(i) for i in jobs)
    done = subprocess.run(["squeue", "-h", "-t", "all", "-j", ids, "-o", "%i %T"], env=env,
                          capture_output=True, text=True, timeout=30)
    states = dict(line.split() for line in done.stdout.splitlines() if line.strip())
    # squeue keeps a finished job for MinJobAge (300 s): the last ones are still there
    assert states, f"squeue knows none of {ids}: {done.stderr}"
    assert set(states.values()) == {"COMPLETED"}, states
    if slurm_run["ctld_log"] is None:
        pytest.skip("slurmctld's log is not readable here; squeue checked only")
    for slurm_id in jobs:
        # started by the main scheduler ("sched: Allocate") or by backfill ("_start_job: Started")
        started = rf"(Allocate JobId={slurm_id} NodeList=|Started JobId={slurm_id} in )"
        assert re.search(started, slurm_run["ctld_log"]), slurm_id
        assert f"_job_complete: JobId={slurm_id} WEXITSTATUS 0" in slurm_run["ctld_log"], slurm_id


def test_tables_stay_on_the_submitting_host(slurm_run):
    out = slurm_run["out"]
    assert re.search(r"^localrule table:", out, re.M)
    assert not (slurm_run["workdir"] / ".snakemake" / "slurm_logs" / "rule_table").exists()
