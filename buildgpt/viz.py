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
    """The ids of text read as ordinary text: a typed `<|endoftext|>` is thirteen characters, never the
    special token (section 1.8: only the caller, not the text, may ask for special tokens)."""
    if hasattr(tokenizer, "encode_ordinary"):
        return list(tokenizer.encode_ordinary(text))
    return list(tokenizer.encode(text))  # a tokenizer without special tokens (CharTokenizer)


def without_lone_surrogates(text: str) -> tuple[str, str]:
    """(text with each lone surrogate replaced by U+FFFD, a sentence about it or "").

    A lone surrogate (half of a UTF-16 pair, which a paste can carry into a text box) is not a
    character and has no UTF-8 bytes, so no byte-level tokenizer can encode it.
    """
    count = sum(0xD800 <= ord(c) <= 0xDFFF for c in text)
    if not count:
        return text, ""
    cleaned = "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)
    return cleaned, (f"The text held {count} lone surrogate{'s' if count > 1 else ''} (half of a UTF-16 pair, "
                     "not a character, with no UTF-8 bytes); each is shown as \ufffd, the replacement character.")


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
    text, _ = without_lone_surrogates(text)
    return '<div class="bgt-view">' + render_tokens(name, token_pieces(tokenizer, text), text) + "</div>"


def _size_name(name: str, size) -> str:
    return f"{name} (vocabulary {size:,})" if isinstance(size, int) else f"{name} ({size})"


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
                stack = widgets.Stack([widgets.HTML(_view(_size_name(name, size), t, text))
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
        # One view per vocabulary size, switched by the size selector like the examples' views, so the
        # label and the tokens always match the selected size, with a kernel or without one.
        outputs = [widgets.HTML(_live_html(tokenizers, live_text, k, sizes)) for k in range(max(len(sizes), 1))]
        output = widgets.Stack(outputs, selected_index=0)
        if sizes:
            widgets.jslink((size_selector, "index"), (output, "selected_index"))

        def update(_change=None):
            for k, view in enumerate(outputs):
                view.value = _live_html(tokenizers, box.value, k, sizes)

        box.observe(update, names="value")
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
    """Every tokenizer's view of the typed text, the family at its size_index-th vocabulary size."""
    text, note = without_lone_surrogates(text)
    parts = [f'<div class="bgt-head"><span>{html.escape(note)}</span></div>'] if note else []
    for name, tok in tokenizers.items():
        if isinstance(tok, Mapping):
            size = sizes[size_index]
            name, tok = _size_name(name, size), tok[size]
        parts.append(_view(name, tok, text))
    return "".join(parts)


# ----------------------------------------------------------------------------------------
# Chapter 2: one training batch

_BATCH_STYLE = (
    "<style>"
    ".bgt-batch{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}"
    ".bgt-batch .bgt-head{font-family:system-ui,sans-serif;font-size:13px;margin:6px 0 3px}"
    ".bgt-batch .bgt-text{border:1px solid #e5e7eb;border-radius:4px;padding:4px;margin-bottom:4px;"
    "white-space:pre-wrap;max-height:90px;overflow:auto}"
    ".bgt-batch .bgt-text b{background:#fde68a}"
    ".bgt-batch .bgt-scroll{overflow-x:auto}"
    ".bgt-batch table{border-collapse:separate;border-spacing:2px 1px}"
    ".bgt-batch th{font-family:system-ui,sans-serif;font-weight:normal;color:#555;text-align:right;"
    "white-space:nowrap;padding-right:4px}"
    ".bgt-batch td{text-align:center;white-space:pre;border-radius:3px;padding:0 3px;min-width:16px;color:#111}"
    ".bgt-batch td.i{font-size:10px;color:#374151}"
    ".bgt-batch tr.t td{font-size:10px;color:#9ca3af}"
    "</style>"
)


def batch_row_html(x_row, y_row, decode, title: str = "") -> str:
    """The HTML of one row of a batch: its text, then a column per position t with the input token
    (text, id) over its target (id, text). Cells are colored by their place in the text, so the target
    at t has the color of the input at t + 1: the diagonal shows the shift by one."""
    xs, ys = [int(i) for i in x_row], [int(i) for i in y_row]
    color = lambda k: TOKEN_COLORS[k % len(TOKEN_COLORS)]
    piece = lambda token_id: _show(decode([token_id]))

    def row(label: str, values: list[str], shift: int, cls: str = "") -> str:
        cells = "".join(f'<td{cls} style="background:{color(t + shift)}">{v}</td>' for t, v in enumerate(values))
        return f"<tr><th>{label}</th>{cells}</tr>"

    positions = "".join(f"<td>{t}</td>" for t in range(len(xs)))
    table = ('<div class="bgt-scroll"><table>'
             f'<tr class="t"><th>position t</th>{positions}</tr>'
             + row("input text", [piece(i) for i in xs], 0)
             + row("input id x[t]", [str(i) for i in xs], 0, ' class="i"')
             + row("target id y[t]", [str(i) for i in ys], 1, ' class="i"')
             + row("target text", [piece(i) for i in ys], 1)
             + "</table></div>")
    text = f'<div class="bgt-text">{html.escape(decode(xs))}<b>{html.escape(decode(ys[-1:]))}</b></div>'
    head = (f'<div class="bgt-head"><b>{html.escape(title)}</b> <span>&middot; {len(xs)} positions; '
            "the highlighted token at the end is the last target</span></div>")
    return '<div class="bgt-batch">' + head + text + table + "</div>"


def batch_viewer(x, y, decode, max_rows: int = 8, title: str = "row") -> widgets.Widget:
    """One training batch, a row at a time: the text of the row, its input ids x, and its targets y
    lined up under them (y[b, t] is the token that follows x[b, t]).

    x, y: (B, T) integer tensors or arrays of token ids. decode: a list of ids -> its text
    (e.g. tokenizer.decode). Only the first max_rows rows are shown. Every row is rendered now,
    and the selector switches between them in the browser, so it also works on the website.
    """
    x_rows, y_rows = [[int(i) for i in r] for r in x], [[int(i) for i in r] for r in y]
    shapes = (len(x_rows), len(x_rows[0]) if x_rows else 0), (len(y_rows), len(y_rows[0]) if y_rows else 0)
    if shapes[0] != shapes[1] or not x_rows or any(len(r) != shapes[0][1] for r in x_rows + y_rows):
        raise ValueError(f"x and y should be (B, T) batches of the same shape; got {shapes[0]} and {shapes[1]}")
    rows = min(len(x_rows), max_rows)
    pages = [_BATCH_STYLE + batch_row_html(x_rows[b], y_rows[b], decode, f"{title} {b} of {len(x_rows)}")
             for b in range(rows)]
    selector = widgets.ToggleButtons(options=[f"{title} {b}" for b in range(rows)], description="batch row",
                                     style={"description_width": "initial", "button_width": "auto"})
    stack = widgets.Stack([widgets.HTML(page) for page in pages], selected_index=0)
    widgets.jslink((selector, "index"), (stack, "selected_index"))
    viewer = _Explorer([selector, stack])
    viewer.fallback_html = pages[0]
    return viewer


# ----------------------------------------------------------------------------------------
# Chapter 3: the attention explorer
#
# The explorer reads the attention of chapter 5's shipped model, made by `python -m buildgpt train`
# (one way to make a model in the course): chapter 3 only reads its attention weights.

import base64  # noqa: E402 (this section's imports stay with it)
import struct  # noqa: E402
import zlib  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

from buildgpt.attention import MultiHeadAttention  # noqa: E402

EXPLORER_MODEL = "shakespeare-char.pt"


def load_explorer_model(path: str | Path | None = None
                        ) -> tuple[nn.Module, Callable[[str], list[int]], Callable[[Sequence[int]], str]]:
    """The course's trained character-level GPT, for the attention explorer: (model in eval mode, encode, decode).

    path: a buildgpt checkpoint, a file or a run folder written by `python -m buildgpt train`; by default
    the shipped datasets/shakespeare-char.pt, chapter 5's model. encode(text) -> list of ids (a character
    the model never saw raises ValueError); decode(ids) -> text. model.meta holds config (the GPTConfig
    as a dict), vocab, steps, seconds, train_loss, val_loss and command (how it was made).
    """
    from buildgpt.checkpoint import load_checkpoint, tokenizer_from_meta
    from buildgpt.model import GPT, GPTConfig
    from buildgpt.resources import dataset_path

    path = dataset_path(EXPLORER_MODEL) if path is None else path
    state = load_checkpoint(path)
    if state["tokenizer"].get("kind") != "char":
        raise ValueError(f"{path} is not a character-level model; the explorer labels every token with one character")
    model = GPT(GPTConfig(**state["config"]))
    model.load_state_dict(state["model"])
    model.eval()
    history = state["extra"].get("history", {})
    last = history["evals"][-1] if history.get("evals") else {}
    vocab = state["tokenizer"]["vocab"]
    model.meta = {"config": dict(state["config"]), "vocab": vocab, "steps": state["step"],
                  "seconds": history.get("wall_s"), "train_loss": last.get("train_loss"),
                  "val_loss": last.get("val_loss"), "command": "python -m buildgpt train"}
    tokenizer = tokenizer_from_meta(state["tokenizer"])
    known = set(vocab)

    def encode(text: str) -> list[int]:
        unknown = sorted({c for c in text if c not in known})
        if unknown:
            raise ValueError(f"the model has never seen the character(s) {''.join(unknown)!r}; "
                             f"it knows only these {len(vocab)}: {vocab!r}")
        return tokenizer.encode(text)

    def decode(ids: Sequence[int]) -> str:
        return tokenizer.decode([int(i) for i in ids])

    return model, encode, decode


@torch.no_grad()
def attention_maps(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """The attention weights of every layer and head of model on one sequence of token ids.

    model: any model whose attention layers are buildgpt.attention.MultiHeadAttention; it is run once,
    in its current mode, with each of them asked for its weights (return_weights=True, which takes the
    manual path), in the order they run. ids: (T,) int64.
    Returns a (n_layers, n_heads, T, T) float tensor on the CPU; row i of a head's map is how query i
    shares its attention among the keys, so it sums to 1.
    """
    layers = [m for m in model.modules() if isinstance(m, MultiHeadAttention)]
    if not layers:
        raise ValueError("the model has no buildgpt.attention.MultiHeadAttention layer to read weights from")
    maps: list[torch.Tensor] = []

    def ask_for_weights(module, args, kwargs):
        return args, {**kwargs, "return_weights": True}

    def keep_weights(module, args, kwargs, output):
        out, weights = output
        maps.append(weights[0].float().cpu())
        return out

    handles = []
    for layer in layers:
        handles.append(layer.register_forward_pre_hook(ask_for_weights, with_kwargs=True))
        handles.append(layer.register_forward_hook(keep_weights, with_kwargs=True))
    try:
        device = next(model.parameters()).device
        model(ids.reshape(1, -1).to(device))
    finally:
        for handle in handles:
            handle.remove()
    return torch.stack(maps)


_ATT_CELL = 14  # pixels per heatmap cell
_ATT_STYLE = (
    "<style>"
    ".bgt-att-view{font-family:system-ui,sans-serif;font-size:13px;margin:4px 0}"
    ".bgt-att-view .bgt-head span{color:#555}"
    ".bgt-att{position:relative;display:grid;margin:6px 0;"
    f"grid-auto-rows:{_ATT_CELL}px;font:11px/{_ATT_CELL}px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}}"
    ".bgt-att img{position:absolute;image-rendering:pixelated;z-index:0;pointer-events:none;"
    "outline:1px solid #d1d5db}"
    ".bgt-att i{font-style:normal;text-align:center;color:#374151;white-space:pre}"
    ".bgt-att p{grid-column:1/-1;margin:0;padding:0;position:relative;z-index:1;cursor:pointer;"
    "color:#374151;text-align:center;white-space:pre;outline:none}"
    f".bgt-att p>b{{display:block;width:{_ATT_CELL}px;font-weight:normal}}"
    ".bgt-att p:hover,.bgt-att p:focus{background:rgba(245,158,11,.18);box-shadow:inset 0 0 0 2px #f59e0b}"
    ".bgt-att p:hover>b,.bgt-att p:focus>b{background:#f59e0b;color:#fff}"
    ".bgt-att-note{color:#555;font-size:12px}"
    # A map wider than its box scrolls sideways; the hint under the title says so on screens narrower
    # than the map (its class hNNN: the map needs NNN pixels of screen), where a phone shows no scrollbar.
    ".bgt-att-scroll{overflow-x:auto;max-width:100%;-webkit-overflow-scrolling:touch}"
    # (the widget boxes around it are flex items that would grow to the map's width: let them shrink)
    ".widget-html:has(.bgt-att-view),.widget-html-content:has(>.bgt-att-view){min-width:0}"
    ".bgt-att-hint{display:none;color:#92400e;font-size:12px;margin:2px 0}"
    + "".join(f"@media (max-width:{w}px){{.bgt-att-hint.h{w}{{display:block}}}}" for w in range(300, 1001, 50))
    + "</style>"
)


def _png(pixels: list[bytes], palette: bytes) -> bytes:
    """A palette PNG image from rows of 1-byte palette indices (PNG needs only zlib and crc32)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    height, width = len(pixels), len(pixels[0])
    raw = b"".join(b"\x00" + row for row in pixels)  # filter type 0 (none) before every row
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 3, 0, 0, 0))
            + chunk(b"PLTE", palette) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


# Palette: entries 0..62 shade from white to dark blue with the weight; 63 is the masked future.
# (63 shades are plenty for the eye, and a short palette keeps every saved view small.)
_ATT_LEVELS = 62
_ATT_PALETTE = b"".join(bytes(round(255 + (end - 255) * k / _ATT_LEVELS) for end in (30, 64, 175))
                        for k in range(_ATT_LEVELS + 1)) + bytes((229, 231, 235))


def _char_label(c: str) -> str:
    return {" ": "\u2423", "\n": "\u21b5", "\t": "\u2192"}.get(c, c)


def option_label(text: str, width: int = 60) -> str:
    """A text as one line for a dropdown: line breaks and tabs shown as \u21b5 and \u2192 (never a literal
    backslash-n), cut to width characters with an ellipsis."""
    line = text.replace("\r\n", "\n").replace("\n", " \u21b5 ").replace("\t", "\u2192")
    return line if len(line) <= width else line[:width - 1].rstrip() + "\u2026"


def attention_heatmap_html(weights: torch.Tensor, tokens: list[str], title: str) -> str:
    """One head's (T, T) weights as an HTML heatmap: a pixel image with the tokens along both axes.

    Rows are queries and columns keys; the future (above the diagonal) is gray. Each row is a
    focusable element whose tooltip lists the keys it attends to most; hovering or clicking it
    highlights it with CSS alone, so it works in saved widget state with no script.
    """
    T = len(tokens)
    w = weights.float().clamp(0, 1)
    rows = [bytes(_ATT_LEVELS + 1 if j > i else round(_ATT_LEVELS * w[i, j].item()) for j in range(T))
            for i in range(T)]
    image = base64.b64encode(_png(rows, _ATT_PALETTE)).decode("ascii")
    labels = [html.escape(_char_label(t)) for t in tokens]
    side = T * _ATT_CELL
    parts = [f'<div class="bgt-att" style="grid-template-columns:repeat({T + 1},{_ATT_CELL}px)">',
             f'<img alt="attention weights" src="data:image/png;base64,{image}" '
             f'style="left:{_ATT_CELL}px;top:{_ATT_CELL}px;width:{side}px;height:{side}px">',
             "<i></i>" + "".join(f"<i>{label}</i>" for label in labels)]
    for i in range(T):
        top = sorted(range(i + 1), key=lambda j: -w[i, j].item())[:3]
        tip = f"{_char_label(tokens[i])} ({i}) attends to " + ", ".join(
            f"{_char_label(tokens[j])} ({j}) {w[i, j].item():.2f}" for j in top)
        parts.append(f'<p tabindex="0" title="{html.escape(tip)}"><b>{labels[i]}</b></p>')
    parts.append("</div>")
    head = f'<div class="bgt-head"><b>{html.escape(title)}</b></div>'
    needs = min(1000, max(300, -(-((T + 1) * _ATT_CELL + 40) // 50) * 50))  # screen width it fits, in 50 px steps
    hint = (f'<div class="bgt-att-hint h{needs}">The map is wider than this screen: swipe it sideways '
            "(\u2190 \u2192) to see every column.</div>")
    return ('<div class="bgt-att-view">' + head + hint + '<div class="bgt-att-scroll">' + "".join(parts)
            + "</div></div>")


def show_weights(ax, table: torch.Tensor, rows: list[str], cols: list[str], title: str,
                 fmt: str = "{:.2f}", cmap: str = "Blues") -> None:
    """Draw a (len(rows), len(cols)) table on a matplotlib Axes as a heatmap, its values written in the cells.

    The colours run from the table's minimum (lightest) to its maximum (darkest), and each number is
    white on a dark cell and black on a light one, judged on that same scale, so negative entries
    and tables that do not start at 0 stay readable.
    """
    values = table.detach().float().cpu()
    low, high = values.min().item(), values.max().item()
    image = ax.imshow(values.numpy(), cmap=cmap, vmin=low, vmax=high)
    ax.set_xticks(range(len(cols)), cols)
    ax.set_yticks(range(len(rows)), rows)
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            value = values[i, j].item()
            ax.text(j, i, fmt.format(value), ha="center", va="center", fontsize=8,
                    color=text_color(image.cmap(image.norm(value))))
    ax.set_title(title)


def text_color(background) -> str:
    """"white" or "black", whichever is easier to read on an RGB(A) colour with channels in [0, 1]
    (the relative luminance of WCAG 2: above 0.179, black contrasts more)."""
    def linear(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(float(c)) for c in background[:3])
    return "black" if 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.179 else "white"


def _attention_views(model: nn.Module, encode, decode, text: str) -> list[list[str]]:
    """The heatmap HTML of every (layer, head) of model on text, as views[layer][head]."""
    ids = encode(text)
    maps = attention_maps(model, torch.tensor(ids, dtype=torch.long))
    tokens = [decode([i]) for i in ids]
    return [[attention_heatmap_html(maps[layer, head], tokens, f"layer {layer}, head {head}")
             for head in range(maps.shape[1])] for layer in range(maps.shape[0])]


def attention_explorer(model: nn.Module, encode, decode, sentences: list[str], live: bool = True,
                       live_text: str = "Type here, and watch the heads.") -> widgets.Widget:
    """Attention heatmaps of every layer and head of model, for a few sentences, switchable in the browser.

    model: built on buildgpt.attention.MultiHeadAttention (see attention_maps), e.g. the one
        load_explorer_model() returns; encode(text) -> ids and decode(ids) -> text are its tokenizer.
    sentences: texts of at most the model's context, each rendered now for every layer and head, so
        the sentence, layer and head selectors work on the website with no kernel.
    live: add a "your text" choice whose text box recomputes the maps as you type (needs a kernel).
    Keep the sentences short (about 40 tokens): every view is saved in the notebook.
    """
    if not sentences:
        raise ValueError("give at least one sentence to show")
    layer_count = head_count = 0

    def page_for(views: list[list[str]]):
        nonlocal layer_count, head_count
        layer_count, head_count = len(views), len(views[0])
        heads = [widgets.Stack([widgets.HTML(v) for v in layer_views], selected_index=0) for layer_views in views]
        layers = widgets.Stack(heads, selected_index=0)
        return layers, heads

    built = [page_for(_attention_views(model, encode, decode, text)) for text in sentences]
    if live:
        box = widgets.Text(value=live_text, placeholder="Type any text", layout=widgets.Layout(width="100%"))
        note = widgets.HTML('<div class="bgt-att-note">Recomputed as you type when this notebook runs '
                            "(Jupyter or Colab); on the website it shows the text in the box.</div>")
        live_layers, live_heads = page_for(_attention_views(model, encode, decode, live_text))

        def update(_change=None):
            text = box.value[-getattr(model, "context", len(box.value)):] or " "
            try:
                views = _attention_views(model, encode, decode, text)
            except ValueError as error:
                note.value = f'<div class="bgt-att-note">{html.escape(str(error))}</div>'
                return
            note.value = '<div class="bgt-att-note">The maps below are for the text in the box.</div>'
            for layer, head_stack in enumerate(live_heads):
                for head, view in enumerate(head_stack.children):
                    view.value = views[layer][head]

        box.observe(update, names="value")
    # Labels are HTML widgets beside the controls, not their `description`: the website's widget manager
    # typesets descriptions with MathJax 2's API, which the book's MathJax 3 lacks (an error per label).
    layer_selector = widgets.ToggleButtons(options=[str(i) for i in range(layer_count)],
                                           style={"button_width": "auto"})
    head_selector = widgets.ToggleButtons(options=[str(i) for i in range(head_count)],
                                          style={"button_width": "auto"})
    for layers, heads in built + ([(live_layers, live_heads)] if live else []):
        widgets.jslink((layer_selector, "index"), (layers, "selected_index"))
        for head_stack in heads:
            widgets.jslink((head_selector, "index"), (head_stack, "selected_index"))
    pages = [layers for layers, _ in built] + ([widgets.VBox([note, box, live_layers])] if live else [])
    names = [option_label(text) for text in sentences] + (["your text"] if live else [])
    sentence_selector = widgets.Dropdown(options=[(name, i) for i, name in enumerate(names)], value=0,
                                         layout=widgets.Layout(width="auto"))
    sentence_stack = widgets.Stack(pages, selected_index=0)
    widgets.jslink((sentence_selector, "index"), (sentence_stack, "selected_index"))
    legend = widgets.HTML('<div class="bgt-att-note">Rows: each character (the query). Columns: the characters '
                          "it may look at (the keys). Darker: more attention. Gray: the future, masked. "
                          "Hover over a row, or click it, to highlight it and see where it looks most.</div>")
    def labeled(label: str, control: widgets.Widget) -> widgets.HBox:
        return widgets.HBox([widgets.HTML(f"<b>{label}</b>", layout=widgets.Layout(width="70px")), control])

    controls = [labeled("sentence", sentence_selector), labeled("layer", layer_selector), labeled("head", head_selector)]
    explorer = _Explorer([widgets.HTML(_ATT_STYLE), *controls, legend, sentence_stack])
    explorer.fallback_html = _ATT_STYLE + built[0][1][0].children[0].value
    return explorer


# --- Chapter 5: the sampling explorer -------------------------------------------------------------

_SAMPLE_STYLE = (
    "<style>"
    ".bgt-smp{font-family:system-ui,sans-serif;font-size:13px}"
    ".bgt-smp table{border-collapse:collapse;margin:4px 0}"
    ".bgt-smp td{padding:1px 6px;vertical-align:middle}"
    ".bgt-smp td.t{font-family:ui-monospace,Menlo,Consolas,monospace;white-space:pre;text-align:right}"
    ".bgt-smp .bar{display:inline-block;height:12px;background:#2563eb;border-radius:2px;vertical-align:middle}"
    ".bgt-smp .bar.m{background:#cbd5e1}"
    ".bgt-smp tr.cut td{color:#9ca3af}"
    ".bgt-smp pre{white-space:pre-wrap;background:#f8fafc;border:1px solid #e5e7eb;border-radius:4px;"
    "padding:6px;margin:4px 0;font-size:12px}"
    ".bgt-smp .note{color:#555;margin:4px 0}"
    "</style>"
)


def _sampling_view(prompt: str, model_probs: list[float], probs: list[float], decode, sample: str,
                   label: str, rows: int) -> str:
    """HTML of one setting: the most likely next tokens (model's and adjusted probabilities) and a sample."""
    order = sorted(range(len(model_probs)), key=lambda i: -model_probs[i])[:rows]
    kept = sum(p > 0 for p in probs)
    lines = []
    for i in order:
        shown = _char_label(decode([i]))
        cut = probs[i] == 0
        lines.append(
            f'<tr class="{"cut" if cut else ""}"><td class="t">{html.escape(shown)}</td>'
            f'<td><span class="bar m" style="width:{200 * model_probs[i]:.1f}px"></span></td>'
            f'<td>{100 * model_probs[i]:.1f}%</td>'
            f'<td><span class="bar" style="width:{200 * probs[i]:.1f}px"></span></td>'
            f'<td>{"cut" if cut else f"{100 * probs[i]:.1f}%"}</td></tr>')
    return (f'<div class="bgt-smp"><div class="note"><b>{html.escape(label)}</b>: {kept} of {len(probs)} tokens '
            f"can be drawn. The next token after the prompt, the {rows} most likely:</div>"
            '<table><tr><td></td><td colspan="2">model (temperature 1)</td><td colspan="2">sampled from</td></tr>'
            + "".join(lines) + "</table>"
            f'<div class="note">A sample with these settings (seed 0):</div><pre><b>{html.escape(prompt)}</b>'
            f"{html.escape(sample)}</pre></div>")


@torch.no_grad()
def sampling_explorer(model: nn.Module, encode, decode, prompts: list[str],
                      temperatures: Sequence[float] = (0.0, 0.5, 0.8, 1.0, 1.5),
                      top_ks: Sequence[int | None] = (None, 5, 20), top_ps: Sequence[float | None] = (None, 0.9, 0.6),
                      sample_tokens: int = 120, rows: int = 12, seed: int = 0,
                      progress: bool = True) -> widgets.Widget:
    """The next-token distribution, and a sample, as temperature, top-k and top-p change.

    model: a buildgpt GPT (forward(ids (B, T)) -> logits (B, T, V), .config.context_length);
    encode(text) -> ids and decode(ids) -> text: its tokenizer. Every combination of the settings is
    computed now (one batch per prompt), so the selectors work on the website without a kernel; with
    the defaults that is 45 views per prompt, so keep prompts to two or three. Past the model's context
    every new token needs a full forward pass of the last context_length tokens (the positions shift, so
    the cache cannot be kept), which takes most of the time; progress=True shows a bar of the tokens.
    """
    from tqdm.auto import tqdm

    from buildgpt.model import KVCache, forward_cached, use_fast_kernels
    from buildgpt.sampling import next_token_probs

    if not prompts:
        raise ValueError("give at least one prompt")
    settings = [(t, k, p) for t in temperatures for k in top_ks for p in top_ps]
    # temperature 0 is greedy whatever top-k and top-p say: one sample serves all those settings
    rows_of = {s: (0.0, None, None) if s[0] == 0 else s for s in settings}
    sampled = list(dict.fromkeys(rows_of.values()))
    context = model.config.context_length
    was_training = model.training
    classes = {module: type(module) for module in model.modules()}
    use_fast_kernels(model.eval())  # the same model on fused kernels, switched back below
    device = next(model.parameters()).device
    pages = []
    bar = tqdm(total=len(prompts) * sample_tokens, desc="sampling", unit="token", disable=not progress)
    for prompt in prompts:
        ids = torch.tensor([encode(prompt)] * len(sampled), dtype=torch.long, device=device)
        first = model(ids[:1, -context:])[:, -1, :].float()
        model_probs = torch.softmax(first, dim=-1)[0].tolist()
        views = [next_token_probs(first, t, k, p)[0].tolist() for t, k, p in settings]
        generator = torch.Generator().manual_seed(seed)
        cache = KVCache(len(model.blocks))
        for _ in range(sample_tokens):
            if ids.shape[1] <= context:  # while the text fits, only the new token goes through the model
                logits = forward_cached(model, ids[:, cache.length:], cache)[:, -1, :].float().cpu()
            else:
                logits = model(ids[:, -context:])[:, -1, :].float().cpu()
            next_ids = []
            for row, (t, k, p) in enumerate(sampled):
                probs = next_token_probs(logits[row:row + 1], t, k, p)
                next_ids.append(int(torch.multinomial(probs, 1, generator=generator)) if t > 0 else int(probs.argmax()))
            ids = torch.cat([ids, torch.tensor(next_ids, device=device).unsqueeze(1)], dim=1)
            bar.update(1)
        by_row = {s: decode(row[len(encode(prompt)):].tolist()) for s, row in zip(sampled, ids)}
        samples = [by_row[rows_of[s]] for s in settings]
        html_views = {}
        for (t, k, p), probs, sample in zip(settings, views, samples):
            label = f"temperature {t:g}" + (" (greedy: top-k and top-p do not matter)" if t == 0 else
                                            f", top-k {k or 'off'}, top-p {p or 'off'}")
            html_views[(t, k, p)] = _sampling_view(prompt, model_probs, probs, decode, sample, label, rows)
        by_t = [widgets.Stack([widgets.Stack([widgets.HTML(html_views[(t, k, p)]) for p in top_ps], selected_index=0)
                               for k in top_ks], selected_index=0) for t in temperatures]
        pages.append(widgets.Stack(by_t, selected_index=0))
    bar.close()
    for module, cls in classes.items():
        module.__class__ = cls
    model.train(was_training)

    def toggles(values, name):
        return widgets.ToggleButtons(options=[(name(v), i) for i, v in enumerate(values)], value=0,
                                     style={"button_width": "auto"})

    t_start = list(temperatures).index(1.0) if 1.0 in temperatures else 0
    t_selector = toggles(temperatures, lambda v: f"{v:g}")
    k_selector = toggles(top_ks, lambda v: "off" if v is None else str(v))
    p_selector = toggles(top_ps, lambda v: "off" if v is None else f"{v:g}")
    for page in pages:
        page.selected_index = t_start
        widgets.jslink((t_selector, "index"), (page, "selected_index"))
        for k_stack in page.children:
            widgets.jslink((k_selector, "index"), (k_stack, "selected_index"))
            for p_stack in k_stack.children:
                widgets.jslink((p_selector, "index"), (p_stack, "selected_index"))
    t_selector.value = t_start
    prompt_selector = widgets.Dropdown(options=[(option_label(p), i) for i, p in enumerate(prompts)], value=0,
                                       layout=widgets.Layout(width="auto"))
    prompt_stack = widgets.Stack(pages, selected_index=0)
    widgets.jslink((prompt_selector, "index"), (prompt_stack, "selected_index"))

    def labeled(label: str, control: widgets.Widget) -> widgets.HBox:  # labels beside, not descriptions (MathJax)
        return widgets.HBox([widgets.HTML(f"<b>{label}</b>", layout=widgets.Layout(width="90px")), control])

    explorer = _Explorer([widgets.HTML(_SAMPLE_STYLE), labeled("prompt", prompt_selector),
                          labeled("temperature", t_selector), labeled("top-k", k_selector),
                          labeled("top-p", p_selector), prompt_stack])
    first_view = pages[0].children[t_start].children[0].children[0].value
    explorer.fallback_html = _SAMPLE_STYLE + first_view
    return explorer
