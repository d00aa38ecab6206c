"""buildgpt.instruct, buildgpt.lora and the finetune / chat commands (chapter 7)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from buildgpt.instruct import (END_OF_TEXT_CHAR, PREAMBLE, collate, encode_example, end_of_text_id,
                               evaluate_loss, evaluate_responses, finetune, format_prompt,
                               instruction_batches, load_instructions, split_dataset)
from buildgpt.lora import LoRALinear, apply_lora, lora_report, merge_lora
from buildgpt.model import GPT, GPTConfig
from buildgpt.resources import dataset_path
from buildgpt.tokenizer import CharTokenizer

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data():
    return load_instructions(dataset_path("instruction-data.json"))


@pytest.fixture(scope="module")
def tokenizer(data):
    text = "".join(format_prompt(e) + e["output"] for e in data) + END_OF_TEXT_CHAR
    return CharTokenizer(text)


def tiny_gpt(vocab_size: int, seed: int = 0, d_model: int = 32, n_layers: int = 1) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=vocab_size, context_length=512, d_model=d_model, n_heads=2, n_layers=n_layers)).eval()


# --- data -------------------------------------------------------------------------------------

def test_prompt_template_and_split(data):
    prompt = format_prompt({"instruction": "Add.", "input": "2 + 2", "output": "4"})
    assert prompt == PREAMBLE + "\n\n### Instruction:\nAdd.\n\n### Input:\n2 + 2\n\n### Response:\n"
    assert "### Input" not in format_prompt({"instruction": "Hi.", "input": ""})
    train, val, test = split_dataset(data, seed=123)
    assert (len(train), len(val), len(test)) == (935, 55, 110)
    again = split_dataset(data, seed=123)
    assert again == (train, val, test), "the same seed must give the same split"
    assert split_dataset(data, seed=7)[2] != test, "another seed gives another split"
    keys = lambda part: {json.dumps(e, sort_keys=True) for e in part}
    assert not keys(train) & keys(test) and not keys(val) & keys(test), "the parts must not overlap"
    with pytest.raises(ValueError):
        split_dataset(data, fractions=(0.5, 0.5, 0.5))


def test_collate_pads_shifts_and_ignores():
    x, y = collate([[5, 6, 7], [8, 9]], pad_id=50256)
    assert x.dtype == y.dtype == torch.long
    assert x.tolist() == [[5, 6, 7], [8, 9, 50256]]
    assert y.tolist() == [[6, 7, 50256], [9, 50256, -100]], "one end-of-text target kept, padding ignored"
    _, ym = collate([[1, 2, 3, 4]], pad_id=0, prompt_lengths=[3])
    assert ym.tolist() == [[-100, -100, 4, 0]], "prompt targets masked, the first response token kept"
    xc, yc = collate([[1, 2, 3, 4, 5]], pad_id=0, max_length=2)
    assert xc.tolist() == [[1, 2]] and yc.tolist() == [[2, 3]]


def test_cross_entropy_skips_padding_exactly():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 11)
    _, y = collate([[1, 2, 3], [4, 5]], pad_id=10)
    loss = nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=-100)
    kept = [(b, t) for b in range(2) for t in range(3) if y[b, t] != -100]
    manual = -torch.stack([logits[b, t].log_softmax(-1)[y[b, t]] for b, t in kept]).mean()
    assert len(kept) == 5 and torch.allclose(loss, manual)


def test_instruction_loss_weighs_each_example_the_same():
    """per_example: the mean of each example's mean (a short answer weighs as much as a long one);
    otherwise one mean over every counted target; evaluate_loss agrees with both over several batches."""
    from buildgpt.instruct import instruction_loss

    torch.manual_seed(0)
    table = torch.randn(12, 12)

    class Lookup(nn.Module):  # logits depend only on the input id, so every loss is easy to write down
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(table.clone())

        def forward(self, idx):
            return self.w[idx]

    model = Lookup()
    x, y = collate([[1, 2, 3, 4, 5, 6], [7, 8]], pad_id=11, prompt_lengths=[2, 1])
    logp = table.log_softmax(-1)
    per_b = [[-logp[x[b, t], y[b, t]] for t in range(x.shape[1]) if y[b, t] != -100] for b in range(2)]
    assert [len(v) for v in per_b] == [5, 2]
    by_example = (torch.stack(per_b[0]).mean() + torch.stack(per_b[1]).mean()) / 2
    by_token = torch.stack(per_b[0] + per_b[1]).mean()
    assert not torch.allclose(by_example, by_token), "the example must tell the two means apart"
    assert torch.allclose(instruction_loss(model, x, y), by_example)
    assert torch.allclose(instruction_loss(model, x, y, per_example=False), by_token)
    x2, y2 = collate([[3, 9, 10]], pad_id=11, prompt_lengths=[1])
    third = torch.stack([-logp[x2[0, t], y2[0, t]] for t in range(3) if y2[0, t] != -100])
    assert abs(evaluate_loss(model, [(x, y), (x2, y2)]) - float((2 * by_example + third.mean()) / 3)) < 1e-5
    assert abs(evaluate_loss(model, [(x, y), (x2, y2)], per_example=False)
               - float(torch.cat([torch.stack(per_b[0] + per_b[1]), third]).mean())) < 1e-5


def test_end_of_text_ids(tokenizer):
    from buildgpt.resources import gpt2_encoding

    assert end_of_text_id(gpt2_encoding()) == 50256
    assert tokenizer.decode([end_of_text_id(tokenizer)]) == END_OF_TEXT_CHAR
    with pytest.raises(ValueError, match="end-of-text"):
        end_of_text_id(CharTokenizer("abc"))


# --- LoRA -------------------------------------------------------------------------------------

def test_lora_at_init_equals_base_and_merge_is_exact(tokenizer):
    base = tiny_gpt(tokenizer.vocab_size, d_model=64, n_layers=2)
    ids = torch.randint(0, tokenizer.vocab_size, (2, 30))
    want = base(ids)
    lora = apply_lora(copy.deepcopy(base), r=4, alpha=8)
    assert torch.equal(lora(ids), want), "B = 0, so LoRA at initialization is the base model exactly"
    n_lora = sum(isinstance(m, LoRALinear) for m in lora.modules())
    assert n_lora == 2 * 4, "the default targets adapt the four linear layers of each block"
    trainable = {n for n, p in lora.named_parameters() if p.requires_grad}
    assert trainable and all(n.endswith((".A", ".B")) for n in trainable)
    with torch.no_grad():
        for m in lora.modules():
            if isinstance(m, LoRALinear):
                m.B.normal_(std=0.05)
    unmerged = lora(ids)
    assert not torch.allclose(unmerged, want, atol=1e-4)
    merged = merge_lora(copy.deepcopy(lora))
    assert not any(isinstance(m, LoRALinear) for m in merged.modules())
    assert torch.allclose(merged(ids), unmerged, atol=1e-5)
    assert "trainable:" in lora_report(lora) and "%" in lora_report(lora)


def test_lora_only_touches_targets(tokenizer):
    model = apply_lora(tiny_gpt(tokenizer.vocab_size), r=2, alpha=4, targets=("attn.proj",))
    assert isinstance(model.blocks[0].attn.proj, LoRALinear)
    assert type(model.blocks[0].mlp.proj) is nn.Linear
    with pytest.raises(ValueError):
        apply_lora(tiny_gpt(tokenizer.vocab_size), r=2, alpha=4, targets=("nothing.here",))


# --- fine-tuning ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pretrained_tiny(tokenizer):
    """A tiny GPT pretrained for a few seconds on Shakespeare, as chapter 7 does at larger scale.

    LoRA needs a pretrained start: with random embeddings of std 0.02 frozen, the logits cannot grow."""
    torch.set_num_threads(1)
    model = tiny_gpt(tokenizer.vocab_size, seed=1).train()
    corpus = torch.tensor(tokenizer.encode(dataset_path("tinyshakespeare.txt").read_text(encoding="utf-8")[:200_000]))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(60):
        starts = torch.randint(0, len(corpus) - 129, (8,), generator=gen)
        x = torch.stack([corpus[s:s + 128] for s in starts])
        y = torch.stack([corpus[s + 1:s + 129] for s in starts])
        loss = nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@pytest.mark.parametrize("lora_rank", [0, 4], ids=["full", "lora"])
def test_finetuning_lowers_the_validation_loss(data, tokenizer, pretrained_tiny, lora_rank):
    torch.set_num_threads(1)
    train, val, _ = split_dataset(data, seed=123)
    model = copy.deepcopy(pretrained_tiny)
    if lora_rank:
        apply_lora(model, r=lora_rank, alpha=2 * lora_rank)
        frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    val_batches = instruction_batches(val[:24], tokenizer, 8, max_length=512)
    before = evaluate_loss(model, val_batches)
    history = finetune(model, train[:160], val[:24], tokenizer, steps=30, batch_size=8,
                       lr=1e-2 if lora_rank else 2e-3, eval_every=15, progress=False)
    after = evaluate_loss(model, val_batches)
    assert history["step"] == [15, 30] and abs(history["val_loss"][-1] - after) < 1e-6
    print(f"{'LoRA' if lora_rank else 'full'}: validation loss {before:.3f} -> {after:.3f}")
    assert after < before - 0.1, f"validation loss should fall clearly: {before:.3f} -> {after:.3f}"
    if lora_rank:
        assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if n in frozen), (
            "LoRA must leave every frozen weight exactly as it was")


def test_finetune_resumes_where_it_stopped(data, tokenizer):
    train, val, _ = split_dataset(data, seed=123)
    straight = tiny_gpt(tokenizer.vocab_size, seed=3)
    opt = torch.optim.AdamW(straight.parameters(), lr=1e-3)
    saved = {}

    def keep(step, history, optimizer):
        saved[step] = (copy.deepcopy(straight.state_dict()), copy.deepcopy(optimizer.state_dict()))

    finetune(straight, train[:40], val[:8], tokenizer, steps=8, batch_size=8, eval_every=4, optimizer=opt,
             on_eval=keep, progress=False)
    half = tiny_gpt(tokenizer.vocab_size, seed=99)
    half.load_state_dict(saved[4][0])
    opt_half = torch.optim.AdamW(half.parameters(), lr=1e-3)
    opt_half.load_state_dict(saved[4][1])
    finetune(half, train[:40], val[:8], tokenizer, steps=8, batch_size=8, eval_every=4, optimizer=opt_half,
             start_step=4, progress=False)
    for (name, p), q in zip(straight.state_dict().items(), half.state_dict().values()):
        assert torch.allclose(p, q, atol=1e-6), f"{name} differs after resuming at step 4"


def test_evaluation_checks_each_answer_and_counts_per_family(tokenizer, tmp_path, monkeypatch):
    import buildgpt.instruct as instruct

    items = [{"instruction": "What is 2 + 3?", "input": "", "output": "5", "family": "arithmetic"},
             {"instruction": "What is 4 + 4?", "input": "", "output": "8", "family": "arithmetic"},
             {"instruction": 'Spell "cat".', "input": "", "output": "c-a-t", "family": "spelling"},
             {"instruction": "Name a color.", "input": "", "output": "Blue."}]
    replies = {"What is 2 + 3?": ("5", True), "What is 4 + 4?": ("9", True), 'Spell "cat".': ("c-a-t", False),
               "Name a color.": ("Red.", True)}
    monkeypatch.setattr(instruct, "generate_response", lambda model, tok, entry, **kw: replies[entry["instruction"]])
    summary = evaluate_responses(None, tokenizer, items, tmp_path / "answers.json", progress=False)
    saved = json.loads((tmp_path / "answers.json").read_text(encoding="utf-8"))
    assert [r["correct"] for r in saved] == [True, False, True, False]
    assert [r["ended"] for r in saved] == [True, True, False, True]
    assert saved[3]["family"] == "alpaca", "a record without a family is an open-ended (alpaca) one"
    assert summary["n"] == 4 and summary["accuracy"] == pytest.approx(2 / 3), "accuracy counts the checkable items only"
    assert summary["ended"] == pytest.approx(3 / 4)
    assert summary["by_family"]["arithmetic"] == {"n": 2, "accuracy": 0.5, "ended": 1.0}
    assert summary["by_family"]["spelling"]["ended"] == 0.0


def test_evaluation_of_a_real_model_writes_its_answers(data, tokenizer, tmp_path):
    model = tiny_gpt(tokenizer.vocab_size)
    summary = evaluate_responses(model, tokenizer, data[:2], tmp_path / "answers.json", max_new_tokens=5, progress=False)
    saved = json.loads((tmp_path / "answers.json").read_text(encoding="utf-8"))
    assert summary["n"] == 2 and len(saved) == 2 and summary["accuracy"] == 0.0
    assert {"instruction", "output", "model_response", "ended", "correct"} <= set(saved[0])
    assert len(saved[0]["model_response"]) <= 5 or saved[0]["ended"]


# --- commands ---------------------------------------------------------------------------------

def cli(*args, stdin=subprocess.DEVNULL, input=None, timeout=300, cwd=None):
    kwargs = {"input": input} if input is not None else {"stdin": stdin}
    return subprocess.run([sys.executable, "-m", "buildgpt", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd or ROOT, **kwargs)


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory, tokenizer):
    from buildgpt.checkpoint import save_checkpoint

    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint(path, model=tiny_gpt(tokenizer.vocab_size), tokenizer_meta={"kind": "char", "vocab": "".join(tokenizer.chars)})
    return path


@pytest.mark.parametrize("args,words", [
    (["finetune", "--ckpt", "no/such.pt", "--out", "x"], "no checkpoint"),
    (["finetune", "--ckpt", "CKPT", "--data", "no/such.json", "--out", "x"], "no instruction file"),
    (["finetune", "--ckpt", "CKPT", "--out", "x", "--lora-rank", "-1"], "--lora-rank"),
    (["finetune", "--ckpt", "CKPT", "--out", "x", "--steps", "0"], "--steps"),
    (["finetune", "--ckpt", "CKPT", "--out", "OUT", "--resume"], "nothing to resume"),
    (["chat", "--ckpt", "no/such.pt"], "no checkpoint"),
    (["chat", "--ckpt", "CKPT", "--temperature", "-1"], "--temperature"),
])
def test_cli_mistakes_get_one_sentence(args, words, small_checkpoint, tmp_path):
    args = [str(small_checkpoint) if a == "CKPT" else str(tmp_path / "run") if a == "OUT" else a for a in args]
    result = cli(*args, timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_cli_bad_data_file(small_checkpoint, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    result = cli("finetune", "--ckpt", str(small_checkpoint), "--data", str(bad), "--out", str(tmp_path / "r"))
    assert result.returncode == 2 and "not a JSON file" in result.stderr and "Traceback" not in result.stderr


def test_cli_gpt2_without_weights_is_one_sentence(tmp_path):
    result = cli("chat", "--ckpt", str(tmp_path / "missing.safetensors"), timeout=120)
    assert result.returncode == 2 and result.stderr.startswith("error: ") and "Traceback" not in result.stderr, result.stderr


def test_finetune_command_end_to_end_with_resume_and_chat(small_checkpoint, tmp_path):
    out = tmp_path / "run"
    common = ["finetune", "--ckpt", str(small_checkpoint), "--out", str(out), "--lora-rank", "2",
              "--eval-every", "2", "--test-answers", "2", "--max-new-tokens", "8"]
    first = cli(*common, "--steps", "2")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "validation loss before fine-tuning" in first.stdout and "trainable:" in first.stdout
    for name in ("ckpt.pt", "state.pt", "history.json", "test-answers.json"):
        assert (out / name).is_file(), f"finetune should write {name}"
    again = cli(*common, "--steps", "2")
    assert again.returncode == 2 and "--resume" in again.stderr, "a second run into the same folder must ask for --resume"
    resumed = cli(*common, "--steps", "4", "--resume")
    assert resumed.returncode == 0 and "resuming at step 2" in resumed.stdout, resumed.stdout + resumed.stderr
    history = json.loads((out / "history.json").read_text(encoding="utf-8"))
    assert history["step"] == [0, 2, 4]
    from buildgpt.checkpoint import load_model

    model, tok = load_model(out)
    assert not any(isinstance(m, LoRALinear) for m in model.modules()), "the saved model has LoRA merged in"
    # chat: EOF on stdin (closed) ends it cleanly, and a piped question gets an answer
    closed = cli("chat", "--ckpt", str(out), timeout=120)
    assert closed.returncode == 0 and closed.stderr == "", closed.stderr
    answered = cli("chat", "--ckpt", str(out), "--max-new-tokens", "5", input="Name a color.\n", timeout=120)
    assert answered.returncode == 0 and answered.stdout.strip(), answered.stderr


def test_chat_exits_cleanly_on_ctrl_c(small_checkpoint):
    import os
    import signal
    import time

    proc = subprocess.Popen([sys.executable, "-m", "buildgpt", "chat", "--ckpt", str(small_checkpoint)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        time.sleep(8)  # let it load and wait for input
        os.kill(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode in (0, 130) and "Traceback" not in err, err
