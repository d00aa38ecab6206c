"""The course's visualizations: each function returns an ipywidget.

With a kernel (Jupyter, Colab) the widgets are fully interactive. On the static website they
still work from their saved state: every view is computed when the chapter is executed, and the
controls switch between those views with client-side links (`ipywidgets.jslink`), which need no
kernel. Where widgets do not load at all, the output also carries a plain HTML copy of the first
view, so the reader still sees something.
"""

from __future__ import annotations

import html
from collections.abc import Mapping

import ipywidgets as widgets

# Light background colors for consecutive tokens; neighbors always differ.
TOKEN_COLORS = ("#fde68a", "#bfdbfe", "#bbf7d0", "#fecaca", "#ddd6fe", "#fed7aa", "#a5f3fc", "#f5d0fe")

_STYLE = (
    "<style>"
    ".bgt-view{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px;line-height:1.2}"
    ".bgt-head{font-family:system-ui,sans-serif;font-size:13px;margin:8px 0 3px}"
    ".bgt-head span{color:#555}"
    ".bgt-toks{max-height:260px;overflow:auto;border:1px solid #e5e7eb;border-radius:4px;padding:4px}"
    ".bgt-toks>span{display:inline-block;white-space:pre;text-align:center;vertical-align:top;"
    "margin:1px 1px 1px 0;padding:0 2px;border-radius:3px;color:#111}"
    ".bgt-toks>span>i{display:block;font-style:normal;font-size:9px;color:#555}"
    ".bgt-toks>span.x{color:#6b7280;font-style:italic}"
    + "".join(f".bgt-toks>span.c{k}{{background:{color}}}" for k, color in enumerate(TOKEN_COLORS))
    + "</style>"
)


def token_pieces(tokenizer, text: str) -> list[tuple[int, str, bool]]:
    """Encode text and return, per token, (id, what it shows, whether its bytes are a whole text).

    Works with the course's tokenizers (`BPETokenizer` has `token_bytes`, `CharTokenizer` has
    `decode`) and with tiktoken encodings (`decode_single_token_bytes`). A byte-level token that
    holds only part of a character (a piece of an emoji, say) shows its bytes in hex, e.g. `<f0 9f>`.
    """
    ids = _encode(tokenizer, text)
    pieces = []
    for token_id in ids:
        if hasattr(tokenizer, "token_bytes"):
            data = tokenizer.token_bytes(token_id)
        elif hasattr(tokenizer, "decode_single_token_bytes"):
            data = tokenizer.decode_single_token_bytes(token_id)
        else:
            pieces.append((token_id, tokenizer.decode([token_id]), True))
            continue
        try:
            pieces.append((token_id, data.decode("utf-8"), True))
        except UnicodeDecodeError:
            pieces.append((token_id, "<" + data.hex(" ") + ">", False))
    return pieces


def _encode(tokenizer, text: str) -> list[int]:
    try:
        return list(tokenizer.encode(text, allowed_special="all"))
    except TypeError:  # a tokenizer without special tokens (CharTokenizer)
        return list(tokenizer.encode(text))


def _show(piece: str) -> str:
    """A piece of text as it should look inside a token box: whitespace made visible."""
    shown = html.escape(piece).replace("\t", "\u2192").replace("\n", "\u21b5")
    return shown


def render_tokens(name: str, pieces: list[tuple[int, str, bool]], text: str) -> str:
    """The HTML of one tokenizer's view: a heading with counts, then one colored box per token."""
    n_bytes = len(text.encode("utf-8"))
    per_token = f"{n_bytes / len(pieces):.2f} bytes per token" if pieces else "no tokens"
    head = (f'<div class="bgt-head"><b>{html.escape(name)}</b> <span>&middot; {len(pieces):,} tokens '
            f"&middot; {per_token}</span></div>")
    boxes = []
    for k, (token_id, piece, whole) in enumerate(pieces):
        # Short class names keep the saved widget state small: one view holds hundreds of boxes.
        cls = f"c{k % len(TOKEN_COLORS)}" + ("" if whole else " x")
        box = f"<span class='{cls}'>{_show(piece)}<i>{token_id}</i></span>"
        boxes.append(box + ("<br>" if whole and piece.endswith("\n") else ""))
    return head + '<div class="bgt-toks">' + "".join(boxes) + "</div>"


def _view(name: str, tokenizer, text: str) -> str:
    """One tokenizer's view of text (its style sheet comes once per explorer, in _STYLE)."""
    return '<div class="bgt-view">' + render_tokens(name, token_pieces(tokenizer, text), text) + "</div>"


class _Explorer(widgets.VBox):
    """A VBox that also offers a plain HTML copy of its first view, for pages without widgets."""

    fallback_html = ""

    def _repr_mimebundle_(self, **kwargs):
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is not None and self.fallback_html:
            bundle["text/html"] = self.fallback_html
        return bundle


def tokenizer_explorer(tokenizers: Mapping[str, object], examples: Mapping[str, str], live: bool = True,
                       live_text: str = "Type here: tokenizers turn text into numbers.") -> widgets.Widget:
    """Text in, tokens out: every tokenizer's tokens as colored boxes with their ids, side by side.

    tokenizers: name -> tokenizer, in display order. One entry may instead map to
        {vocabulary size: tokenizer}; a selector then switches between those sizes.
    examples: name -> text; each is tokenized now, so the views work without a kernel
        (on the website the selectors switch between them in the browser).
    live: add a "your text" view whose text box tokenizes what you type (needs a running kernel).
    """
    families = {name: tok for name, tok in tokenizers.items() if isinstance(tok, Mapping)}
    if len(families) > 1:
        raise ValueError(f"only one tokenizer can come in several vocabulary sizes; got {sorted(families)}")
    if not examples:
        raise ValueError("give at least one example text to show")
    sizes = list(next(iter(families.values()))) if families else []
    size_selector = widgets.ToggleButtons(
        options=[f"{size:,}" if isinstance(size, int) else str(size) for size in sizes],
        description="vocab size", style={"description_width": "initial", "button_width": "auto"})

    def views(text: str) -> list[widgets.Widget]:
        rows = []
        for name, tok in tokenizers.items():
            if isinstance(tok, Mapping):
                stack = widgets.Stack([widgets.HTML(_view(f"{name} (vocabulary {size:,})" if isinstance(size, int)
                                                          else f"{name} ({size})", t, text))
                                       for size, t in tok.items()], selected_index=0)
                widgets.jslink((size_selector, "index"), (stack, "selected_index"))
                rows.append(stack)
            else:
                rows.append(widgets.HTML(_view(name, tok, text)))
        return rows

    pages = [widgets.VBox(views(text)) for text in examples.values()]
    names = list(examples)
    if live:
        box = widgets.Textarea(value=live_text, layout=widgets.Layout(width="100%", height="80px"),
                               placeholder="Type any text")
        output = widgets.HTML(_live_html(tokenizers, live_text, 0, sizes))

        def update(_change=None):
            output.value = _live_html(tokenizers, box.value, size_selector.index or 0, sizes)

        box.observe(update, names="value")
        size_selector.observe(update, names="index")
        note = widgets.HTML('<div class="bgt-head"><span>Tokenized as you type when this notebook runs '
                            "(Jupyter or Colab); on the website it shows the text below.</span></div>")
        pages.append(widgets.VBox([note, box, output]))
        names.append("your text")

    example_selector = widgets.ToggleButtons(options=names, description="example",
                                             style={"description_width": "initial", "button_width": "auto"})
    stack = widgets.Stack(pages, selected_index=0)
    widgets.jslink((example_selector, "index"), (stack, "selected_index"))
    controls = [example_selector] + ([size_selector] if sizes else [])
    explorer = _Explorer([widgets.HTML(_STYLE)] + controls + [stack])
    first_text = next(iter(examples.values()))
    explorer.fallback_html = _STYLE + "".join(
        _view(name, tok if not isinstance(tok, Mapping) else tok[sizes[0]], first_text)
        for name, tok in tokenizers.items())
    return explorer


def _live_html(tokenizers, text: str, size_index: int, sizes: list) -> str:
    parts = []
    for name, tok in tokenizers.items():
        if isinstance(tok, Mapping):
            size = sizes[size_index]
            name, tok = (f"{name} (vocabulary {size:,})" if isinstance(size, int) else f"{name} ({size})"), tok[size]
        parts.append(_view(name, tok, text))
    return "".join(parts)
