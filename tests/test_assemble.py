"""`python -m autograder assemble`: a student's notebooks become a package the commands train.

Notebooks are built from the released student editions in book/ with answers filled in as a
student would (tests/notebooks.py: solved_notebook). The package made from the reference answers
must train bit-for-bit like buildgpt; simulated students (stub, partial, subtly wrong) get the
right table and --fill-missing behaviour; every bad input gets its one sentence.
"""

from __future__ import annotations

import json
import subprocess
import sys

import nbformat
import pytest
import torch

from autograder.assemble import assemble
from autograder.errors import UserError
from tests.notebooks import CHAPTERS, ROOT, load_mutants, solved_notebook

RELEASED = [c for c in CHAPTERS if c.student_notebook.is_file()
            and c.slug in json.loads((ROOT / "autograder" / "chapter_tests.json").read_text())]
BY_NUMBER = {c.number: c for c in RELEASED}
TRAIN = ["--data", str(ROOT / "datasets" / "tinyshakespeare.txt"), "--preset", "char-tiny", "--context-length", "32",
         "--max-steps", "4", "--eval-interval", "2", "--eval-iters", "1", "--warmup-steps", "1", "--batch-size", "2",
         "--threads", "1", "--no-progress", "--seed", "7"]


def write(folder, name, nb):
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / name)
    return folder / name


def colab_damage(nb):
    """What an editor such as Colab does to a notebook: cell metadata (nbgrader's included) is gone."""
    for cell in nb.cells:
        cell.metadata = {}
    nb.metadata = {"colab": {"provenance": []}}
    return nb


def run_assemble(paths, out, fill_missing=False):
    lines = []
    rc = assemble(paths, out, fill_missing=fill_missing, log=lines.append)
    return rc, "\n".join(lines)


def train(out, impl=None):
    """Run the train command; return its per-step losses and final weights. buildgpt runs with
    --taught-kernels: the chapters' own code, which is what a student's package runs."""
    from buildgpt.__main__ import main

    assert main(["train", *TRAIN, "--out", str(out)] + (["--impl", str(impl)] if impl else ["--taught-kernels"])) == 0
    state = torch.load(out / "ckpt.pt", map_location="cpu", weights_only=False)
    return state["extra"]["history"]["loss"], state["model"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The package assembled from every chapter's reference answers; chapter 3 comes as Colab
    returns it (metadata gone, the browser's name for a second download)."""
    tmp = tmp_path_factory.mktemp("reference")
    for chapter in RELEASED:
        nb = solved_notebook(chapter)
        if chapter.number == "03":
            write(tmp / "notebooks", f"Copy of {chapter.slug} (1).ipynb", colab_damage(nb))
        else:
            write(tmp / "notebooks", f"{chapter.slug}.ipynb", nb)
    rc, log = run_assemble([tmp / "notebooks"], tmp / "refgpt")
    return tmp, rc, log


def test_reference_answers_train_bit_exact_with_buildgpt(reference, capsys):
    tmp, rc, log = reference
    assert rc == 0, log
    n = sum(1 for line in log.split("\n") if line.startswith("read "))
    assert n == len(RELEASED), log
    package = tmp / "refgpt"
    assert "nbgrader metadata was missing" in (package / "REPORT.md").read_text(), "the Colab-damaged notebook was not repaired"
    for module in ("attention", "model", "trainer", "optim", "losses", "checkpoint", "tokenizer", "data"):
        text = (package / f"{module}.py").read_text()
        assert "from buildgpt." not in text.replace("from buildgpt.resources", ""), f"{module}.py imports buildgpt"
    assert "# ex-03-mha: your answer" in (package / "attention.py").read_text()
    info = json.loads((package / "__init__.py").read_text().split("ASSEMBLY = ", 1)[1])
    assert info["yours"] == info["total"] and info["reference"] == [], info

    ref_losses, ref_state = train(tmp / "run-buildgpt")
    capsys.readouterr()
    my_losses, my_state = train(tmp / "run-refgpt", impl=package)
    banner = capsys.readouterr().out
    assert f"using your code for {info['total']} of {info['total']} exercises" in banner
    assert len(ref_losses) == 4 and my_losses == ref_losses, (ref_losses, my_losses)
    assert ref_state.keys() == my_state.keys()
    assert all(torch.equal(ref_state[k], my_state[k]) for k in ref_state), "final weights differ"
    # and the student's model really is the student's code: its classes come from the package
    from buildgpt.impl import load_impl

    impl = load_impl(str(package), quiet=True)
    model = impl.model.GPT(impl.model.GPTConfig.from_preset("char-tiny"))
    attention = model.blocks[0].attn  # chapter 4's GPT wraps the student's class in FastAttention (is_causal=True)
    assert isinstance(attention, impl.attention.MultiHeadAttention), type(attention).__mro__
    assert all(c.__module__.startswith("refgpt.") for c in type(attention).__mro__[:-2]), type(attention).__mro__
    # the book page's last check: the student's run against the reference code trained the same way
    from autograder.compare import compare

    lines = []
    assert compare(tmp / "run-refgpt", threads=1, log=lines.append) == 0
    assert "exactly like the reference" in lines[-1], lines


def test_passing_but_different_answer_trains_and_differs(tmp_path, reference, capsys):
    """A log_softmax the tests accept but that rounds differently (log-sum-exp of the unshifted
    logits): the package trains, and its losses are not buildgpt's."""
    tmp, _, _ = reference
    ch = BY_NUMBER["05"]
    different = '''import torch


def log_softmax(logits, dim=-1):
    return logits - torch.logsumexp(logits, dim=dim, keepdim=True)


def cross_entropy(logits, targets, ignore_index=-100):
    logp = log_softmax(logits.float(), dim=-1)
    keep = targets != ignore_index
    picked = logp.gather(-1, torch.where(keep, targets, 0).unsqueeze(-1)).squeeze(-1)
    return -(picked * keep).sum() / keep.sum().clamp(min=1)
'''
    write(tmp_path / "nb", f"{ch.slug}.ipynb", solved_notebook(ch, {"ex-05-cross-entropy": different}))
    rc, log = run_assemble([tmp_path / "nb"], tmp_path / "othergpt", fill_missing=True)
    assert rc == 0, log
    ref_losses, ref_state = train(tmp / "run-buildgpt") if not (tmp / "run-buildgpt").exists() else (
        torch.load(tmp / "run-buildgpt" / "ckpt.pt", weights_only=False)["extra"]["history"]["loss"], None)
    capsys.readouterr()
    losses, _ = train(tmp_path / "run", impl=tmp_path / "othergpt")
    banner = capsys.readouterr().out
    assert "using your code for 6 of" in banner and "reference for chapters 00, 01, 02, 03, 04, 06, 07" in banner, banner
    assert all(torch.isfinite(torch.tensor(losses))) and losses != ref_losses, (losses, ref_losses)
    from autograder.compare import compare

    lines = []
    compare(tmp_path / "run", reference=tmp / "run-buildgpt", log=lines.append)
    assert "exactly" not in lines[-1] and ("matches the reference" in lines[-1] or "differ" in lines[-1]), lines


# ----------------------------------------------------------------------------------------
# A class of simulated students: one chapter (3) each, the rest left to --fill-missing

def _ch3_ids():
    return [g for g in json.loads((ROOT / "autograder" / "chapter_tests.json").read_text())["03-attention"]["__answers__"]]


class TestStudents:
    def test_stub_student(self, tmp_path):
        ch = BY_NUMBER["03"]
        write(tmp_path / "nb", f"{ch.slug}.ipynb", nbformat.read(ch.student_notebook, as_version=4))
        rc, log = run_assemble([tmp_path / "nb"], tmp_path / "stubgpt")
        assert rc == 1 and not (tmp_path / "stubgpt").exists(), log
        for gid in _ch3_ids():
            assert any(gid in line and "not done yet" in line for line in log.split("\n")), (gid, log)
        assert "add --fill-missing" in log

    def test_partial_student(self, tmp_path):
        ch = BY_NUMBER["03"]
        done = {"ex-03-softmax", "ex-03-causal-mask"}
        nb = solved_notebook(ch)
        stub = nbformat.read(ch.student_notebook, as_version=4)
        for cell, released in zip(nb.cells, stub.cells):
            gid = cell.metadata.get("nbgrader", {}).get("grade_id", "")
            if cell.metadata.get("nbgrader", {}).get("solution") and gid not in done:
                cell.source = released.source
        write(tmp_path / "nb", f"{ch.slug}.ipynb", nb)
        rc, log = run_assemble([tmp_path / "nb"], tmp_path / "partgpt")
        assert rc == 1 and not (tmp_path / "partgpt").exists(), log
        rows = [line for line in log.split("\n") if line.startswith("03-attention ")]
        assert sorted(r.split()[1] for r in rows) == sorted(set(_ch3_ids()) - done), log
        rc, log = run_assemble([tmp_path / "nb"], tmp_path / "partgpt", fill_missing=True)
        assert rc == 0, log
        info = json.loads((tmp_path / "partgpt" / "__init__.py").read_text().split("ASSEMBLY = ", 1)[1])
        assert info["yours"] == 2 and set(info["reference"]) >= set(_ch3_ids()) - done, info
        report = (tmp_path / "partgpt" / "REPORT.md").read_text()
        assert "your code for 2 of" in report and "| 03-attention | ex-03-mha | not done yet" in report, report
        assert "# ex-03-softmax: your answer" in (tmp_path / "partgpt" / "attention.py").read_text()
        assert "# ex-03-mha: the course's reference answer" in (tmp_path / "partgpt" / "attention.py").read_text()

    def test_subtly_wrong_student(self, tmp_path, capsys):
        ch = BY_NUMBER["03"]
        wrong = load_mutants(ch)["ex-03-sdpa"]["scaled by sqrt of the number of keys T, not of d_k"]
        write(tmp_path / "nb", f"{ch.slug}.ipynb", solved_notebook(ch, {"ex-03-sdpa": wrong}))
        rc, log = run_assemble([tmp_path / "nb"], tmp_path / "wronggpt", fill_missing=True)
        assert rc == 0, log
        rows = [line for line in log.split("\n") if line.startswith("03-attention ")]
        assert [r.split()[1] for r in rows] == ["ex-03-sdpa"], log  # mha failed too, but only because of sdpa
        assert "failed too, only because of" not in log  # (said only when nothing is written)
        report = (tmp_path / "wronggpt" / "REPORT.md").read_text()
        assert "| 03-attention | ex-03-sdpa |" in report and "ex-03-mha" in report.split("are yours:")[1], report
        from buildgpt.impl import load_impl

        load_impl(str(tmp_path / "wronggpt"))
        banner = capsys.readouterr().out
        assert "reference for" in banner and "ex-03-sdpa" in banner and "ex-03-mha" not in banner, banner


# ----------------------------------------------------------------------------------------
# Bad input: one sentence each, naming the notebook (and the exercise)

def test_wrong_chapter_and_two_of_one_chapter(tmp_path):
    ch3, ch4 = BY_NUMBER["03"], BY_NUMBER["04"]
    write(tmp_path / "a", "03-attention.ipynb", solved_notebook(ch4))
    with pytest.raises(UserError, match=r"^03-attention\.ipynb is named as chapter 03-attention but holds chapter 04-gpt"):
        run_assemble([tmp_path / "a"], tmp_path / "x")
    write(tmp_path / "b", "03-attention.ipynb", solved_notebook(ch3))
    write(tmp_path / "b", "Copy of 03-attention (1).ipynb", solved_notebook(ch3))
    with pytest.raises(UserError, match=r"03-attention\.ipynb and Copy of 03-attention \(1\)\.ipynb are both chapter 03-attention"):
        run_assemble([tmp_path / "b"], tmp_path / "x")
    assert not (tmp_path / "x").exists()
    # from the command line: one line, no traceback
    done = subprocess.run([sys.executable, "-m", "autograder", "assemble", str(tmp_path / "a"), "--out", str(tmp_path / "x")],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 2 and "Traceback" not in done.stderr and done.stderr.count("\n") == 1, done.stderr


def test_renamed_reference_import_and_notebook_global(tmp_path):
    ch = BY_NUMBER["03"]
    answers = {
        "ex-03-softmax": "import torch\n\n\ndef stable_softmax(x, dim=-1):\n"
                         "    e = (x - x.amax(dim=dim, keepdim=True)).exp()\n    return e / e.sum(dim=dim, keepdim=True)\n",
        "ex-03-causal-mask": "from buildgpt.attention import causal_mask\n",
        "ex-03-sdpa": "import math\nimport torch.nn.functional as F\n\n\n"
                      "def scaled_dot_product_attention(q, k, v, mask=None, dropout_p=0.0):\n"
                      "    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1)) * HEAD_SCALE\n"
                      "    if mask is not None:\n        scores = scores.masked_fill(~mask, float('-inf'))\n"
                      "    weights = softmax(scores, dim=-1)\n"
                      "    if dropout_p > 0.0:\n        weights = F.dropout(weights, p=dropout_p)\n"
                      "    return weights @ v, weights\n",
    }
    nb = solved_notebook(ch, answers)
    index = next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == "ex-03-sdpa")
    nb.cells.insert(index, nbformat.v4.new_code_cell("HEAD_SCALE = 1.0  # my own cell"))
    write(tmp_path / "nb", "03-attention.ipynb", nb)
    rc, log = run_assemble([tmp_path / "nb"], tmp_path / "badgpt", fill_missing=True)
    assert rc == 0 and "Traceback" not in log, log
    rows = {line.split()[1]: line for line in log.split("\n") if line.startswith("03-attention ")}
    assert set(rows) == {"ex-03-softmax", "ex-03-causal-mask", "ex-03-sdpa"}, log
    assert "03-attention.ipynb, ex-03-softmax: the answer defines `stable_softmax` instead of `softmax`" in rows["ex-03-softmax"]
    assert ("03-attention.ipynb, ex-03-causal-mask: the answer imports the reference "
            "`from buildgpt.attention import causal_mask` instead of implementing it") in rows["ex-03-causal-mask"]
    assert ("03-attention.ipynb, ex-03-sdpa: the answer uses `HEAD_SCALE`, which another cell of the notebook "
            "defines, so it only works inside the notebook") in rows["ex-03-sdpa"]
    text = (tmp_path / "badgpt" / "attention.py").read_text()
    for gid in answers:  # never a silently wrong package: the reference stands in for each
        assert f"# {gid}: the course's reference answer" in text
    assert "# ex-03-mha: your answer" in text and "buildgpt" not in text
