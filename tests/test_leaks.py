"""No output names a folder of the machine that built it: not in a student notebook (outputs and saved
widget state), not on any page of the website, not in a message of the library. A reader's page
that says /tmp/chapter5-x8k2/... or /root/.cache/... shows where the release ran, not something
the reader can use."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from notebooks import CHAPTERS, ROOT


def machine_paths() -> list[str]:
    """What a build machine's path looks like: its scratch and home folders, this checkout, $HOME."""
    fixed = ["/tmp/", "/root/", "/home/", "/work/", "/var/folders/", "/private/var/", "C:\\Users\\", "C:\\\\Users"]
    here = [str(ROOT), str(Path.home())]
    return fixed + [p for p in here if len(p) > 1]


def leaks_in(text: str) -> list[str]:
    """Each machine path in text, with a little context."""
    found = []
    for needle in machine_paths():
        for m in re.finditer(re.escape(needle), text):
            found.append(text[max(0, m.start() - 60):m.end() + 40].replace("\n", " | "))
    return found


def test_leaks_in_finds_what_it_should():
    assert leaks_in("checkpoint /tmp/chapter5-4ivgo6ur/cli-run/ckpt.pt")
    assert leaks_in("not on this machine (/root/.cache/buildgpt/gpt2/model.safetensors)")
    assert leaks_in(f"wrote {ROOT / 'runs' / 'x'}")
    assert not leaks_in("checkpoint runs/demo/ckpt.pt; weights in ~/.cache/buildgpt/gpt2")


def notebook_outputs(nb: dict) -> list[tuple[str, str]]:
    """(where, text) of every output of every code cell, and of the saved widget state."""
    found = []
    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []) or []:
            found.append((f"cell {cell.get('id')}", json.dumps(output, ensure_ascii=False)))
    if "widgets" in nb.get("metadata", {}):
        found.append(("saved widget state", json.dumps(nb["metadata"]["widgets"], ensure_ascii=False)))
    return found


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda c: c.slug)
def test_student_notebook_outputs_name_no_machine_path(chapter):
    if not chapter.student_notebook.exists():
        pytest.skip(f"book/{chapter.slug}.ipynb is not released yet (tests/test_release.py says so)")
    nb = json.loads(chapter.student_notebook.read_text(encoding="utf-8"))
    leaks = [f"{where}: ...{leak}..." for where, text in notebook_outputs(nb) for leak in leaks_in(text)]
    assert not leaks, (f"book/{chapter.slug}.ipynb shows paths of the machine that built it; print them "
                       f"relative to a named folder (runs/demo/ckpt.pt) or with ~ for the home folder:\n"
                       + "\n".join(leaks[:8]))


def test_site_pages_name_no_machine_path(site):
    leaks = []
    for page in sorted(site.rglob("*.html")):
        if "_static" in page.parts:
            continue  # the theme's templates
        text = page.read_text(encoding="utf-8")
        leaks += [f"{page.relative_to(site)}: ...{leak}..." for leak in leaks_in(text)]
    assert not leaks, "pages of the website show paths of the machine that built them:\n" + "\n".join(leaks[:10])


def test_weights_messages_write_the_home_folder_as_tilde(tmp_path, monkeypatch):
    from buildgpt.pretrained import gpt2_path, load_gpt2, shown_path

    home = tmp_path / "someone"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("BUILDGPT_CACHE", raising=False)
    assert shown_path(gpt2_path("gpt2")) == "~/.cache/buildgpt/gpt2/model.safetensors"
    assert shown_path("runs/demo/ckpt.pt") == "runs/demo/ckpt.pt"
    with pytest.raises(FileNotFoundError) as err:
        load_gpt2("gpt2")
    message = str(err.value)
    assert "~/.cache/buildgpt/gpt2/model.safetensors" in message and str(home) not in message
