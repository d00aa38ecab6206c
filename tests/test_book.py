"""The website: `jupyter-book build . -W` succeeds, every page is there, chapter pages launch
Colab, and no solution or hidden test appears anywhere in the built site."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest

from notebooks import CHAPTERS, secret_lines


def page_text(path: Path) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", path.read_text(encoding="utf-8")))


def test_every_page_is_built(site):
    for page in ["book/intro", "book/student-guide", "book/instructor-guide", *[f"book/{c.slug}" for c in CHAPTERS]]:
        assert (site / f"{page}.html").is_file(), page


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda c: c.slug)
def test_chapter_page_launches_colab_and_shows_outputs(site, chapter):
    page = (site / "book" / f"{chapter.slug}.html").read_text(encoding="utf-8")
    assert "colab.research.google.com/github/" in page and f"book/{chapter.slug}.ipynb" in page
    assert "cell_output" in page, "the chapter page shows the outputs of the executed solution"
    assert "<img" in page, "the chapter's figures are on the page"


def test_site_shows_no_solution_and_no_hidden_test(site):
    secret = [line for c in CHAPTERS for line in secret_lines(c)]
    assert secret
    for page in site.rglob("*.html"):
        text = page_text(page)
        leaked = [line for line in secret if line in text]
        assert not leaked, f"{page.relative_to(site)} shows {leaked[:2]}"
    sources = [p for p in site.rglob("*") if p.suffix in {".md", ".ipynb", ".txt"}]
    for path in sources:
        text = path.read_text(encoding="utf-8", errors="replace")
        leaked = [line for line in secret if line in text]
        assert not leaked, f"{path.relative_to(site)} shows {leaked[:2]}"


def test_internal_links_resolve(site):
    """Every relative link and resource of every page points at a file the site has."""
    missing = []
    for page in site.rglob("*.html"):
        if "_static" in page.parts:
            continue  # theme templates, not pages
        for target in re.findall(r'(?:href|src)="([^"#?]+)', page.read_text(encoding="utf-8")):
            if re.match(r"^[a-z]+:", target) or target.startswith("//"):
                continue  # external: Colab, the repository, mailto
            if not (page.parent / target).resolve().exists():
                missing.append(f"{page.relative_to(site)} -> {target}")
    assert not missing, f"broken internal links: {missing[:10]}"
