"""buildgpt.pretrained and the KV cache of buildgpt.model, offline.

A small GPT-2 is written with Hugging Face's own `GPT2LMHeadModel.save_pretrained`, so the loader
reads a real model.safetensors (and config.json) in the layout OpenAI's weights are published in;
our logits must match transformers' to 1e-5. Nothing here reaches the network: downloads go to a
closed local port or to a local HTTP server.
"""

from __future__ import annotations

import http.server
import threading
import time
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")
safetensors_torch = pytest.importorskip("safetensors.torch")

from buildgpt.model import GPT, GPTConfig, KVCache, forward_cached, generate  # noqa: E402
from buildgpt.pretrained import download_gpt2, gpt2_path, gpt2_shapes, gpt2_url, load_gpt2  # noqa: E402


def small_hf_model(seed: int = 0, n_embd: int = 32, n_head: int = 4, n_layer: int = 3, vocab: int = 97, positions: int = 40):
    torch.manual_seed(seed)
    config = transformers.GPT2Config(vocab_size=vocab, n_positions=positions, n_embd=n_embd, n_layer=n_layer,
                                     n_head=n_head, bos_token_id=0, eos_token_id=0)
    model = transformers.GPT2LMHeadModel(config).eval()
    with torch.no_grad():  # HF initializes biases and layer norms to 0 and 1: make every tensor count
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


@pytest.fixture(scope="module")
def hf_checkpoint(tmp_path_factory):
    """(folder written by save_pretrained, the transformers model)."""
    model = small_hf_model()
    folder = tmp_path_factory.mktemp("hf-gpt2")
    model.save_pretrained(folder)
    assert (folder / "model.safetensors").is_file()
    return folder, model


def hf_logits(model, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(ids).logits


def test_logits_match_transformers(hf_checkpoint):
    folder, hf = hf_checkpoint
    ours = load_gpt2(folder)
    assert isinstance(ours, GPT) and not ours.training
    # 4 heads of 8 channels: not GPT-2's 64 per head, so the heads must come from config.json
    assert (ours.config.vocab_size, ours.config.context_length, ours.config.d_model,
            ours.config.n_heads, ours.config.n_layers) == (97, 40, 32, 4, 3)
    ids = torch.randint(0, 97, (3, 40), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        gap = (ours(ids) - hf_logits(hf, ids)).abs().max().item()
    assert gap < 1e-5, f"our logits differ from transformers' by {gap}"
    assert ours.lm_head.weight is ours.tok_emb.weight


def test_file_path_and_cached_name(hf_checkpoint, tmp_path, monkeypatch):
    folder, hf = hf_checkpoint
    ids = torch.randint(0, 97, (1, 12), generator=torch.Generator().manual_seed(2))
    from_file = load_gpt2(folder / "model.safetensors")
    monkeypatch.setenv("BUILDGPT_CACHE", str(tmp_path / "cache"))
    target = gpt2_path("gpt2")
    assert target == tmp_path / "cache" / "gpt2" / "model.safetensors"
    target.parent.mkdir(parents=True)
    target.write_bytes((folder / "model.safetensors").read_bytes())
    (target.parent / "config.json").write_bytes((folder / "config.json").read_bytes())
    from_cache = load_gpt2("gpt2")
    with torch.no_grad():
        reference = hf_logits(hf, ids)
        assert (from_file(ids) - reference).abs().max().item() < 1e-5
        assert (from_cache(ids) - reference).abs().max().item() < 1e-5


def test_the_hub_layout_without_prefix_with_mask_buffers(tmp_path):
    """OpenAI's gpt2 model.safetensors: bare names (h.0..., wte), and the causal masks h.i.attn.bias."""
    hf = small_hf_model(seed=3, n_embd=64, n_head=1, n_layer=2)
    tensors = {k.removeprefix("transformer."): v.contiguous() for k, v in hf.state_dict().items() if k != "lm_head.weight"}
    for i in range(2):
        tensors[f"h.{i}.attn.bias"] = torch.ones(1, 1, 40, 40).tril()
    safetensors_torch.save_file(tensors, tmp_path / "model.safetensors")  # no config.json: 64 channels per head
    ours = load_gpt2(tmp_path)
    assert ours.config.n_heads == 1
    ids = torch.randint(0, 97, (2, 17), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        assert (ours(ids) - hf_logits(hf, ids)).abs().max().item() < 1e-5


def test_shapes_match_what_transformers_saves(hf_checkpoint):
    folder, _ = hf_checkpoint
    saved = safetensors_torch.load_file(folder / "model.safetensors")
    bare = {k.removeprefix("transformer."): tuple(v.shape) for k, v in saved.items()}
    config = GPTConfig(vocab_size=97, context_length=40, d_model=32, n_heads=4, n_layers=3)
    assert bare == gpt2_shapes(config)


def damaged(folder: Path, tmp_path: Path, change) -> Path:
    tensors = safetensors_torch.load_file(folder / "model.safetensors")
    change(tensors)
    out = tmp_path / "damaged"
    out.mkdir()
    safetensors_torch.save_file(tensors, out / "model.safetensors")
    (out / "config.json").write_bytes((folder / "config.json").read_bytes())
    return out


@pytest.mark.parametrize("change,words", [
    (lambda t: t.pop("transformer.h.2.mlp.c_proj.bias"), ["missing", "'h.2.mlp.c_proj.bias'"]),
    (lambda t: t.update({"transformer.h.1.attn.extra.weight": torch.zeros(2)}), ["extra", "'h.1.attn.extra.weight'"]),
    (lambda t: t.update({"transformer.h.0.attn.c_proj.weight": torch.zeros(32, 33)}),
     ["'h.0.attn.c_proj.weight'", "(32, 33)", "(32, 32)"]),
    (lambda t: t.update({"transformer.h.1.mlp.c_fc.weight": t["transformer.h.1.mlp.c_fc.weight"].T.contiguous()}),
     ["'h.1.mlp.c_fc.weight'", "(128, 32)", "(32, 128)"]),
    (lambda t: t.pop("transformer.wte.weight"), ["'wte.weight'"]),
], ids=["missing", "extra", "wrong-shape", "left-transposed", "no-embedding"])
def test_a_damaged_checkpoint_is_named_in_one_sentence(hf_checkpoint, tmp_path, change, words):
    folder, _ = hf_checkpoint
    with pytest.raises(ValueError) as info:
        load_gpt2(damaged(folder, tmp_path, change))
    message = str(info.value)
    assert "\n" not in message and message.endswith((".", "?")), message
    for word in words:
        assert word in message, f"{word!r} not in: {message}"


def test_missing_and_unreadable_files(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="No GPT-2 checkpoint at"):
        load_gpt2(tmp_path / "nowhere")
    monkeypatch.setenv("BUILDGPT_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(FileNotFoundError) as info:
        load_gpt2("gpt2-medium")
    message = str(info.value)
    assert "download_gpt2('gpt2-medium')" in message and gpt2_url("gpt2-medium") in message
    assert str(tmp_path / "empty-cache" / "gpt2-medium" / "model.safetensors") in message
    (tmp_path / "html").mkdir()
    (tmp_path / "html" / "model.safetensors").write_text("<html>rate limited</html>")
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load_gpt2(tmp_path / "html")
    with pytest.raises(ValueError, match="Unknown GPT-2 size 'gpt3'"):
        download_gpt2("gpt3")


def test_offline_download_says_where_to_put_the_file_and_does_not_hang(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.setenv("BUILDGPT_CACHE", str(tmp_path))
    start = time.perf_counter()
    with pytest.raises(ConnectionError) as info:
        download_gpt2("gpt2-large", timeout=2)
    assert time.perf_counter() - start < 5
    message = str(info.value)
    assert "http://127.0.0.1:9/openai-community/gpt2-large/resolve/main/model.safetensors" in message
    assert str(tmp_path / "gpt2-large" / "model.safetensors") in message and "\n" not in message
    assert not any((tmp_path / "gpt2-large").glob("*")), "a failed download should leave no file behind"


def test_real_huggingface_url(monkeypatch):
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    assert gpt2_url("gpt2") == "https://huggingface.co/openai-community/gpt2/resolve/main/model.safetensors"
    assert gpt2_url("gpt2-xl") == "https://huggingface.co/openai-community/gpt2-xl/resolve/main/model.safetensors"


class _Files(http.server.BaseHTTPRequestHandler):
    payload = b""
    requests: list[str] = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        type(self).requests.append(self.path)
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.payload)))
        self.end_headers()
        self.wfile.write(self.payload)

    def log_message(self, *args):
        pass


def test_download_caches_the_file_once(hf_checkpoint, tmp_path, monkeypatch):
    folder, hf = hf_checkpoint
    _Files.payload = (folder / "model.safetensors").read_bytes()
    _Files.requests = []
    server = http.server.HTTPServer(("127.0.0.1", 0), _Files)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
        monkeypatch.setenv("BUILDGPT_CACHE", str(tmp_path))
        path = download_gpt2("gpt2")
        assert path == tmp_path / "gpt2" / "model.safetensors" and path.read_bytes() == _Files.payload
        assert download_gpt2("gpt2") == path
        assert _Files.requests == ["/openai-community/gpt2/resolve/main/model.safetensors"], _Files.requests
        assert sorted(p.name for p in path.parent.iterdir()) == ["model.safetensors"]
    finally:
        server.shutdown()
    (path.parent / "config.json").write_bytes((folder / "config.json").read_bytes())
    ids = torch.randint(0, 97, (1, 9), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        assert (load_gpt2("gpt2")(ids) - hf_logits(hf, ids)).abs().max().item() < 1e-5


# ---------------------------------------------------------------------------------------------
# The KV cache


def test_greedy_generation_matches_transformers(hf_checkpoint):
    folder, hf = hf_checkpoint
    ours = load_gpt2(folder)
    prompt = torch.randint(1, 97, (1, 6), generator=torch.Generator().manual_seed(6))
    theirs = hf.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=20, do_sample=False,
                         pad_token_id=0, eos_token_id=None)
    assert torch.equal(generate(ours, prompt, 20), theirs)
    assert torch.equal(generate(ours, prompt, 20, use_cache=False), theirs)


@pytest.mark.parametrize("settings", [{}, {"temperature": 1.0}, {"temperature": 0.7, "top_k": 10},
                                      {"temperature": 1.2, "top_p": 0.8}])
def test_cache_gives_the_same_tokens_even_past_the_context(settings):
    torch.manual_seed(7)
    model = GPT(GPTConfig(vocab_size=53, context_length=12, d_model=16, n_heads=2, n_layers=2))
    prompt = torch.randint(0, 53, (3, 5), generator=torch.Generator().manual_seed(8))
    runs = [generate(model, prompt, 25, use_cache=cached, generator=torch.Generator().manual_seed(9), **settings)
            for cached in (True, False)]
    assert runs[0].shape == (3, 30)
    assert torch.equal(runs[0], runs[1])
    assert model.training, "generate should give the model back in the mode it came in"


def test_cached_forward_matches_the_full_forward_in_chunks():
    torch.manual_seed(10)
    model = GPT(GPTConfig(vocab_size=31, context_length=20, d_model=24, n_heads=3, n_layers=2)).eval()
    ids = torch.randint(0, 31, (2, 20), generator=torch.Generator().manual_seed(11))
    cache = KVCache(2)
    with torch.no_grad():
        pieces = [forward_cached(model, ids[:, a:b], cache) for a, b in [(0, 7), (7, 8), (8, 15), (15, 20)]]
        full = model(ids)
    assert (torch.cat(pieces, dim=1) - full).abs().max().item() < 1e-5
    assert cache.length == 20 and cache.keys[1].shape == (2, 3, 20, 8)
    with pytest.raises(ValueError, match="exceed the context"):
        forward_cached(model, ids[:, :1], cache)


def test_generate_stops_at_eos_and_refuses_bad_input():
    torch.manual_seed(12)
    model = GPT(GPTConfig(vocab_size=10, context_length=16, d_model=8, n_heads=2, n_layers=1)).eval()
    prompt = torch.tensor([[1, 2, 3]])
    first = generate(model, prompt, 1)[0, -1].item()
    assert generate(model, prompt, 10, eos_id=first).shape == (1, 4)
    with pytest.raises(ValueError, match="int64"):
        generate(model, prompt.float(), 3)
    with pytest.raises(ValueError, match="temperature"):
        generate(model, prompt, 3, temperature=-1.0)
