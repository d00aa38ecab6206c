"""The course's commands: python -m buildgpt train | generate | finetune | chat.

Each command lives in buildgpt/commands/<name>.py with add_arguments(parser) and run(args) -> int.
A mistake a person can make (a bad path, a bad option) raises ValueError, FileNotFoundError or
buildgpt.commands.CommandError with one sentence; it is printed as `error: ...`, never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = {
    "train": "pretrain a GPT on a text file (chapter 5)",
    "generate": "continue a prompt with a trained checkpoint (chapter 5)",
    "finetune": "instruction-tune a checkpoint, fully or with LoRA (chapter 7)",
    "chat": "talk to an instruction-tuned checkpoint (chapter 7)",
    "curate": "deduplicate and quality-filter a text corpus (chapter 10)",
    "eval": "perplexity, bits per byte and benchmark accuracy of a checkpoint (chapter 10)",
    "dpo": "align an instruction-tuned checkpoint with preference pairs by DPO (chapter 8)",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m buildgpt", description="Build a Large Language Model From Scratch: the course's commands.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    modules = {}
    for name, help_text in COMMANDS.items():
        try:
            modules[name] = importlib.import_module(f"buildgpt.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"buildgpt.commands.{name}":
                raise
            continue  # a command whose chapter is not written yet
        p = sub.add_parser(name, help=help_text, description=(modules[name].__doc__ or help_text).strip(),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        modules[name].add_arguments(p)
    args = parser.parse_args(argv)
    from buildgpt.commands import CommandError

    try:
        return int(modules[args.command].run(args) or 0)
    except (CommandError, ValueError, FileNotFoundError, NotADirectoryError, PermissionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
