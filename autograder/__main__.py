"""Command line of the autograder: release, check, grade, merge, assemble, compare."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .errors import UserError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("release", help="regenerate book/, the buildgpt exports and the self-check's tests from solutions/")
    p.add_argument("chapters", nargs="*", help="chapters to release, e.g. 00-pytorch or 00 (default: all)")
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 and name every stale generated file")
    p.add_argument("--force", action="store_true", help="execute the solutions again even if they did not change")

    p = commands.add_parser("check", help="self-check a notebook: run it with the hidden tests and print a score per exercise")
    p.add_argument("notebook", type=Path)
    p.add_argument("--chapter", help="the chapter, when the file name and metadata do not say it (e.g. 00-pytorch)")
    p.add_argument("--timeout", type=int, default=600, help="seconds a cell may run (default 600)")

    p = commands.add_parser("grade", help="grade a folder of submissions (one sub-folder per student) with nbgrader")
    p.add_argument("submissions", type=Path)
    p.add_argument("--out", type=Path, default=Path("grading"), help="where grades.csv, feedback/ and the nbgrader course go (default ./grading)")
    p.add_argument("--jobs", type=int, default=None, help="notebooks graded at once (default: one per CPU core)")
    p.add_argument("--force", action="store_true", help="run every notebook again, even those unchanged since the last run")
    p.add_argument("--timeout", type=float, default=600, help="seconds a cell may run (default 600)")
    p.add_argument("--budget", type=float, default=1800, help="seconds a whole notebook may run (default 1800)")
    p.add_argument("--memory", type=int, default=4096, help="MB of memory a notebook's kernel may use (default 4096)")
    p.add_argument("--max-procs", type=int, default=32, help="processes a notebook may start (default 32)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    p.add_argument("--private-tests", type=Path, metavar="DIR",
                   help="your own extra tests, one NN-slug.py per chapter, graded and never shown (see the instructor guide)")
    p.add_argument("--shard", metavar="K/N", help="grade only part K of N of the class (by student name), e.g. on N machines; then `merge`")

    p = commands.add_parser("merge", help="combine the outputs of `grade --shard K/N` (K = 1..N) into one grades.csv, report and feedback")
    p.add_argument("shards", type=Path, nargs="+", help="every shard's --out folder")
    p.add_argument("--out", type=Path, required=True, help="where the combined grades.csv, report.txt and feedback/ go")

    p = commands.add_parser("assemble", help="turn your completed notebooks into your own GPT package (mygpt/) for the commands' --impl")
    p.add_argument("notebooks", type=Path, nargs="+", help="chapter notebooks (.ipynb), or folders of them")
    p.add_argument("--out", type=Path, required=True, help="the package folder to write, e.g. mygpt (its name is the import name)")
    p.add_argument("--fill-missing", action="store_true", help="take the course's reference answer for every unsolved or failing exercise")
    p.add_argument("--timeout", type=float, default=600, help="seconds the tests of one chapter may run (default 600)")

    p = commands.add_parser("compare", help="compare your run's validation loss with the course's reference code trained the same way")
    p.add_argument("run", type=Path, help="a run folder from `python -m buildgpt train --impl mygpt ...`")
    p.add_argument("--reference", type=Path, help="a reference run to compare with (default: train one now, same settings)")
    p.add_argument("--tolerance", type=float, default=0.02, help="largest difference in validation loss that still matches (default 0.02)")
    p.add_argument("--threads", type=int, help="CPU threads for the reference run (the same as your run's gives bit-equal losses)")

    args = parser.parse_args(argv)
    try:
        if args.command == "release":
            from .chapters import find_root
            from .release import release

            return release(find_root(), args.chapters, check=args.check, force=args.force)
        if args.command == "check":
            from .selfcheck import check_notebook

            report = check_notebook(args.notebook, args.chapter, timeout=args.timeout)
            print(report.table())
            return 0 if report.total == report.max_total else 1
        if args.command == "assemble":
            from .assemble import assemble

            return assemble(args.notebooks, args.out, fill_missing=args.fill_missing, timeout=args.timeout)
        if args.command == "compare":
            from .compare import compare

            return compare(args.run, args.reference, tolerance=args.tolerance, threads=args.threads)
        if args.command == "grade":
            from .grade import grade
            from .sandbox import Limits

            limits = Limits(cell_timeout=args.timeout, budget=args.budget, memory_mb=args.memory, max_procs=args.max_procs)
            from .shards import parse_shard

            shard = parse_shard(args.shard) if args.shard else None
            return grade(args.submissions, args.out, jobs=args.jobs, force=args.force, limits=limits,
                         progress=not args.no_progress, private=args.private_tests, shard=shard)
        if args.command == "merge":
            from .shards import merge

            return merge(args.shards, args.out)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        print(f"error: this Python lacks the course's packages ({exc.name} is missing); run `make setup`, "
              "then use .venv/bin/python (or `. .venv/bin/activate` first).", file=sys.stderr)
        return 2
    except PermissionError as exc:  # a folder of another user's: --out, the submissions, a venv
        import pwd

        try:
            user = pwd.getpwuid(os.geteuid()).pw_name
        except KeyError:
            user = f"uid {os.geteuid()}"
        print(f"error: permission denied: {exc.filename or exc} ({user} runs this command); choose folders "
              f"{user} may read and write, or change their permissions.", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; nothing already written was lost.", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
