"""The cluster recipes in deploy/ (book/instructor-guide.md, "Grading on a cluster") parse, and the
commands they build are the grader's real commands with flags it has.

Neither Slurm nor Kubernetes nor Docker runs here: the scripts are run with stand-ins for
`python` and `sbatch` that print their arguments, and the manifests are read as YAML."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"


def grader_flags(command: str) -> set[str]:
    """The long options `python -m autograder COMMAND --help` lists."""
    help_text = subprocess.run([sys.executable, "-m", "autograder", command, "--help"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout
    return set(re.findall(r"--[a-z][a-z-]*", help_text))


def stand_in(folder: Path, name: str) -> Path:
    """An executable that records its arguments in folder/NAME.calls (a marker line, then one a
    line); `sbatch` also prints a job id as `sbatch --parsable` does."""
    path = folder / name
    log = folder / f"{name}.calls"
    path.write_text(f"#!/bin/sh\n{{ echo '<<call>>'; for a in \"$@\"; do echo \"$a\"; done; }} >> '{log}'\n"
                    + ("echo 1234\n" if name == "sbatch" else ""))
    path.chmod(0o755)
    log.unlink(missing_ok=True)
    return path


def calls(folder: Path, name: str) -> list[list[str]]:
    log = folder / f"{name}.calls"
    if not log.exists():
        return []
    return [part.splitlines() for part in log.read_text().split("<<call>>\n")[1:]]


def flags_of(argv: list[str]) -> set[str]:
    return {a for a in argv if a.startswith("--")}


@pytest.mark.parametrize("script", sorted((DEPLOY / "slurm").iterdir()), ids=lambda p: p.name)
def test_slurm_scripts_parse(script):
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_slurm_array_task_grades_its_shard(tmp_path):
    python = stand_in(tmp_path, "python")
    env = {**os.environ, "PYTHON": str(python), "SLURM_ARRAY_TASK_ID": "3", "SLURM_CPUS_PER_TASK": "4",
           "SLURM_SUBMIT_DIR": str(ROOT)}
    result = subprocess.run(["bash", str(DEPLOY / "slurm" / "grade.sbatch"), "subs", "out", "4"], env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    [argv] = calls(tmp_path, "python")
    assert argv == ["-m", "autograder", "grade", "subs", "--out", "out/shard-3", "--shard", "3/4", "--jobs", "4",
                    "--no-progress"]
    assert flags_of(argv) <= grader_flags("grade")
    # Without the array's task id it says what to do instead of grading the whole class.
    env.pop("SLURM_ARRAY_TASK_ID")
    result = subprocess.run(["bash", str(DEPLOY / "slurm" / "grade.sbatch"), "subs", "out", "4"], env=env,
                            capture_output=True, text=True)
    assert result.returncode != 0 and "sbatch --array=1-N" in result.stderr and len(calls(tmp_path, "python")) == 1


def test_slurm_merge_takes_every_shard(tmp_path):
    python = stand_in(tmp_path, "python")
    env = {**os.environ, "PYTHON": str(python), "SLURM_SUBMIT_DIR": str(ROOT)}
    result = subprocess.run(["bash", str(DEPLOY / "slurm" / "merge.sbatch"), "out", "3"], env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    [argv] = calls(tmp_path, "python")
    assert argv == ["-m", "autograder", "merge", "out/shard-1", "out/shard-2", "out/shard-3", "--out", "out/merged"]
    assert flags_of(argv) <= grader_flags("merge")


def test_slurm_submit_queues_the_merge_after_the_array(tmp_path):
    stand_in(tmp_path, "sbatch")
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    result = subprocess.run(["bash", str(DEPLOY / "slurm" / "submit.sh"), "subs", str(tmp_path / "out"), "5"],
                            env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    array, merge = calls(tmp_path, "sbatch")
    assert "--array=1-5" in array and array[-3:] == ["subs", str(tmp_path / "out"), "5"]
    assert array[array.index("--array=1-5") + 1].endswith("grade.sbatch")
    assert "--dependency=afterany:1234" in merge and merge[-3:] == [str(DEPLOY / "slurm" / "merge.sbatch"),
                                                                    str(tmp_path / "out"), "5"]


def k8s(name: str) -> dict:
    [doc] = list(yaml.safe_load_all((DEPLOY / "k8s" / name).read_text()))
    return doc


def run_container(container: dict, index: int | None, tmp_path: Path) -> list[str]:
    """Run the container's shell command here, with a stand-in python, as the pod would."""
    stand_in(tmp_path, "python")
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}",
           **{e["name"]: e["value"] for e in container.get("env", [])}}
    if index is not None:
        env["JOB_COMPLETION_INDEX"] = str(index)
    assert container["command"][:2] == ["/bin/sh", "-c"]
    result = subprocess.run([*container["command"], *container["args"]], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    [argv] = calls(tmp_path, "python")
    return argv


def test_k8s_indexed_job_runs_one_shard_per_index(tmp_path):
    job = k8s("grade-job.yaml")
    assert (job["apiVersion"], job["kind"], job["spec"]["completionMode"]) == ("batch/v1", "Job", "Indexed")
    [container] = job["spec"]["template"]["spec"]["containers"]
    shards = int({e["name"]: e["value"] for e in container["env"]}["SHARDS"])
    assert job["spec"]["completions"] == shards, "completions and SHARDS must agree"
    seen = []
    for index in range(shards):
        argv = run_container(container, index, tmp_path)
        assert argv[:4] == ["-m", "autograder", "grade", "/data/submissions"]
        assert flags_of(argv) <= grader_flags("grade")
        seen.append(argv[argv.index("--shard") + 1])
    assert seen == [f"{k}/{shards}" for k in range(1, shards + 1)]
    merge = k8s("merge-job.yaml")
    [container] = merge["spec"]["template"]["spec"]["containers"]
    assert {e["name"]: e["value"] for e in container["env"]}["SHARDS"] == str(shards)
    argv = run_container(container, None, tmp_path)
    assert argv == ["-m", "autograder", "merge", *[f"/data/shards/shard-{k}" for k in range(1, shards + 1)],
                    "--out", "/data/merged"]
    assert flags_of(argv) <= grader_flags("merge")
    for doc in (job, merge):
        images = {c["image"] for c in doc["spec"]["template"]["spec"]["containers"]}
        assert images == {"buildgpt-grader:latest"}, "the image the guide tells you to build"


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of deploy/Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def test_dockerfile_pins_and_runs_the_grader():
    steps = dockerfile()
    known = {"FROM", "ARG", "ENV", "WORKDIR", "RUN", "COPY", "ENTRYPOINT", "CMD"}
    assert {k for k, _ in steps} <= known and steps[0][0] == "FROM"
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", steps[0][1]), "a pinned base image"
    args = dict(a.split("=", 1) for k, a in steps if k == "ARG")
    makefile = (ROOT / "Makefile").read_text()
    assert f"torch=={args['TORCH_VERSION']}" in makefile, "the Dockerfile pins the Makefile's torch"
    import nbgrader
    assert args["NBGRADER_VERSION"] == nbgrader.__version__, "the nbgrader the course is tested with"
    runs = " ".join(a for k, a in steps if k == "RUN")
    assert "download.pytorch.org/whl/cpu" in runs and '"torch==${TORCH_VERSION}"' in runs
    assert '".[grade]"' in runs and '"nbgrader==${NBGRADER_VERSION}"' in runs
    assert "grade" in __import__("tomllib").loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"], "the extra the image installs"
    assert ("COPY", ". /course") in steps
    [entry] = [a for k, a in steps if k == "ENTRYPOINT"]
    assert shlex.split(entry.strip("[]").replace(",", " ")) == ["python", "-m", "autograder"]
