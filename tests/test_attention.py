"""buildgpt.attention (exported from chapter 3) and the attention explorer in buildgpt.viz:
agreement with PyTorch's own attention, the two paths of MultiHeadAttention, causality, the
shipped explorer model, and the widget (built in Python, and switched in a real browser when
Chromium and Playwright are there)."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from buildgpt.attention import MultiHeadAttention, causal_mask, scaled_dot_product_attention, softmax
from notebooks import ROOT


def randn(*shape, seed=0, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# ----------------------------------------------------------------------------------------
# The functions


def test_softmax_matches_torch_and_survives_large_scores():
    x = randn(3, 4, 5) * 10
    for dim in (0, 1, -1):
        assert torch.allclose(softmax(x, dim=dim), torch.softmax(x, dim=dim), atol=1e-6)
    big = softmax(torch.tensor([[1000.0, 1001.0], [-1000.0, -1001.0]]))
    assert torch.allclose(big, torch.tensor([[0.2689, 0.7311], [0.7311, 0.2689]]), atol=1e-4)
    assert softmax(torch.tensor([0.0, float("-inf")])).tolist() == [1.0, 0.0]


def test_causal_mask_convention():
    m = causal_mask(4)
    assert m.dtype == torch.bool and m.tolist() == [[j <= i for j in range(4)] for i in range(4)]


SHAPES = [  # (shape of q, shape of k and v without the last dimension of v, d_v)
    ((5, 8), (5, 8), 8),                  # one sequence
    ((2, 7, 16), (2, 7, 16), 16),         # (B, T, d)
    ((2, 3, 6, 4), (2, 3, 6, 4), 4),      # (B, heads, T, d)
    ((2, 3, 4, 8), (2, 3, 9, 8), 5),      # T_q != T_k, d_v != d_k: no causal mask
]


@pytest.mark.parametrize("shape_q,shape_kv,d_v,masking", [
    (*shape, masking) for shape in SHAPES for masking in ("none", "causal", "padding")
    if not (masking == "causal" and shape[0][-2] != shape[1][-2])])
def test_sdpa_matches_torch(shape_q, shape_kv, d_v, masking):
    q, k = randn(*shape_q, seed=1), randn(*shape_kv, seed=2)
    v = randn(*shape_kv[:-1], d_v, seed=3)
    T_q, T_k = shape_q[-2], shape_kv[-2]
    if masking == "none":
        mask = None
    elif masking == "causal":
        mask = causal_mask(T_q)
    else:  # the last key of every sequence is padding
        mask = torch.ones(T_k, dtype=torch.bool)
        mask[-1] = False
        mask = mask.expand(*shape_q[:-2], 1, T_k)
    out, weights = scaled_dot_product_attention(q, k, v, mask=mask)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert out.shape == expected.shape and torch.allclose(out, expected, atol=1e-5)
    assert weights.shape == (*shape_q[:-1], T_k)
    assert torch.allclose(weights.sum(-1), torch.ones(weights.shape[:-1]), atol=1e-5)
    if mask is not None:
        assert bool((weights.masked_select(~mask.expand_as(weights)) == 0).all())


def test_sdpa_causal_equals_is_causal():
    q, k, v = (randn(2, 4, 10, 8, seed=s) for s in range(3))
    out, _ = scaled_dot_product_attention(q, k, v, mask=causal_mask(10))
    assert torch.allclose(out, F.scaled_dot_product_attention(q, k, v, is_causal=True), atol=1e-5)


def test_sdpa_dropout_rescales_kept_weights():
    q, k, v = (randn(4, 2, 8, 8, seed=s) for s in range(3))
    _, plain = scaled_dot_product_attention(q, k, v)
    torch.manual_seed(0)
    out, dropped = scaled_dot_product_attention(q, k, v, dropout_p=0.2)
    kept = dropped != 0
    assert 0.1 < 1 - kept.float().mean().item() < 0.3
    assert torch.allclose(dropped[kept], plain[kept] / 0.8, atol=1e-5)
    assert torch.allclose(out, dropped @ v, atol=1e-5)


# ----------------------------------------------------------------------------------------
# MultiHeadAttention


def test_mha_rejects_unequal_heads_in_one_sentence():
    with pytest.raises(ValueError, match=r"d_model \(10\) must be divisible by n_heads \(3\)"):
        MultiHeadAttention(10, 3)


def test_mha_parameter_names_are_the_documented_ones():
    mha = MultiHeadAttention(12, 3)
    shapes = {name: tuple(t.shape) for name, t in mha.state_dict().items()}
    assert shapes == {"qkv.weight": (36, 12), "qkv.bias": (36,), "proj.weight": (12, 12), "proj.bias": (12,)}
    assert (mha.n_heads, mha.head_dim, mha.dropout, mha.use_fused) == (3, 4, 0.0, False)
    no_bias = MultiHeadAttention(12, 3, bias=False)
    assert set(no_bias.state_dict()) == {"qkv.weight", "proj.weight"}


@pytest.mark.parametrize("d_model,n_heads,T", [(8, 2, 5), (64, 4, 33), (96, 12, 64), (32, 1, 7)])
@pytest.mark.parametrize("masking", ["causal", "none", "padding"])
def test_mha_fused_and_manual_paths_agree(d_model, n_heads, T, masking):
    torch.manual_seed(0)
    mha = MultiHeadAttention(d_model, n_heads, dropout=0.3).eval()  # eval: dropout off on both paths
    x = randn(3, T, d_model, seed=4)
    mask = {"causal": causal_mask(T), "none": None,
            "padding": torch.arange(T).expand(3, 1, 1, T) < torch.tensor([T, T - 1, 1]).view(3, 1, 1, 1)}[masking]
    manual, weights = mha(x, mask=mask, return_weights=True)
    mha.use_fused = True
    fused = mha(x, mask=mask)
    assert (manual - fused).abs().max().item() < 1e-5
    assert weights.shape == (3, n_heads, T, T)


def test_mha_is_causal():
    torch.manual_seed(1)
    mha = MultiHeadAttention(32, 4).eval()
    x = randn(2, 12, 32, seed=5)
    for fused in (False, True):
        mha.use_fused = fused
        before = mha(x, mask=causal_mask(12))
        for t in (0, 5, 11):
            changed = x.clone()
            changed[:, t + 1:] = randn(2, 11 - t, 32, seed=6 + t)  # every token after t
            after = mha(changed, mask=causal_mask(12))
            assert torch.allclose(after[:, : t + 1], before[:, : t + 1], atol=1e-6), (fused, t)
            if t < 11:
                assert not torch.allclose(after[:, t + 1:], before[:, t + 1:])


def test_mha_dropout_only_in_training():
    torch.manual_seed(2)
    mha = MultiHeadAttention(16, 2, dropout=0.5)
    x = randn(2, 6, 16, seed=7)
    for fused in (False, True):
        mha.use_fused = fused
        mha.train()
        assert not torch.allclose(mha(x, mask=causal_mask(6)), mha(x, mask=causal_mask(6)))
        mha.eval()
        assert torch.equal(mha(x, mask=causal_mask(6)), mha(x, mask=causal_mask(6)))


def test_mha_backward_reaches_every_parameter():
    mha = MultiHeadAttention(16, 4)
    mha(randn(2, 5, 16, seed=8), mask=causal_mask(5)).pow(2).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in mha.parameters())


# ----------------------------------------------------------------------------------------
# The explorer model and widget


@pytest.fixture(scope="module")
def explorer():
    from buildgpt.viz import load_explorer_model

    return load_explorer_model()


def test_explorer_model_is_small_documented_and_trained(explorer):
    from buildgpt.resources import dataset_path
    from buildgpt.viz import EXPLORER_MODEL

    model, encode, decode = explorer
    path = dataset_path(EXPLORER_MODEL)
    assert EXPLORER_MODEL == "shakespeare-char.pt", "the explorer shows the model chapter 5's train command made"
    assert path.stat().st_size < 4_000_000, "the shipped model should stay a few MB at most"
    meta = model.meta
    assert meta["val_loss"] < 2.1 and meta["train_loss"] < 2.1
    assert meta["command"] in (ROOT / "datasets" / "README.md").read_text(), "datasets/README.md says how it was made"
    assert decode(encode("ROMEO:\nO me!")) == "ROMEO:\nO me!"
    with pytest.raises(ValueError, match="never seen"):
        encode("café")


def test_explorer_maps_are_causal_distributions(explorer):
    from buildgpt.viz import attention_maps

    model, encode, _ = explorer
    text = "First Citizen:\nBefore we proceed any further"
    maps = attention_maps(model, torch.tensor(encode(text)))
    n_layers, n_heads = model.meta["config"]["n_layers"], model.meta["config"]["n_heads"]
    T = len(text)
    assert maps.shape == (n_layers, n_heads, T, T)
    assert torch.allclose(maps.sum(-1), torch.ones(n_layers, n_heads, T), atol=1e-4)
    assert bool((maps.masked_select(~causal_mask(T)) == 0).all())
    # the model is left as it was: its attention layers answer with a plain tensor again
    assert isinstance(model(torch.tensor([encode(text)])), torch.Tensor)


def test_explorer_has_a_previous_token_head(explorer):
    from buildgpt.resources import dataset_path
    from buildgpt.viz import attention_maps

    model, encode, _ = explorer
    text = dataset_path("tinyshakespeare.txt").read_text(encoding="utf-8")[-64:]
    maps = attention_maps(model, torch.tensor(encode(text)))
    previous = maps.diagonal(offset=-1, dim1=-2, dim2=-1).mean(-1)  # (n_layers, n_heads)
    even = sum(1 / (t + 1) for t in range(1, 64)) / 63  # a head that spreads its weight evenly: about 0.06
    assert previous.max() > 3 * even, previous


def _all_widget_models():
    import ipywidgets as widgets

    return widgets.Widget.get_manager_state(drop_defaults=True)["state"]


def test_explorer_widget_builds_with_client_side_links(explorer):
    import ipywidgets as widgets

    from buildgpt.viz import attention_explorer

    model, encode, decode = explorer
    before = {k for k, v in _all_widget_models().items() if v["model_name"] == "LinkModel"}
    sentences = ["To be, or not to be.", "KING RICHARD:\nA horse!"]
    w = attention_explorer(model, encode, decode, sentences)
    n_layers, n_heads = model.meta["config"]["n_layers"], model.meta["config"]["n_heads"]
    sentence_selector = next(c.children[1] for c in w.children if isinstance(c, widgets.HBox)
                             and isinstance(c.children[1], widgets.Dropdown))
    stack = w.children[-1]
    assert isinstance(stack, widgets.Stack) and len(stack.children) == len(sentences) + 1  # + "your text"
    assert len(sentence_selector.options) == len(sentences) + 1
    first = stack.children[0]
    assert len(first.children) == n_layers and all(len(h.children) == n_heads for h in first.children)
    links = [v for k, v in _all_widget_models().items() if v["model_name"] == "LinkModel" and k not in before]
    # sentence -> pages; layer -> each page's layer stack; head -> each (page, layer)'s head stack
    assert len(links) == 1 + (len(sentences) + 1) * (1 + n_layers)
    views = [h.value for page in stack.children[:-1] for layer in page.children for h in layer.children]
    assert len(views) == len(sentences) * n_layers * n_heads
    assert sum(len(v) for v in views) < 150_000, "the saved views must stay small"
    assert all("<script" not in v for v in views), "widget HTML runs no script"
    # with a kernel, the text box recomputes the views of the last page
    live = stack.children[-1]
    box = next(c for c in live.children if isinstance(c, widgets.Text))
    old = live.children[-1].children[0].children[0].value
    box.value = "Now is the winter of our discontent"
    assert live.children[-1].children[0].children[0].value != old
    box.value = "naïve"  # a character the model never saw: a sentence, not a traceback
    assert "never seen" in live.children[0].value


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_explorer_switches_views_in_a_browser_without_a_kernel(explorer, tmp_path):
    """The widget saved as static HTML (state and client-side links, no kernel), rendered by the vendored
    widget manager in headless Chromium: choosing another head, layer or sentence changes the heatmap."""
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed")
    if not Path(chromium).exists():
        pytest.skip("chromium is not installed")
    from ipywidgets.embed import embed_minimal_html

    from buildgpt.viz import attention_explorer

    model, encode, decode = explorer
    w = attention_explorer(model, encode, decode, ["To be, or not to be.", "KING RICHARD:\nA horse!"])
    shutil.copy(ROOT / "_vendor" / "widgets" / "embed.js", tmp_path / "embed.js")
    embed_minimal_html(tmp_path / "explorer.html", views=[w], state=_all_widget_models(), embed_url="embed.js")
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(tmp_path)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    flags = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync"]
    visible_heading = "Array.from(document.querySelectorAll('.bgt-att-view')).filter(e => e.offsetParent)" \
                      ".map(e => e.querySelector('.bgt-head').innerText + ' ' + e.querySelector('img').src.slice(-40))"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=flags)
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{httpd.server_address[1]}/explorer.html", wait_until="networkidle")
            page.wait_for_selector(".bgt-att-view", timeout=15_000)
            first = page.evaluate(visible_heading)
            assert len(first) == 1 and first[0].startswith("layer 0, head 0"), first
            page.locator(".widget-toggle-buttons").nth(1).locator("button").nth(2).click()  # head 2
            page.wait_for_timeout(300)
            head2 = page.evaluate(visible_heading)
            assert len(head2) == 1 and head2[0].startswith("layer 0, head 2") and head2 != first, head2
            page.locator(".widget-toggle-buttons").nth(0).locator("button").nth(1).click()  # layer 1
            page.wait_for_timeout(300)
            layer1 = page.evaluate(visible_heading)
            assert len(layer1) == 1 and layer1[0].startswith("layer 1, head 2"), layer1
            page.locator(".jupyter-widgets select").select_option(index=1)  # the second sentence
            page.wait_for_timeout(300)
            other = page.evaluate(visible_heading)
            assert len(other) == 1 and other[0].startswith("layer 1, head 2") and other != layer1, other
            row = page.locator(".bgt-att-view p").nth(3)
            assert "attends to" in row.get_attribute("title")
            browser.close()
    finally:
        httpd.shutdown()
