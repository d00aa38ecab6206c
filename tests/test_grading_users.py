"""Who runs the grader, and who runs each kernel (issue 21).

- An ordinary user (not root) grades a small class with the README's command: every kernel
  starts, honest students get full marks, and a classmate who signals everything that user may
  signal harms nobody.
- A root grader runs each notebook slot as a user of its own (uid BASE_UID + slot): two kernels
  running at once cannot signal, read or write each other's files, nor the grader's.
- A kernel that cannot start is the grader's failure, said in one sentence with a non-zero exit
  code, never a student's 0.

The first two need root (to create the user `buildgpt-ta` with useradd and become it with
runuser) and the grader's Python runnable by other users. Where it lives in a folder only root
can enter (pyenv under /root, mode 700), they run in a mount namespace of their own in which that
folder is a 0711 one holding only the way to Python (what a Python installed for every user, in
/usr or a container, gives); the host is not changed. An instructor without root grades from a
clone and venv of their own (book/instructor-guide.md).
"""

from __future__ import annotations

import csv
import json
import os
import pwd
import shlex
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import nbformat
import pytest

from autograder.sandbox import BASE_UID, landlock_abi
from notebooks import ROOT
from test_adversarial_grading import FULL, LIMITS, SLUG, first, release, solved

USER = "buildgpt-ta"
IMPORTS = "import torch, nbgrader, nbclient, ipykernel, autograder.grade, buildgpt.attention"


def _passable(base: Path) -> list[str]:
    """A command prefix: a mount namespace (of that command alone) in which every folder that keeps
    other users from the grader's Python (pyenv under /root, mode 700) is replaced by a 0711 folder
    holding only the way to it; everything else is as it is."""
    steps = []
    target = Path(sys.base_prefix).resolve()
    for k, folder in enumerate(reversed(target.parents)):
        if folder.stat().st_mode & 0o001:
            continue
        child = target.relative_to(folder).parts[0]
        view = base / f"view-{k}"
        (view / child).mkdir(parents=True)
        view.chmod(0o711)
        steps += [f"mount --bind {shlex.quote(str(folder / child))} {shlex.quote(str(view / child))}",
                  f"mount --rbind {shlex.quote(str(view))} {shlex.quote(str(folder))}"]
    if not steps:
        return []
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", " && ".join(steps) + ' && exec "$@"', "sh"]


def _as_user(ta, command, **kwargs):
    env = ["env", "-i", f"HOME={ta['base']}", "PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"]
    return subprocess.run([*ta["prefix"], "runuser", "-u", USER, "--", *env, *command], capture_output=True, text=True,
                          **kwargs)


@pytest.fixture(scope="module")
def ta():
    if os.geteuid() != 0:
        pytest.skip("needs root, to create an ordinary user and grade as that user")
    if not (shutil.which("useradd") and shutil.which("runuser")):
        pytest.skip("needs useradd and runuser")
    try:
        pw = pwd.getpwnam(USER)
    except KeyError:
        made = subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER],
                              capture_output=True, text=True)
        if made.returncode != 0:
            pytest.skip(f"useradd could not create {USER}: {made.stderr.strip()}")
        pw = pwd.getpwnam(USER)
    base = Path(tempfile.mkdtemp(prefix="buildgpt-users-"))
    os.chmod(base, 0o755)
    os.chown(base, pw.pw_uid, pw.pw_gid)
    ta = {"base": base, "uid": pw.pw_uid, "gid": pw.pw_gid, "prefix": _passable(base)}
    probe = _as_user(ta, [sys.executable, "-c", IMPORTS], cwd=ROOT)
    if probe.returncode != 0:
        shutil.rmtree(base, ignore_errors=True)
        pytest.skip(f"{USER} cannot run the grader's Python with the course's packages "
                    f"({(probe.stderr.strip().splitlines() or ['no output'])[-1]})")
    yield ta
    shutil.rmtree(base, ignore_errors=True)


KILLER = """
import os, signal, time
print("uid", os.getuid())
end = time.time() + 15
while time.time() < end:  # everything this user may signal: the grader, the classmates' kernels
    try:
        os.kill(-1, signal.SIGKILL)
    except OSError:
        pass
    time.sleep(0.2)
print("still here")
"""


def test_an_ordinary_user_grades_a_class(ta):
    base = ta["base"]
    class_ = {"Ada Lovelace": solved(release()), "张伟": solved(release())}
    if landlock_abi() >= 6:  # without Landlock's signal scoping a user's kernels can signal each other
        class_["classmate-killer"] = first(solved(release()), KILLER)
    subs, out = base / "subs", base / "grading"
    for name, nb in class_.items():
        (subs / name).mkdir(parents=True)
        nbformat.write(nb, subs / name / f"{SLUG}.ipynb")
    for path in [subs, *subs.rglob("*")]:
        os.chown(path, ta["uid"], ta["gid"])
    result = _as_user(ta, [sys.executable, "-m", "autograder", "grade", str(subs), "--out", str(out), "--no-progress",
                             "--jobs", "2", *LIMITS], cwd=ROOT)
    said = result.stdout + result.stderr
    assert result.returncode == 0, said[-3000:]
    assert "Traceback" not in said, said[-3000:]
    rows = {r["student"]: r for r in csv.DictReader((out / "grades.csv").open(encoding="utf-8"))}
    assert set(rows) == set(class_), rows
    for name, row in rows.items():
        assert row["status"] == "graded" and float(row["total"]) == FULL, (name, row)
    if "classmate-killer" in class_:
        graded = nbformat.read(out / "course" / "autograded" / "classmate-killer" / SLUG / f"{SLUG}.ipynb", as_version=4)
        printed = "".join(o.get("text", "") for c in graded.cells if c.cell_type == "code" for o in c.outputs)
        assert f"uid {ta['uid']}\n" in printed and "still here" in printed, printed[:500]


ATTACK = """
import os, signal, time
print("uid", os.getuid(), "pid", os.getpid())
open("secret.txt", "w").write("mine")
other = {other}

def pids_of(uid):
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if int(open(f"/proc/{{pid}}/status").read().split("Uid:")[1].split()[0]) == uid:
                found.append(int(pid))
        except (OSError, IndexError, ValueError):
            pass
    return found

end = time.time() + (30 if os.getpid() == 2 else 90)  # pid 2: in a PID namespace of its own, it sees none
while not pids_of(other) and time.time() < end:  # the other slot's kernel
    time.sleep(0.2)
targets = pids_of(other)
print("targets", len(targets))
for pid in targets:
    for attempt, act in [
        ("signal", lambda: os.kill(pid, signal.SIGKILL)),
        ("read its folder", lambda: open(f"/proc/{{pid}}/cwd/secret.txt").read()),
        ("write its folder", lambda: open(f"/proc/{{pid}}/cwd/secret.txt", "w").write("yours")),
        ("read its environment", lambda: open(f"/proc/{{pid}}/environ").read()),
    ]:
        try:
            act()
            print("DID", attempt, pid)
        except OSError as error:
            print("refused", attempt, type(error).__name__)
for attempt, act in [
    ("signal the grader", lambda: os.kill(os.getppid(), signal.SIGKILL)),
    ("read the grader's folder", lambda: open({grades!r}).read()),
    ("write the grader's folder", lambda: open({evil!r}, "w").write("x")),
]:
    try:
        act()
        print("DID", attempt)
    except OSError as error:
        print("refused", attempt, type(error).__name__)
time.sleep(20)  # while the other kernel tries the same on this one
print("secret", open("secret.txt").read())
"""


@pytest.mark.skipif(landlock_abi() < 1, reason="this Linux has no Landlock: the grading folder is fenced by file modes only")
def test_kernels_of_a_root_grader_are_users_of_their_own_and_cannot_reach_each_other(ta):
    """The per-slot uid path: the grader (root) runs two notebooks at once, slots 0 and 1, from a
    Python every user can run, so each kernel becomes uid BASE_UID + slot."""
    base = ta["base"] / "slots"
    base.mkdir()
    grades = base / "grades.csv"
    grades.write_text("student,total\n")
    procs = []
    for slot in (0, 1):
        cell = nbformat.v4.new_code_cell(textwrap.dedent(ATTACK).format(
            other=BASE_UID + 1 - slot, grades=str(grades), evil=str(base / "evil.txt")))
        nbformat.write(nbformat.v4.new_notebook(cells=[cell]), base / f"nb{slot}.ipynb")
        command = [*ta["prefix"], sys.executable, "-m", "autograder.sandbox", "run", str(base / f"nb{slot}.ipynb"), str(base / f"rec{slot}.json"),
                   "--slot", str(slot), "--limits", json.dumps({"cell_timeout": 150, "budget": 200})]
        procs.append(subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    logs = [p.communicate(timeout=400)[0] for p in procs]
    for slot in (0, 1):
        record = json.loads((base / f"rec{slot}.json").read_text())
        if record.get("kernel_failed") and "uid" not in json.dumps(record["notebook"]):
            pytest.fail(f"slot {slot}: {record['kernel_failed']}\n{logs[slot][-2000:]}")
        printed = "".join(o.get("text", "") + o.get("evalue", "") for o in record["notebook"]["cells"][0]["outputs"])
        assert not record["stopped"], (record["stopped"], printed)
        assert f"uid {BASE_UID + slot} " in printed, f"slot {slot} did not run as a user of its own: {printed[:300]}"
        targets = int(printed.split("targets ", 1)[1].split()[0]) if "targets " in printed else -1
        if " pid 2\n" in printed:  # a PID namespace of its own: the other slot's kernel is not even listed
            assert targets == 0 and "DID" not in printed, printed
        else:
            assert targets > 0 and "DID" not in printed, printed
        assert printed.count("refused") == 4 * targets + 3 and "secret mine" in printed, printed
    assert not (base / "evil.txt").exists()


def test_a_kernel_that_cannot_start_is_the_graders_failure_in_one_sentence(tmp_path):
    """With 40 MB of memory no kernel can start: no student gets a 0; the exit code says so."""
    subs = tmp_path / "subs" / "ada"
    subs.mkdir(parents=True)
    nbformat.write(solved(release()), subs / f"{SLUG}.ipynb")
    out = tmp_path / "out"
    limits = [a if a != "4096" else "40" for a in LIMITS]
    result = subprocess.run([sys.executable, "-m", "autograder", "grade", str(tmp_path / "subs"), "--out", str(out),
                             "--no-progress", "--jobs", "1", *limits], cwd=ROOT, capture_output=True, text=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    said = result.stdout + result.stderr
    assert result.returncode == 1 and "Traceback" not in said, said[-3000:]
    assert "not graded: ada/" in said and "kernel" in said, said[-3000:]
    row = next(csv.DictReader((out / "grades.csv").open(encoding="utf-8")))
    assert row["status"].startswith("not graded") and row["total"] == "", row


def test_a_kernel_may_read_package_folders_on_sys_path_but_not_the_course(monkeypatch, tmp_path):
    """Packages a user's Python finds through sys.path (a .pth, `pip install --user`) must import
    in the fenced kernel; the course itself, its solutions and the folders above it stay closed."""
    from autograder.sandbox import readable_paths

    monkeypatch.setattr(sys, "path", [str(tmp_path), str(ROOT), str(ROOT / "solutions"), str(ROOT.parent), *sys.path])
    paths = readable_paths()
    assert str(tmp_path.resolve()) in paths
    for closed in (ROOT, ROOT / "solutions", ROOT / "autograder", ROOT.parent):
        assert str(closed.resolve()) not in paths, closed


def test_what_an_ordinary_user_may_not_touch_is_one_sentence(ta):
    """An --out the user may not write: one sentence, exit 2. A student's folder the user may not
    read: that student is 'not graded' with what to do, exit 1 (not 'no student folders')."""
    base = ta["base"] / "denied"
    (base / "subs" / "ada").mkdir(parents=True)
    nbformat.write(solved(release()), base / "subs" / "ada" / f"{SLUG}.ipynb")
    (base / "subs" / "ada").chmod(0o700)  # root's: the user cannot list it
    (base / "theirs").mkdir(mode=0o755)
    os.chown(base, ta["uid"], ta["gid"])
    command = [sys.executable, "-m", "autograder", "grade", str(base / "subs"), "--no-progress"]
    result = _as_user(ta, [*command, "--out", str(base / "theirs" / "grading")], cwd=ROOT)
    said = result.stdout + result.stderr
    assert result.returncode == 2 and "Traceback" not in said, said[-2000:]
    assert said.strip().splitlines()[-1].startswith(f"error: permission denied: {base / 'theirs' / 'grading'}"), said
    result = _as_user(ta, [*command, "--out", str(base / "grading")], cwd=ROOT)
    said = result.stdout + result.stderr
    assert result.returncode == 1 and "Traceback" not in said, said[-2000:]
    assert "not graded: ada/: this student's folder cannot be read" in said, said[-2000:]
