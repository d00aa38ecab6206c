"""Evaluate a checkpoint: perplexity and bits per byte of a text, or accuracy on a benchmark (chapter 10).

Examples:
  python -m buildgpt eval --ckpt datasets/shakespeare-char.pt --task text --data my_text.txt
  python -m buildgpt eval --ckpt runs/shakespeare --task next-line                 # the shipped benchmark
  python -m buildgpt eval --ckpt runs/instruct --task instructions --limit 100      # chapter 7's checker

Tasks:
  text          loss per token, perplexity and bits per byte of --data (a UTF-8 text file)
  next-line     how does a line end? 4 endings each: accuracy with plain and length-normalised scores, on
                datasets/next-line.jsonl or --data (a .jsonl of {"context", "options", "answer"})
  instructions  greedy answers of an instruction-tuned checkpoint to the test split of chapter 7's
                checkable tasks (datasets/instruct-tasks.json or --data), checked exactly
"""

from __future__ import annotations

import argparse
from pathlib import Path

from buildgpt.commands import CommandError
from buildgpt.threads import THREADS_HELP, set_threads

TASKS = ("text", "next-line", "instructions")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", type=Path, required=True, help="a checkpoint file or a run folder (runs/NAME)")
    parser.add_argument("--task", required=True, help=f"one of {', '.join(TASKS)}")
    parser.add_argument("--data", type=Path, help="the text file (task text), or another benchmark / task file")
    parser.add_argument("--limit", type=int, help="only the first N items (next-line, instructions)")
    parser.add_argument("--threads", type=int, help=THREADS_HELP)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    from buildgpt.impl import add_impl_argument

    add_impl_argument(parser)


def run(args: argparse.Namespace) -> int:
    if args.task not in TASKS:
        raise CommandError(f"unknown task {args.task!r}; choose one of {', '.join(TASKS)}")
    if args.limit is not None and args.limit < 1:
        raise CommandError(f"--limit must be at least 1; got {args.limit}")
    set_threads(args.threads)
    from buildgpt.impl import load_impl

    impl = load_impl(args)  # buildgpt itself, or the student's package given with --impl
    if not args.ckpt.exists():
        raise CommandError(f"{args.ckpt} does not exist; pass a checkpoint (.pt) or a run folder made by the train command")
    model, tokenizer = impl.checkpoint.load_model(args.ckpt)
    evaluate = impl.evaluate
    name = args.ckpt.name
    if args.task == "text":
        if args.data is None:
            raise CommandError("--task text needs --data, a UTF-8 text file to measure")
        text = _read_text(args.data)
        ids = tokenizer.encode(text)
        if len(ids) < 2:
            raise CommandError(f"{args.data} is too short to measure; it needs at least two tokens")
        nll = -evaluate.token_logprobs(model, ids)
        m = evaluate.lm_metrics(nll, len(text.encode("utf-8")))
        print(f"{name} on {args.data.name}: {len(nll):,} tokens, {len(text.encode('utf-8')):,} bytes; loss "
              f"{m['loss']:.4f} nats/token, perplexity {m['perplexity']:.2f}, {m['bits_per_byte']:.4f} bits per byte")
        return 0
    if args.task == "next-line":
        if args.data is not None and not args.data.is_file():
            raise CommandError(f"{args.data} does not exist; pass a .jsonl benchmark file, or leave --data out for the course's")
        try:
            items = evaluate.load_choice_benchmark(args.data)
        except UnicodeDecodeError:
            raise CommandError(f"{args.data} is not UTF-8 text; pass a .jsonl benchmark file") from None
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        items = items[:args.limit] if args.limit else items
        if not items:
            raise CommandError(f"{args.data} holds no items")
        r = evaluate.evaluate_choices(model, tokenizer.encode, items, progress=not args.no_progress)
        chance = sum(1 / len(it["options"]) for it in items) / len(items)
        print(f"{name} on {(args.data.name if args.data else 'next-line.jsonl')}: {r['items']} items (chance {chance:.0%}); "
              f"accuracy {r['plain']:.1%} plain, {r['per_char']:.1%} length-normalised "
              f"(plain picked the shortest option in {r['chose_shortest_plain']:.0%})")
        return 0
    return _instructions(args, model, tokenizer, name)


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise CommandError(f"{path} does not exist; pass a UTF-8 text file")
    raw = path.read_bytes()
    if not raw.strip():
        raise CommandError(f"{path} is empty; pass a text file with something in it")
    if b"\0" in raw[:8192]:
        raise CommandError(f"{path} is a binary file, not text; pass a UTF-8 text file")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise CommandError(f"{path} is not UTF-8 text; convert it (e.g. iconv -t utf-8) first") from None


def _instructions(args, model, tokenizer, name: str) -> int:
    try:
        from buildgpt.instruct import generate_response
        from buildgpt.tasks import TASK_FAMILIES, accuracy_by_family, load_tasks
    except ImportError:
        raise CommandError("this version of the library has no instruction checker (chapter 7's buildgpt.tasks)") from None
    try:
        tasks = load_tasks(args.data)
    except (FileNotFoundError, ValueError) as exc:
        raise CommandError(str(exc)) from None
    items = [e for e in tasks["test"] if e.get("family") in TASK_FAMILIES]
    items = items[:args.limit] if args.limit else items
    iterator = items
    if not args.no_progress:
        from tqdm.auto import tqdm

        iterator = tqdm(items, unit="answer")
    try:
        answers = [generate_response(model, tokenizer, e, max_new_tokens=48)[0] for e in iterator]
    except ValueError as exc:  # e.g. a checkpoint whose tokenizer has no end-of-text token
        raise CommandError(f"{name} cannot answer instructions ({exc}); use a checkpoint made by the finetune command") from None
    acc = accuracy_by_family(items, answers)
    print(f"{name} on {len(items)} checkable test instructions: correct {acc['all']:.1%}")
    for family in TASK_FAMILIES:
        if family in acc:
            print(f"  {family:<11} {acc[family]:6.1%}")
    return 0
