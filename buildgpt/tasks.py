"""Checkable instruction tasks (chapter 7): the task families, the data file, and the exact checker.

datasets/instruct-tasks.json holds {"train": [...], "val": [...], "test": [...], "meta": {...}}; each
item is {"instruction", "input", "output", "family"}. The families whose answers a program can check
exactly are TASK_FAMILIES; the records of datasets/instruction-data.json (Alpaca-style, open-ended
answers) are mixed in with family "alpaca". scripts/make_instruction_tasks.py makes the file.

    from buildgpt.tasks import check_answer, load_tasks
    tasks = load_tasks()
    check_answer(tasks["test"][0], "c-a-s-t-l-e")  # -> True or False
"""

from __future__ import annotations

import json
import re
from pathlib import Path

TASKS_FILE = "instruct-tasks.json"
TASK_FAMILIES = ("arithmetic", "spelling", "letters", "counting", "reformat", "passage")
OPEN_FAMILY = "alpaca"  # open-ended answers: check_answer can only compare them with the reference exactly

FAMILY_DESCRIPTIONS = {
    "arithmetic": "add a one-digit number to a two-digit number",
    "spelling": "spell a word letter by letter, with hyphens",
    "letters": "the first or the last letter of a word",
    "counting": "how many letters a word has",
    "reformat": "rewrite a short phrase in capital letters or in lowercase",
    "passage": "who speaks first, second or last in a Shakespeare passage given as the input",
}


def _clean(answer: str) -> str:
    """The answer without surrounding white space and one trailing full stop."""
    answer = answer.strip()
    return answer[:-1].rstrip() if answer.endswith(".") and not answer.endswith("..") else answer


def check_answer(item: dict, answer: str) -> bool:
    """True when answer is right for item (a dict with "instruction", "input", "output", "family").

    The check is exact, after removing surrounding white space and one trailing full stop:
      arithmetic, counting: the answer is one integer equal to the reference ("42", not "forty-two");
      spelling, letters, reformat: the answer equals the reference character for character
        (case matters: "CASTLE" is not "castle");
      passage: the speaker's name as the reference writes it, ignoring case;
      anything else (the open "alpaca" family): identical to the reference after collapsing white space.
    Example: check_answer({"family": "arithmetic", "output": "42", ...}, " 42.") -> True
    """
    if not isinstance(answer, str):
        return False
    family, reference = item.get("family"), str(item.get("output", ""))
    got, want = _clean(answer), _clean(reference)
    if family in ("arithmetic", "counting"):
        return re.fullmatch(r"-?\d+", got) is not None and int(got) == int(want)
    if family in ("spelling", "letters", "reformat"):
        return got == want
    if family == "passage":
        return got.casefold() == want.casefold()
    return " ".join(got.split()) == " ".join(want.split())


def load_tasks(path: str | Path | None = None) -> dict:
    """The task file as {"train", "val", "test", "meta"} (default: the shipped datasets/instruct-tasks.json)."""
    if path is None:
        from buildgpt.resources import dataset_path

        path = dataset_path(TASKS_FILE)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"there is no task file at {path.name}; make one with "
                                "python scripts/make_instruction_tasks.py")
    try:
        tasks = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError(f"{path.name} is not a JSON file; make it again with python scripts/make_instruction_tasks.py") from None
    if not isinstance(tasks, dict) or not all(isinstance(tasks.get(k), list) for k in ("train", "val", "test")):
        raise ValueError(f"{path.name} should hold a JSON object with the lists train, val and test")
    return tasks


def accuracy_by_family(items: list[dict], answers: list[str]) -> dict:
    """{family: fraction of items whose answer check_answer accepts} plus "all" over TASK_FAMILIES items."""
    if len(items) != len(answers):
        raise ValueError(f"{len(items)} items but {len(answers)} answers; give one answer per item")
    right: dict[str, list[bool]] = {}
    for item, answer in zip(items, answers):
        right.setdefault(item.get("family", OPEN_FAMILY), []).append(check_answer(item, answer))
    result = {family: sum(v) / len(v) for family, v in right.items()}
    checkable = [ok for family, v in right.items() if family in TASK_FAMILIES for ok in v]
    result["all"] = sum(checkable) / len(checkable) if checkable else 0.0
    return result
