"""Chapter 7's checkable tasks: the checker, the shipped data and its generator, the shipped models."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from buildgpt.resources import dataset_path
from buildgpt.tasks import TASK_FAMILIES, accuracy_by_family, check_answer, load_tasks

ROOT = Path(__file__).resolve().parents[1]


def item(family: str, output: str) -> dict:
    return {"instruction": "?", "input": "", "output": output, "family": family}


@pytest.mark.parametrize("family,output,right,wrong", [
    ("arithmetic", "42", ["42", " 42.", "42\n"], ["41", "forty-two", "42 apples", "4 2", ""]),
    ("counting", "7", ["7", "7."], ["07x", "seven", "8"]),
    ("spelling", "c-a-s-t-l-e", ["c-a-s-t-l-e", "c-a-s-t-l-e."], ["C-A-S-T-L-E", "castle", "c-a-s-t-l", "castle is spelled c-a-s-t-l-e"]),
    ("letters", "e", ["e", " e "], ["E", "the letter e", ""]),
    ("reformat", "THOU DROWN", ["THOU DROWN"], ["thou drown", "THOU  DROWN!", "Thou Drown"]),
    ("passage", "CURTIS", ["CURTIS", "Curtis", "curtis."], ["GRUMIO", "CURTIS:", "It is CURTIS"]),
    ("alpaca", "Blue.", ["Blue.", " Blue "], ["Red."]),
])
def test_check_answer_is_exact_per_family(family, output, right, wrong):
    for answer in right:
        assert check_answer(item(family, output), answer), f"{family}: {answer!r} should count as {output!r}"
    for answer in wrong:
        assert not check_answer(item(family, output), answer), f"{family}: {answer!r} should not count as {output!r}"
    assert not check_answer(item(family, output), None)


def test_accuracy_by_family_counts_checkable_items_only():
    items = [item("arithmetic", "3"), item("arithmetic", "4"), item("spelling", "a-b"), item("alpaca", "x")]
    result = accuracy_by_family(items, ["3", "5", "a-b", "x"])
    assert result == {"arithmetic": 0.5, "spelling": 1.0, "alpaca": 1.0, "all": pytest.approx(2 / 3)}
    with pytest.raises(ValueError, match="one answer per item"):
        accuracy_by_family(items, ["3"])


@pytest.fixture(scope="module")
def tasks():
    return load_tasks()


def test_shipped_tasks_are_split_without_shared_prompts(tasks):
    key = lambda e: (e["instruction"].strip(), e["input"].strip())
    train = {key(e) for e in tasks["train"]}
    for split in ("val", "test"):
        assert not {key(e) for e in tasks[split]} & train, f"a {split} prompt is also a training prompt"
    for split, per_family in (("train", 1200), ("val", 25), ("test", 50)):
        for family in TASK_FAMILIES:
            want = 2 * per_family if split == "train" and family in ("arithmetic", "passage") else per_family
            assert sum(e["family"] == family for e in tasks[split]) == want, (split, family)
        assert sum(e["family"] == "alpaca" for e in tasks[split]) > 0, f"the Alpaca records are mixed into {split}"
    for e in tasks["train"] + tasks["val"] + tasks["test"]:
        assert set(e) == {"instruction", "input", "output", "family"}
        assert check_answer(e, e["output"]), f"the checker must accept the reference: {e}"


def test_test_words_never_occur_in_a_training_instruction(tasks):
    quoted = lambda part: {e["instruction"].split('"')[1] for e in part if e["family"] in ("spelling", "counting", "letters")}
    assert not quoted(tasks["test"]) & quoted(tasks["train"]), "a test word is asked about in training"


@pytest.fixture(scope="module")
def generator():
    spec = importlib.util.spec_from_file_location("make_instruction_tasks", ROOT / "scripts" / "make_instruction_tasks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generator_remakes_the_shipped_file_and_refuses_leaks(generator, tasks):
    remade = json.dumps(generator.make(), indent=0, ensure_ascii=False) + "\n"
    shipped = dataset_path("instruct-tasks.json").read_text(encoding="utf-8")
    assert hashlib.sha256(remade.encode()).hexdigest() == hashlib.sha256(shipped.encode()).hexdigest(), (
        "scripts/make_instruction_tasks.py no longer makes the shipped datasets/instruct-tasks.json")
    leaky = {"train": tasks["train"][:5], "val": [], "test": [tasks["train"][2]]}
    with pytest.raises(ValueError, match="also training prompts"):
        generator.check_disjoint(leaky)
    text = generator.pretraining_text({"train": tasks["train"][:50], "val": tasks["val"], "test": tasks["test"]})
    assert "### Instruction" not in text and "### Response" not in text, "the base model never sees the template"
    assert all(e["output"] not in text or len(e["output"]) < 6 for e in tasks["test"] if e["family"] == "spelling")
    passages = [e for e in tasks["train"] if e["family"] == "passage"]
    play = dataset_path("tinyshakespeare.txt").read_text(encoding="utf-8")
    speakers = set(re.findall(r"^([A-Z][A-Za-z ]{1,24}):$", play, flags=re.M))
    renamed = [e for e in passages if e["input"].split(":", 1)[0] not in speakers]
    assert 0.4 < len(renamed) / len(passages) < 0.6, "half the training passages have renamed speakers"
    assert all(e["output"] in e["input"] for e in passages), "a passage's answer is always in the passage"


@pytest.mark.parametrize("name", ["instruct-base.pt", "instruct-sft.pt"])
def test_shipped_models_load_weights_only(name):
    from buildgpt.checkpoint import load_model
    from buildgpt.instruct import end_of_text_id

    state = torch.load(dataset_path(name), map_location="cpu", weights_only=True)
    assert state["tokenizer"]["kind"] == "char" and "\x03" in state["tokenizer"]["vocab"]
    model, tokenizer = load_model(dataset_path(name))
    assert model.config.context_length >= 384 and tokenizer.decode([end_of_text_id(tokenizer)]) == "\x03"
    assert dataset_path(name).stat().st_size < 8_000_000, "a shipped model should be a few MB"


def test_shipped_fine_tuned_model_answers_held_out_instructions(tasks):
    from buildgpt.checkpoint import load_model
    from buildgpt.instruct import evaluate_responses

    torch.set_num_threads(1)
    model, tokenizer = load_model(dataset_path("instruct-sft.pt"))
    sample = [e for f in TASK_FAMILIES for e in [t for t in tasks["test"] if t["family"] == f][:5]]
    summary = evaluate_responses(model, tokenizer, sample, progress=False)
    results = json.loads(dataset_path("instruct-results.json").read_text(encoding="utf-8"))
    shipped = results["models"]["full fine-tuning (shipped)"]
    assert summary["ended"] >= 0.7, f"the fine-tuned model should stop; it ended {summary['ended']:.0%} of its answers"
    assert abs(summary["accuracy"] - shipped["accuracy"]) <= 0.2, (
        f"on 30 held-out instructions the shipped model got {summary['accuracy']:.0%}, far from the "
        f"benchmark's {shipped['accuracy']:.0%} on 300")
    base = results["models"]["base (no fine-tuning)"]
    assert shipped["accuracy"] > base["accuracy"] and shipped["ended"] > base["ended"] + 0.5, (
        "the benchmark should show the fine-tuned model answering and stopping more often than the base model")


def test_chat_answers_a_held_out_instruction_as_a_new_user_would(tasks):
    asked = [e for e in tasks["test"] if e["family"] == "counting"][:10]
    lines = [e["instruction"] + (" || " + e["input"] if e["input"] else "") for e in asked]
    result = subprocess.run([sys.executable, "-m", "buildgpt", "chat", "--ckpt", "datasets/instruct-sft.pt", "--threads", "1"],
                            input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    replies = result.stdout.splitlines()
    assert len(replies) == len(lines), result.stdout
    right = sum(check_answer(e, r) for e, r in zip(asked, replies))
    assert right >= 8, f"chat answered only {right} of {len(lines)} held-out counting instructions right: {replies}"
    assert not any(r.endswith("[...]") for r in replies), f"every answer should end with end-of-text: {replies}"
