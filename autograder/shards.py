"""Grading a class in parts: `grade --shard K/N` on N machines, then `merge` of their outputs.

A student belongs to shard K of N by a hash of their folder name, so the split is the same on
every machine and every run, whatever order the folders are listed in. Each shard writes, last of
all, OUT/shard.json: its place (K of N), the release of the course it graded against, its
students and the exercises in book order. `merge` refuses shards that do not make exactly one
class: a missing or repeated shard, a student in two shards, another release of the course.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path

from .errors import UserError

RECORD = "shard.json"


def parse_shard(text: str) -> tuple[int, int]:
    """'2/4' -> (2, 4); anything else is one sentence."""
    try:
        k, n = (int(part) for part in text.split("/"))
    except ValueError:
        k = n = 0
    if not (n >= 1 and 1 <= k <= n):
        raise UserError(f"--shard {text!r} is not K/N with 1 <= K <= N; write e.g. --shard 1/4 for the first of four parts.")
    return k, n


def shard_of(student: str, n: int) -> int:
    """The shard (1..n) that grades this student: stable across machines, runs and listing order."""
    return int(hashlib.sha256(student.encode("utf-8", "surrogatepass")).hexdigest(), 16) % n + 1


def release_digest(sources: dict) -> dict[str, str]:
    """What a chapter's grades depend on, per chapter: its source (private tests included) and the engine."""
    from .grade import ENGINE_VERSION

    return {slug: hashlib.sha256(json.dumps([nb.metadata.get("buildgpt", {}), ENGINE_VERSION], sort_keys=True).encode()).hexdigest()
            for slug, nb in sorted(sources.items())}


def write_shard_record(out: Path, shard: tuple[int, int], release: dict[str, str], students: list[str], order: list[str]) -> None:
    record = {"shard": shard[0], "of": shard[1], "release": release, "students": students, "order": order}
    (out / RECORD).write_text(json.dumps(record, ensure_ascii=False, indent=1), encoding="utf-8")


def merge(shard_dirs: list[Path], out: Path, log=print) -> int:
    """One grades.csv, report and feedback tree from the outputs of every shard of one class."""
    from .grade import render_report

    records = []
    for d in shard_dirs:
        path = d / RECORD
        if not path.is_file():
            raise UserError(f"{d} holds no {RECORD}: it is not the output of `grade --shard K/N`, or that shard did not "
                            "finish; run its grade command again (it goes on where it stopped).")
        try:
            records.append((d, json.loads(path.read_text(encoding="utf-8"))))
        except ValueError:
            raise UserError(f"{path} is damaged; run that shard's grade command again.") from None
    sizes = {r["of"] for _, r in records}
    if len(sizes) != 1:
        raise UserError(f"the shards come from different splits ({', '.join(f'of {n}' for n in sorted(sizes))}); "
                        "merge the outputs of one `--shard K/N` run for K = 1..N.")
    n = sizes.pop()
    seen: dict[int, Path] = {}
    for d, r in records:
        if r["shard"] in seen:
            raise UserError(f"shard {r['shard']}/{n} was given twice ({seen[r['shard']]} and {d}); give each shard once.")
        seen[r["shard"]] = d
    missing = sorted(set(range(1, n + 1)) - set(seen))
    if missing:
        raise UserError(f"shard(s) {', '.join(f'{k}/{n}' for k in missing)} are missing; grade them with "
                        f"--shard K/{n} and give every shard's folder to merge.")
    owner: dict[str, Path] = {}
    for d, r in records:
        for student in r["students"]:
            if student in owner:
                raise UserError(f"student {student!r} appears in two shards ({owner[student]} and {d}); "
                                "grade each shard from the same submissions folder, then merge.")
            owner[student] = d

    order = records[0][1]["order"]
    rows, columns = [], set()
    for d, _ in records:
        with (d / "grades.csv").open(encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            columns |= set(reader.fieldnames or [])
            rows += list(reader)
    for chapter in sorted({r["chapter"] for r in rows if r.get("chapter")}):
        if len({json.dumps(r["release"].get(chapter)) for _, r in records}) != 1:
            raise UserError(f"the shards were graded against different releases of {chapter}; grade them all again "
                            "with the same course (the same commit), then merge.")
    exercises = [e for e in order if e in columns] + sorted(c for c in columns - set(order) if c.startswith("ex-"))
    fields = ["student", "chapter", "status", *exercises, "total", "max"]
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "grades.csv.tmp"
    with tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for row in sorted(rows, key=lambda r: (r["student"], r["chapter"])):
            writer.writerow({k: row.get(k, "") for k in fields})
    tmp.replace(out / "grades.csv")

    report = {"problems": [], "notebooks": []}
    for d, _ in records:
        data = json.loads((d / "report.json").read_text(encoding="utf-8"))
        report["problems"] += data["problems"]
        report["notebooks"] += data["notebooks"]
    render_report(out, report)
    for d, _ in records:
        if (d / "feedback").is_dir():
            shutil.copytree(d / "feedback", out / "feedback", dirs_exist_ok=True)
    log(f"merged {n} shard(s): {len(owner)} student(s), {len(rows)} row(s); grades: {out / 'grades.csv'}; "
        f"feedback: {out / 'feedback'}; report: {out / 'report.txt'}")
    return 1 if report["problems"] else 0
