"""The commands of `python -m buildgpt`, one module each (see buildgpt/__main__.py)."""

from __future__ import annotations

from pathlib import Path


class CommandError(Exception):
    """A mistake the user can fix; its message is one sentence that says what to do."""


def run_state(out: Path, resume: bool) -> Path:
    """The state.pt of a run folder that `finetune` or `dpo` writes, after checking that --resume
    and what the folder holds agree: nothing to resume, or a run that is already there."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise CommandError(f"--out {out} is a file; give a folder for the run")
    state_path = out / "state.pt"
    if resume and not state_path.is_file():
        raise CommandError(f"there is nothing to resume in {out} (no state.pt); run once without --resume")
    if not resume and state_path.is_file():
        raise CommandError(f"{out} already holds a run; add --resume to continue it or choose another --out")
    return state_path
