"""The landing page (book/intro.md): its links follow the repository named in _config.yml, it lists
every chapter of the table of contents, and the sample it shows is what its command prints."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys

import yaml

from autograder.chapters import colab_url, course_config
from notebooks import CHAPTERS, ROOT

INTRO = ROOT / "book" / "intro.md"


def test_links_follow_the_repository_in_config():
    text = INTRO.read_text(encoding="utf-8")
    config = course_config(ROOT)
    chapter0 = colab_url(config, CHAPTERS[0])
    assert text.count(chapter0) >= 2, f"the landing page should link {chapter0} (button and 'Three ways in')"
    assert f"git clone {config['url']}" in text, "the landing page should show how to clone the repository"
    links = set(re.findall(r"https://(?:colab\.research\.google\.com|github\.com)/[^\s)]+", text))
    stale = {u for u in links if u != chapter0 and not u.startswith(config["url"])}
    assert not stale, f"links that do not follow repository.url in _config.yml: {stale}"


def test_every_chapter_of_the_toc_is_on_the_landing_page():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    files = [c["file"] for part in toc["parts"] for c in part["chapters"]]
    numbers = [int(m.group(1)) for f in files if (m := re.match(r"book/(\d\d)-", f))]
    rows = {int(n) for n in re.findall(r"^\| (\d+)\. ", INTRO.read_text(encoding="utf-8"), flags=re.M)}
    missing = [n for n in numbers if n not in rows]
    assert not missing, f"book/intro.md's table of chapters has no row for chapter(s) {missing} of _toc.yml"
    assert "are published; the others follow" not in INTRO.read_text(encoding="utf-8")


def test_title_is_not_the_site_title_again():
    title = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))["title"]
    first = INTRO.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# ") and first[2:].strip() != title, (
        "the site title already heads every page; the landing page's own title should say something else")


def test_samples_are_what_their_commands_print():
    """Each console block of the page shows a command and its output: running that exact command in the
    repository's folder prints exactly that output (the samples are real, and stay so). A `chat` block
    shows a terminal session: its "> " lines are what was typed, the other lines what chat printed."""
    text = INTRO.read_text(encoding="utf-8")
    blocks = re.findall(r"```console\n\$ (.+?)\n(.*?)\n```", text, flags=re.S)
    assert blocks, "the landing page should show its samples as ```console blocks: '$ command' then the output"
    assert any(" chat " in command for command, _ in blocks), "the landing page should show the fine-tuned model in a chat"
    for command, shown in blocks:
        args = shlex.split(command)
        assert args[:3] == ["python", "-m", "buildgpt"], command
        typed = ""
        if args[3] == "chat":
            lines = shown.splitlines()
            typed = "".join(line[2:] + "\n" for line in lines if line.startswith("> "))
            assert lines[0] in (ROOT / "buildgpt" / "commands" / "chat.py").read_text(encoding="utf-8"), (
                "a chat sample starts with the greeting chat prints in a terminal")
            shown = "\n".join(line for line in lines[1:] if not line.startswith("> "))
            assert typed and "--temperature" not in args, "a chat sample should type instructions and answer greedily"
        else:
            assert "--seed" in args, command
        run = subprocess.run([sys.executable, *args[1:]], cwd=ROOT, input=typed, capture_output=True, text=True,
                             timeout=300)
        assert run.returncode == 0, run.stderr[-2000:]
        printed = "\n".join(line.rstrip() for line in run.stdout.rstrip("\n").splitlines())
        assert printed == "\n".join(line.rstrip() for line in shown.splitlines()), (
            f"book/intro.md shows a sample its command no longer prints; run it and paste the output:\n{command}\n"
            f"---\n{printed}")


def test_built_landing_page_has_the_colab_button(site):
    page = (site / "book" / "intro.html").read_text(encoding="utf-8")
    chapter0 = colab_url(course_config(ROOT), CHAPTERS[0])
    assert re.search(rf'<a [^>]*href="{re.escape(chapter0)}"[^>]*>.*?Open chapter 0 in Colab', page, flags=re.S)
    assert course_config(ROOT)["url"] in page
