"""Chapter 10's library and commands: dedup (exact, MinHash against exact Jaccard, LSH), the quality
checks, streaming curation of a folder, perplexity / bits per byte against torch, multiple-choice
scoring, the scaling-law fit on a known law, the curate / eval commands and their one-sentence errors,
and the shipped data files made by their seeded scripts."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from buildgpt.curate import (NearDuplicateIndex, curate, find_exact_duplicates, jaccard, lsh_candidate_pairs,
                             minhash_signature, permutation_params, quality_problems, read_documents, shingle_hashes,
                             shingles)
from buildgpt.evaluate import (contaminated_items, evaluate_choices, lm_metrics, load_choice_benchmark, score_options,
                               token_logprobs)
from buildgpt.model import GPT, GPTConfig
from buildgpt.resources import dataset_path
from buildgpt.scaling import fit_power_law, fit_scaling_law, optimal_allocation, predict_loss
from notebooks import ROOT

torch.set_num_threads(1)
PROSE = ("It was the best of times, it was the worst of times, and the age of wisdom came with the age of "
         "foolishness; that much we have to say about the whole of it, with care. ") * 2


def cli(*args: str, cwd: Path = ROOT, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "buildgpt", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)})


# ----------------------------------------------------------------------------------------
# Dedup


def test_exact_duplicates_normalise_and_stream():
    docs = iter(["Hello,  World!", "other", "hello world", "HELLO\nWORLD", "hello worlds"])
    assert find_exact_duplicates(docs) == {2: 0, 3: 0}


def test_minhash_estimates_jaccard_within_its_standard_deviation():
    a, b = permutation_params(256, seed=3)
    words = PROSE.split()
    errors = []
    for cut in (5, 15, 30, 45):
        left, right = " ".join(words[:60]), " ".join(words[cut:cut + 60])
        true = jaccard(shingles(left), shingles(right))
        est = (minhash_signature(shingle_hashes(left), a, b) == minhash_signature(shingle_hashes(right), a, b)).float().mean().item()
        errors.append(abs(est - true) / max(1e-3, math.sqrt(true * (1 - true) / 256)))
    assert max(errors) < 4, errors  # within 4 standard deviations, every time


def test_lsh_finds_the_near_duplicates_of_the_messy_corpus():
    messy = [json.loads(line) for line in dataset_path("messy-corpus.jsonl").read_text(encoding="utf-8").splitlines()]
    a, b = permutation_params(128)
    sigs = torch.stack([minhash_signature(shingle_hashes(d["text"]), a, b) for d in messy])
    pairs = lsh_candidate_pairs(sigs, bands=32)
    injected = {tuple(sorted((d["of"], d["id"]))) for d in messy if d["kind"] == "near-duplicate"}
    found = {p for p in pairs if (sigs[p[0]] == sigs[p[1]]).float().mean() >= 0.5}
    assert len(found & injected) >= 0.9 * len(injected), (len(found & injected), len(injected))
    assert len(pairs) < 0.01 * len(messy) ** 2 / 2  # LSH compares a tiny fraction of all pairs


def test_quality_checks():
    assert quality_problems(PROSE) == []
    assert quality_problems("1 2 3 4 5") == ["too-short", "symbols", "no-stop-words"]
    assert "markup" in quality_problems(PROSE + "<br/>")
    assert "repeated-lines" in quality_problems("\n".join(["Home"] * 5 + [PROSE]))


def test_streaming_index_and_pipeline(tmp_path):
    folder = tmp_path / "crawl"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text(PROSE + "\n<|endoftext|>\n" + PROSE.upper(), encoding="utf-8")
    edited = PROSE.replace("wisdom", "folly", 1)
    (folder / "sub" / "b.jsonl").write_text(json.dumps({"text": edited}) + "\n" + json.dumps({"text": "too short"}) + "\n",
                                            encoding="utf-8")
    (folder / ".hidden").write_text("ignored", encoding="utf-8")
    docs = list(read_documents(folder))
    assert [w for w, _ in docs] == ["a.txt:1", "a.txt:3", "b.jsonl:1", "b.jsonl:2"]
    stream = curate(iter(docs))
    reasons = [reason for _, _, reason in stream]
    assert reasons == [None, "exact-duplicate", "near-duplicate", "too-short"]
    assert stream.report.kept == 1 and stream.report.removed_by == {"exact-duplicate": 1, "near-duplicate": 1, "too-short": 1}
    index = NearDuplicateIndex()
    sig = index.signature(PROSE)
    assert index.query(sig) is None
    index.add(sig, "x")
    assert index.query(index.signature(edited))[0] == 0


def test_read_documents_rejects_bad_input_in_one_sentence(tmp_path):
    (tmp_path / "w.bin").write_bytes(b"\0\1\2")
    (tmp_path / "e.txt").write_text("", encoding="utf-8")
    (tmp_path / "l.txt").write_bytes("caf\xe9".encode("latin-1"))
    (tmp_path / "j.jsonl").write_text("{not json}\n", encoding="utf-8")
    for name, words in (("w.bin", "binary"), ("e.txt", "empty"), ("l.txt", "not UTF-8"), ("j.jsonl", "not a JSON")):
        with pytest.raises(ValueError, match=words):
            list(read_documents(tmp_path / name))


# ----------------------------------------------------------------------------------------
# Evaluation


def test_token_logprobs_match_a_direct_forward_and_slide_past_the_context():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=20, context_length=8, d_model=16, n_heads=2, n_layers=1)).eval()
    ids = torch.randint(20, (8,))
    with torch.no_grad():
        direct = F.log_softmax(model(ids[None, :-1]), dim=-1)[0].gather(-1, ids[1:, None])[:, 0]
    assert torch.allclose(token_logprobs(model, ids), direct, atol=1e-6)
    long = torch.randint(20, (30,))
    out = token_logprobs(model, long, stride=4)
    assert out.shape == (29,)
    with torch.no_grad():  # token 20 is scored in the window that starts at 12 (its first with >= 4 tokens of context)
        window = long[12:21]
        want = F.log_softmax(model(window[None, :-1]), dim=-1)[0, -1, long[20]]
    assert out[19].item() == pytest.approx(want.item(), abs=1e-6)


def test_metrics_and_choice_scoring():
    nll = torch.tensor([1.0, 2.0, 3.0])
    m = lm_metrics(nll, n_bytes=12)
    assert m["perplexity"] == pytest.approx(math.exp(2.0)) and m["bits_per_byte"] == pytest.approx(6 / (12 * math.log(2)))
    logps = [torch.tensor([-1.0, -1.0, -1.0]), torch.tensor([-2.0])]
    assert score_options(logps).argmax().item() == 1 and score_options(logps, [3, 1]).argmax().item() == 0


def test_benchmark_and_contamination():
    items = load_choice_benchmark()
    assert len(items) == 200 and all(len(it["options"]) == 4 for it in items)
    text = dataset_path("tinyshakespeare.txt").read_text(encoding="utf-8")
    split = int(0.9 * len(text))
    assert all(it["start"] >= split for it in items), "the benchmark must come from the held-out part"
    for it in items[:20]:
        assert text[it["start"]:].startswith(it["context"] + it["options"][it["answer"]])
    assert len(contaminated_items(items, text[:split])) < 20
    assert len(contaminated_items(items, text)) == len(items)  # everything leaked: every item flagged


def test_shipped_model_beats_chance_on_the_benchmark():
    from buildgpt.checkpoint import load_model

    model, tok = load_model(dataset_path("shakespeare-char.pt"))
    result = evaluate_choices(model, tok.encode, load_choice_benchmark()[:40])
    assert result["per_char"] > 0.35, result  # chance is 0.25


# ----------------------------------------------------------------------------------------
# Scaling


def test_fits_recover_a_known_law():
    xs = torch.logspace(8, 12, 9, dtype=torch.float64)
    a, k = fit_power_law(xs, 7.0 * xs ** -0.1)
    assert a == pytest.approx(7.0, rel=1e-9) and k == pytest.approx(-0.1, abs=1e-12)
    law = {"E": 1.5, "A": 40.0, "alpha": 0.4, "B": 60.0, "beta": 0.3}
    n = torch.tensor([1e4, 1e5, 1e6] * 3, dtype=torch.float64)
    d = torch.tensor([1e5] * 3 + [1e6] * 3 + [1e7] * 3, dtype=torch.float64)
    fit = fit_scaling_law(n, d, predict_loss(law, n, d))
    for key in ("E", "alpha", "beta"):
        assert fit[key] == pytest.approx(law[key], rel=0.05), (key, fit)
    n_opt, d_opt = optimal_allocation(law, 1e15)
    assert 6 * n_opt * d_opt == pytest.approx(1e15)
    for factor in (0.8, 1.25):  # the optimum is a minimum along the budget
        assert predict_loss(law, n_opt, d_opt) < predict_loss(law, n_opt * factor, d_opt / factor)


def test_shipped_sweep_results_are_consistent():
    sweep = json.loads(dataset_path("scaling-sweep.json").read_text(encoding="utf-8"))
    assert len(sweep["runs"]) >= 16
    for r in sweep["runs"]:
        assert r["C"] == 6 * r["N"] * r["D"] and r["D"] == r["steps"] * sweep["batch_size"] * sweep["context_length"]
    check = json.loads(dataset_path("scaling-check.json").read_text(encoding="utf-8"))
    assert check["chosen"] == min(check["candidates"], key=lambda c: c["predicted"])
    assert check["measured"]["steps"] == check["chosen"]["steps"]


# ----------------------------------------------------------------------------------------
# Commands


def test_curate_command(tmp_path):
    run = cli("curate", str(dataset_path("messy-corpus.jsonl")), "--out", str(tmp_path / "out"), "--no-progress")
    assert run.returncode == 0, run.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text(encoding="utf-8"))
    kept = (tmp_path / "out" / "kept.jsonl").read_text(encoding="utf-8").splitlines()
    removed = (tmp_path / "out" / "removed.jsonl").read_text(encoding="utf-8").splitlines()
    assert report["documents"] == len(kept) + len(removed) == 693 and report["kept"] == len(kept)
    assert {"exact-duplicate", "near-duplicate", "too-short", "markup"} <= set(report["removed_by"])
    assert "removed by" in run.stdout


def main_in_process(capsys, *args: str) -> tuple[int, str]:
    """Run `python -m buildgpt ARGS` in this process (no interpreter start-up): exit code and stderr."""
    from buildgpt.__main__ import main

    code = main(list(args))
    return code, capsys.readouterr().err


def test_curate_command_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.bin").write_bytes(b"\0" * 10)
    (tmp_path / "x.txt").write_text("", encoding="utf-8")
    for name, needle in (("x.bin", "binary"), ("x.txt", "empty"), ("missing", "does not exist")):
        code, err = main_in_process(capsys, "curate", name, "--out", "out", "--no-progress")
        assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, err
    code, err = main_in_process(capsys, "curate", "x.bin", "--out", "out", "--threshold", "2")
    assert code == 2 and "--threshold" in err


def test_eval_command(tmp_path, capsys, monkeypatch):
    ckpt = str(dataset_path("shakespeare-char.pt"))
    (tmp_path / "t.txt").write_text(dataset_path("tinyshakespeare.txt").read_text(encoding="utf-8")[-3000:], encoding="utf-8")
    run = cli("eval", "--ckpt", ckpt, "--task", "text", "--data", "t.txt", cwd=tmp_path)
    assert run.returncode == 0 and "bits per byte" in run.stdout, run.stderr
    monkeypatch.chdir(tmp_path)
    code, _ = main_in_process(capsys, "eval", "--ckpt", ckpt, "--task", "next-line", "--limit", "8", "--no-progress")
    assert code == 0
    (tmp_path / "b.bin").write_bytes(b"\0\1")
    for args, needle in ((["--task", "poetry"], "unknown task"), (["--task", "text"], "needs --data"),
                         (["--task", "next-line", "--data", "t.txt"], "not a multiple-choice item"),
                         (["--task", "text", "--data", "nope.txt"], "does not exist"),
                         (["--task", "text", "--data", "b.bin"], "binary")):
        code, err = main_in_process(capsys, "eval", "--ckpt", ckpt, *args)
        assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, (args, err)
    code, err = main_in_process(capsys, "eval", "--ckpt", "nope.pt", "--task", "text", "--data", "t.txt")
    assert code == 2 and "does not exist" in err


# ----------------------------------------------------------------------------------------
# Shipped data: remade by their seeded scripts, byte for byte


@pytest.mark.parametrize("script,name", [("make_messy_corpus.py", "messy-corpus.jsonl"),
                                         ("make_next_line_benchmark.py", "next-line.jsonl")])
def test_shipped_data_is_reproducible(tmp_path, script, name):
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / script), "--out", str(tmp_path / name)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / name).read_bytes() == dataset_path(name).read_bytes()
