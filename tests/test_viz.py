"""buildgpt.viz as a reader meets it: the tokenizer explorer (chapter 1), the attention explorer and
show_weights (chapter 3). The explorers are also saved as static HTML and opened in headless Chromium
at desktop and phone sizes, the way the website shows them."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from pathlib import Path

import ipywidgets as widgets
import pytest
import torch

from notebooks import ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def tokenizers():
    from buildgpt.resources import gpt2_encoding
    from buildgpt.tokenizer import BPETokenizer, CharTokenizer

    bpe = BPETokenizer.from_gpt2()
    return {"characters": CharTokenizer("abcdefghijklmnopqrstuvwxyz <>|.,"),
            "BPE": {512: bpe.truncated(512), 1024: bpe.truncated(1024), 4096: bpe.truncated(4096)},
            "GPT-2": gpt2_encoding()}


def _explorer(tokenizers, live_text="The end.<|endoftext|>Once"):
    from buildgpt.viz import tokenizer_explorer

    return tokenizer_explorer(tokenizers, {"English": "The cat sat on the mat.", "code": "x = 1\n"},
                              live_text=live_text)


def _parts(explorer):
    """(example selector, size selector, example stack) of a tokenizer explorer."""
    toggles = [c for c in explorer.children if isinstance(c, widgets.ToggleButtons)]
    return toggles[0], toggles[1], explorer.children[-1]


def test_typed_special_token_is_ordinary_text(tokenizers):
    """Section 1.8: text a person typed never becomes a special token; `<|endoftext|>` is 13 characters."""
    from buildgpt.viz import token_pieces

    gpt2 = tokenizers["GPT-2"]
    for tok in (gpt2, tokenizers["BPE"][1024]):
        pieces = token_pieces(tok, "The end.<|endoftext|>Once")
        assert "".join(p for _, p, _ in pieces) == "The end.<|endoftext|>Once"
        assert all(p != "<|endoftext|>" for _, p, _ in pieces), "the typed marker became the special token"
    assert 50256 not in [i for i, _, _ in token_pieces(gpt2, "<|endoftext|>")]
    live = _parts(_explorer(tokenizers))[2].children[-1]
    assert ">50256<" not in str([v.value for v in live.children[-1].children])


def test_your_text_label_follows_the_vocabulary_size(tokenizers):
    example_selector, size_selector, stack = _parts(_explorer(tokenizers))
    live_views = stack.children[-1].children[-1]
    assert isinstance(live_views, widgets.Stack) and len(live_views.children) == 3
    for view, size in zip(live_views.children, ("512", "1,024", "4,096")):
        assert f"BPE (vocabulary {size})" in view.value
        assert sum(f"(vocabulary {s})" in view.value for s in ("512", "1,024", "4,096")) == 1
    # with a kernel, typing updates the view of every size
    box = next(c for c in stack.children[-1].children if isinstance(c, widgets.Textarea))
    box.value = "hello there"
    assert all("hello" in v.value or "hel" in v.value for v in live_views.children)
    assert "(vocabulary 4,096)" in live_views.children[2].value


def test_lone_surrogate_gets_a_sentence_not_a_traceback(tokenizers):
    from buildgpt.viz import without_lone_surrogates

    text, note = without_lone_surrogates("a\ud83db")
    assert text == "a\ufffdb" and "lone surrogate" in note
    assert without_lone_surrogates("plain é \U0001F916") == ("plain é \U0001F916", "")
    explorer = _explorer(tokenizers, live_text="pasted \ud83d half an emoji")  # no UnicodeEncodeError
    stack = _parts(explorer)[2]
    live_views = stack.children[-1].children[-1]
    assert "lone surrogate" in live_views.children[0].value
    box = next(c for c in stack.children[-1].children if isinstance(c, widgets.Textarea))
    box.value = "x\udc00"
    assert all("lone surrogate" in v.value for v in live_views.children)


def test_option_labels_show_line_breaks_not_backslashes():
    from buildgpt.viz import option_label

    assert option_label("ROMEO:\nI will") == "ROMEO: \u21b5 I will"
    assert "\\" not in option_label("a\tb\r\nc") and "\n" not in option_label("a\tb\r\nc")
    long = option_label("x" * 200, width=40)
    assert len(long) == 40 and long.endswith("\u2026")


@pytest.fixture(scope="module")
def explorer_model():
    from buildgpt.viz import load_explorer_model

    return load_explorer_model()


def test_attention_dropdown_and_narrow_screen_hint(explorer_model):
    from buildgpt.viz import attention_explorer, attention_heatmap_html

    model, encode, decode = explorer_model
    w = attention_explorer(model, encode, decode, ["KING RICHARD:\nA horse!"], live=False)
    dropdown = next(c.children[1] for c in w.children if isinstance(c, widgets.HBox)
                    and isinstance(c.children[1], widgets.Dropdown))
    assert all("\\n" not in label for label, _ in dropdown.options), dropdown.options
    html_40 = attention_heatmap_html(torch.full((40, 40), 0.5), list("x" * 40), "t")
    assert 'class="bgt-att-scroll"' in html_40 and "bgt-att-hint h650" in html_40  # 41 cells of 14 px + margin
    html_5 = attention_heatmap_html(torch.full((5, 5), 0.5), list("x" * 5), "t")
    assert "bgt-att-hint h300" in html_5


def _contrast(a, b) -> float:
    def lum(rgb):
        lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb[:3]]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]
    hi, lo = sorted((lum(a), lum(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


@pytest.mark.parametrize("table", [
    torch.tensor([[0.5, 0.61, 0.7], [0.8, 0.9, 1.0]]),          # does not start at 0: the old rule wrote white on white
    torch.tensor([[-3.0, -1.0, 0.0], [0.5, 2.0, 4.0]]),         # negative scores
    torch.softmax(torch.randn(4, 4, generator=torch.Generator().manual_seed(0)), -1),
])
def test_show_weights_numbers_are_readable_on_their_cells(table):
    import matplotlib
    import matplotlib.colors as mcolors
    import matplotlib.pyplot as plt

    from buildgpt.viz import show_weights

    matplotlib.use("Agg")
    fig, ax = plt.subplots()
    names = [str(i) for i in range(table.shape[1])]
    show_weights(ax, table, names[:table.shape[0]], names, "t")
    image = ax.images[0]
    for text in ax.texts:
        j, i = (round(v) for v in text.get_position())
        cell = image.cmap(image.norm(table[i, j].item()))
        assert _contrast(mcolors.to_rgb(text.get_color()), cell) >= 3.0, (
            f"{text.get_text()} is written {text.get_color()} on a cell of colour {cell}")
    plt.close(fig)
    # the rule the chapter used before (white above 0.6 of the maximum) fails the first table
    if table.min() > 0.4:
        cell = image.cmap(image.norm(0.61))
        assert _contrast((1, 1, 1), cell) < 3.0


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _serve_widget(widget, folder: Path):
    from ipywidgets.embed import embed_minimal_html

    shutil.copy(ROOT / "_vendor" / "widgets" / "embed.js", folder / "embed.js")
    state = widgets.Widget.get_manager_state(drop_defaults=True)["state"]
    embed_minimal_html(folder / "w.html", views=[widget], state=state, embed_url="embed.js")
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(folder)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}/w.html"


def _browser(p):
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed")
    return p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)


def test_explorers_in_a_browser_without_a_kernel(tokenizers, explorer_model, tmp_path):
    """Saved as static HTML: "your text" at vocabulary 1,024 says 1,024; on a phone the attention map
    scrolls sideways and says so, on a desktop it fits and the hint stays hidden."""
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    from buildgpt.viz import attention_explorer

    model, encode, decode = explorer_model
    sentence = "First Citizen:\nBefore we proceed any further"  # 45 characters: wider than a phone
    box = widgets.VBox([_explorer(tokenizers), attention_explorer(model, encode, decode, [sentence], live=False)])
    httpd, url = _serve_widget(box, tmp_path)
    visible_heads = ("Array.from(document.querySelectorAll('.bgt-view .bgt-head b')).filter(e => e.offsetParent)"
                     ".map(e => e.innerText)")
    try:
        with sync_playwright() as p:
            browser = _browser(p)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(url, wait_until="networkidle")
            page.wait_for_selector(".bgt-att-view", timeout=15_000)
            rows = page.locator(".widget-toggle-buttons")
            rows.nth(0).locator("button", has_text="your text").click()
            rows.nth(1).locator("button", has_text="1,024").click()
            page.wait_for_timeout(300)
            assert "BPE (vocabulary 1,024)" in page.evaluate(visible_heads), page.evaluate(visible_heads)
            hint = page.locator(".bgt-att-hint").first
            assert not hint.is_visible(), "the map fits a desktop screen; no hint"
            page.set_viewport_size({"width": 390, "height": 844})
            page.wait_for_timeout(300)
            assert hint.is_visible() and "swipe" in hint.inner_text()
            scroll = page.locator(".bgt-att-scroll").first
            widths = scroll.evaluate("e => [e.scrollWidth, e.clientWidth, e.getBoundingClientRect().right]")
            assert widths[0] > widths[1] and widths[2] <= 390, f"the map should scroll inside the screen: {widths}"
            scroll.evaluate("e => e.scrollLeft = 10000")
            assert scroll.evaluate("e => e.scrollLeft") > 0, "the map does not scroll sideways"
            browser.close()
    finally:
        httpd.shutdown()
