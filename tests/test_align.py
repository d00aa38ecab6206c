"""buildgpt.align (chapter 8) and the dpo command, on tiny random models."""

from __future__ import annotations

import copy
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from buildgpt.align import (RewardModel, bradley_terry_loss, checker_accuracy, dpo_loss, dpo_train,
                            evaluate_preferences, load_pairs, make_pairs, mean_log_ratio, preference_batch,
                            reward_accuracy, reward_batch, sample_answers, sequence_logprobs, train_reward_model)
from buildgpt.instruct import END_OF_TEXT_CHAR, PREAMBLE, end_of_text_id, format_prompt
from buildgpt.model import GPT, GPTConfig
from buildgpt.tokenizer import CharTokenizer

ROOT = Path(__file__).resolve().parents[1]
VOCAB = PREAMBLE + "#:\n abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.?\"'" + END_OF_TEXT_CHAR
PAIRS = [
    {"instruction": "Say yes.", "input": "", "chosen": "yes", "rejected": "no"},
    {"instruction": "Spell cat.", "input": "", "chosen": "c-a-t", "rejected": "c-a-t-t-t", "rejected_ended": False},
    {"instruction": "What is 2 + 3?", "input": "", "chosen": "5", "rejected": "6"},
    {"instruction": "First letter?", "input": "dog", "chosen": "d", "rejected": "o"},
]


@pytest.fixture(scope="module")
def tok():
    return CharTokenizer(VOCAB)


def tiny_gpt(vocab_size: int, seed: int = 0, d_model: int = 32) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=vocab_size, context_length=256, d_model=d_model, n_heads=2, n_layers=1)).eval()


def by_hand(model, tok, pair, side) -> float:
    prompt = tok.encode(format_prompt(pair))
    answer = tok.encode(pair[side]) + ([end_of_text_id(tok)] if pair.get(f"{side}_ended", True) else [])
    with torch.no_grad():
        logps = model(torch.tensor([prompt + answer])).log_softmax(-1)[0]
    return sum(logps[len(prompt) - 1 + i, t].item() for i, t in enumerate(answer))


def test_preference_batch_counts_only_the_answers(tok):
    inputs, targets = preference_batch(PAIRS[:2], tok)
    assert inputs.shape == targets.shape and inputs.shape[0] == 4, "two pairs give four rows"
    eot = END_OF_TEXT_CHAR
    counted = [tok.decode(row[row != -100].tolist()) for row in targets]
    assert counted == ["yes" + eot, "c-a-t" + eot, "no" + eot, "c-a-t-t-t"], (
        f"chosen rows first, each answer plus its end-of-text unless it was cut off; got {counted}")


def test_sequence_logprobs_match_token_by_token(tok):
    model = tiny_gpt(tok.vocab_size)
    inputs, targets = preference_batch(PAIRS, tok)
    with torch.no_grad():
        batched = sequence_logprobs(model(inputs), targets)
    expected = [by_hand(model, tok, p, "chosen") for p in PAIRS] + [by_hand(model, tok, p, "rejected") for p in PAIRS]
    assert torch.allclose(batched, torch.tensor(expected), atol=1e-4), (batched, expected)


def test_dpo_loss_contract():
    z = torch.zeros(3)
    loss, chosen, rejected = dpo_loss(z, z, z, z, 0.1)
    assert abs(loss.item() - math.log(2)) < 1e-6 and not chosen.any() and not rejected.any()
    ref = torch.tensor([-1.0, -2.0], requires_grad=True)
    pol_c, pol_r = torch.tensor([-0.5, -1.0], requires_grad=True), torch.tensor([-3.0, -1.0], requires_grad=True)
    loss, chosen, rejected = dpo_loss(pol_c, pol_r, ref, ref, 2.0)
    loss.backward()
    assert ref.grad is None, "the reference must receive no gradient"
    assert (pol_c.grad < 0).all() and (pol_r.grad > 0).all()
    assert torch.allclose(chosen - rejected, 2.0 * ((pol_c - pol_r)).detach())


def test_bradley_terry_is_stable():
    assert torch.isfinite(bradley_terry_loss(torch.tensor([-500.0]), torch.tensor([500.0])))
    assert abs(bradley_terry_loss(torch.tensor([0.0]), torch.tensor([0.0])).item() - math.log(2)) < 1e-6


def test_dpo_train_learns_the_preference_and_keeps_the_reference_frozen(tok):
    policy, reference = tiny_gpt(tok.vocab_size), tiny_gpt(tok.vocab_size)
    frozen = copy.deepcopy(reference.state_dict())
    start = evaluate_preferences(policy, reference, PAIRS, tok, beta=0.5)
    assert abs(start["loss"] - math.log(2)) < 1e-5 and start["margin"] == 0.0, "policy == reference gives log 2, margin 0"
    seen = []
    history = dpo_train(policy, reference, PAIRS, PAIRS, tok, steps=30, beta=0.5, batch_size=2, lr=3e-3,
                        eval_every=10, progress=False, on_eval=lambda step, h, opt: seen.append(step))
    assert seen == [10, 20, 30] and history["step"] == [10, 20, 30]
    assert history["val_loss"][-1] < math.log(2) - 0.1 and history["val_accuracy"][-1] == 1.0, history
    assert history["val_margin"][-1] > 0
    assert all(torch.equal(frozen[k], v) for k, v in reference.state_dict().items()), "the reference changed"
    assert not any(p.requires_grad for p in reference.parameters())
    with pytest.raises(ValueError, match="share parameters"):
        dpo_train(policy, policy, PAIRS, PAIRS, tok, steps=1, progress=False)


def test_dpo_train_resumes_exactly(tok):
    ref = tiny_gpt(tok.vocab_size, seed=1)
    common = dict(steps=4, beta=0.1, batch_size=2, lr=1e-3, eval_every=2, progress=False)
    full = tiny_gpt(tok.vocab_size, seed=1)
    dpo_train(full, ref, PAIRS, PAIRS[:1], tok, **common)

    class Stop(Exception):
        pass

    saved = {}

    def stop_at_two(step, history, optimizer):
        saved.update(model=copy.deepcopy(half.state_dict()), optimizer=copy.deepcopy(optimizer.state_dict()))
        raise Stop

    half = tiny_gpt(tok.vocab_size, seed=1)
    with pytest.raises(Stop):
        dpo_train(half, ref, PAIRS, PAIRS[:1], tok, on_eval=stop_at_two, **common)
    resumed = tiny_gpt(tok.vocab_size, seed=7)
    resumed.load_state_dict(saved["model"])
    opt = torch.optim.AdamW(resumed.parameters(), lr=1e-3, weight_decay=0.0)
    opt.load_state_dict(saved["optimizer"])
    dpo_train(resumed, ref, PAIRS, PAIRS[:1], tok, optimizer=opt, start_step=2, **common)
    for a, b in zip(full.parameters(), resumed.parameters()):
        assert torch.allclose(a, b, atol=1e-6), "stopping at step 2 and resuming should equal 4 steps in one go"


def test_reward_model_reads_the_last_real_token(tok):
    rm = RewardModel(tiny_gpt(tok.vocab_size))
    inputs, lengths = reward_batch(PAIRS, tok)
    assert lengths.tolist()[1] == len(tok.encode(format_prompt(PAIRS[1]) + "c-a-t")) + 1
    assert lengths.tolist()[5] == len(tok.encode(format_prompt(PAIRS[1]) + "c-a-t-t-t")), "a cut-off answer has no end-of-text"
    assert not rm(inputs, lengths).any(), "the zero head starts every reward at 0"
    torch.nn.init.normal_(rm.head.weight)
    padded = torch.cat([inputs, torch.full((inputs.shape[0], 5), end_of_text_id(tok))], dim=1)
    assert torch.allclose(rm(inputs, lengths), rm(padded, lengths), atol=1e-5), "padding must not change a reward"
    torch.manual_seed(0)
    history = train_reward_model(rm, PAIRS, PAIRS, tok, steps=30, batch_size=4, lr=3e-3, eval_every=15, progress=False)
    assert history["val_accuracy"][-1] == 1.0 and reward_accuracy(rm, PAIRS, tok)["loss"] < math.log(2)


def test_sampling_pairs_and_checker(tok):
    model = tiny_gpt(tok.vocab_size)
    items = [{"instruction": "Say yes.", "input": "", "output": "yes", "family": "demo"},
             {"instruction": "Say no.", "input": "", "output": "no", "family": "demo"}]
    answers = sample_answers(model, tok, items[0], 3, temperature=1.0, max_new_tokens=5,
                             generator=torch.Generator().manual_seed(0))
    assert len(answers) == 3 and all(isinstance(a, str) and isinstance(e, bool) for a, e in answers)
    assert all(len(a) <= 5 for a, _ in answers)
    never, counts = make_pairs(model, tok, items, lambda item, answer: False, samples=3, max_new_tokens=4, progress=False)
    assert counts["from_reference"] == 2 and [p["chosen"] for p in never] == ["yes", "no"]
    assert all(p["chosen_source"] == "reference" and p["family"] == "demo" for p in never)
    always, counts = make_pairs(model, tok, items, lambda item, answer: True, samples=2, max_new_tokens=20, progress=False)
    assert len(always) + counts["all_good"] == 2, "an item gives a pair unless every answer is good"
    assert all(p["chosen_ended"] and not p["rejected_ended"] for p in always), (
        "when the checker accepts everything, only answers cut off before end-of-text are bad")
    again, _ = make_pairs(model, tok, items, lambda item, answer: False, samples=3, max_new_tokens=4, progress=False, use_reference=False)
    assert again == []
    score = checker_accuracy(model, tok, items, lambda item, answer: True, max_new_tokens=4, progress=False)
    assert score["n"] == 2 and score["exact"] == score["ended"] and set(score["by_family"]) == {"demo"}
    assert mean_log_ratio(model, copy.deepcopy(model), tok, items, max_new_tokens=4) == pytest.approx(0.0, abs=1e-6)


def test_load_pairs_checks_the_file(tmp_path):
    good = tmp_path / "pairs.json"
    good.write_text(json.dumps(PAIRS * 5), encoding="utf-8")
    train, val = load_pairs(good)
    assert len(train) == 18 and len(val) == 2, "a plain list: a seeded 10% validates"
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"meta": {}, "train": PAIRS, "val": PAIRS[:1]}), encoding="utf-8")
    assert load_pairs(split) == (PAIRS, PAIRS[:1])
    with pytest.raises(FileNotFoundError, match="no preference file"):
        load_pairs(tmp_path / "missing.json")
    missing = tmp_path / "missing-field.json"
    missing.write_text(json.dumps([{"instruction": "x", "chosen": "a"}]), encoding="utf-8")
    with pytest.raises(ValueError, match="pair 0 .* no 'rejected' field"):
        load_pairs(missing)


# --- the command ------------------------------------------------------------------------------

def cli(*args, timeout=300, **kwargs):
    return subprocess.run([sys.executable, "-m", "buildgpt", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, **kwargs)


@pytest.fixture(scope="module")
def files(tmp_path_factory, tok):
    from buildgpt.checkpoint import save_checkpoint

    folder = tmp_path_factory.mktemp("dpo")
    meta = {"kind": "char", "vocab": "".join(tok.chars)}
    save_checkpoint(folder / "sft.pt", model=tiny_gpt(tok.vocab_size), tokenizer_meta=meta)
    save_checkpoint(folder / "wide.pt", model=tiny_gpt(tok.vocab_size, d_model=64), tokenizer_meta=meta)
    (folder / "pairs.json").write_text(json.dumps({"train": PAIRS * 2, "val": PAIRS[:2]}), encoding="utf-8")
    (folder / "bad-pairs.json").write_text(json.dumps([{"instruction": "x", "input": "", "chosen": "a"}]), encoding="utf-8")
    (folder / "broken.json").write_text("[{oops", encoding="utf-8")
    return folder


@pytest.mark.parametrize("args,words", [
    (["--ckpt", "no/such.pt"], "no checkpoint"),
    (["--data", "no/such.json"], "no preference file"),
    (["--data", "BAD"], "no 'rejected' field"),
    (["--data", "BROKEN"], "not a JSON file"),
    (["--ref", "WIDE"], "another shape"),
    (["--beta", "0"], "--beta"),
    (["--resume"], "nothing to resume"),
    (["--lora-rank", "-2"], "--lora-rank"),
])
def test_dpo_mistakes_get_one_sentence(args, words, files, tmp_path, capsys):
    base = {"--ckpt": str(files / "sft.pt"), "--data": str(files / "pairs.json"), "--out": str(tmp_path / "run")}
    names = {"BAD": files / "bad-pairs.json", "BROKEN": files / "broken.json", "WIDE": files / "wide.pt"}
    extra = []
    for i in range(0, len(args), 2):
        value = args[i + 1] if i + 1 < len(args) else None
        if args[i] in base:
            base[args[i]] = str(names.get(value, value))
        else:
            extra += [args[i]] + ([str(names.get(value, value))] if value is not None else [])
    from buildgpt.__main__ import main

    code = main(["dpo", *[x for kv in base.items() for x in kv], *extra])  # in-process: no torch start-up per case
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], err


def test_dpo_command_end_to_end_with_resume_lora_and_chat(files, tmp_path):
    out = tmp_path / "run"
    common = ["dpo", "--ckpt", str(files / "sft.pt"), "--data", str(files / "pairs.json"), "--out", str(out),
              "--beta", "0.5", "--eval-every", "2", "--lora-rank", "2", "--batch-size", "2"]
    first = cli(*common, "--steps", "2")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "validation pairs before DPO: loss 0.693 (log 2" in first.stdout and "trainable:" in first.stdout
    assert "DPO" in first.stderr and "margin=" in first.stderr and "acc=" in first.stderr, "a progress bar with margin and accuracy"
    for name in ("ckpt.pt", "state.pt", "history.json"):
        assert (out / name).is_file(), f"dpo should write {name}"
    again = cli(*common, "--steps", "2")
    assert again.returncode == 2 and "--resume" in again.stderr
    other = cli(*[a if a != "0.5" else "0.2" for a in common], "--steps", "4", "--resume")
    assert other.returncode == 2 and "same options" in other.stderr
    resumed = cli(*common, "--steps", "4", "--resume")
    assert resumed.returncode == 0 and "resuming at step 2" in resumed.stdout, resumed.stdout + resumed.stderr
    history = json.loads((out / "history.json").read_text(encoding="utf-8"))
    assert history["step"] == [2, 4] and len(history["val_accuracy"]) == 2
    from buildgpt.checkpoint import load_checkpoint, load_model
    from buildgpt.lora import LoRALinear

    model, _ = load_model(out)
    assert not any(isinstance(m, LoRALinear) for m in model.modules()), "LoRA is merged into ckpt.pt"
    assert load_checkpoint(out)["extra"]["dpo"]["beta"] == 0.5
    torch.load(out / "state.pt", weights_only=True)  # the resume state is plain tensors and numbers
    answered = cli("chat", "--ckpt", str(out), "--max-new-tokens", "5", input="Say yes.\n", timeout=120)
    assert answered.returncode == 0 and answered.stdout.strip(), answered.stderr
