"""buildgpt.model (exported from chapter 4): the configuration and its one-sentence errors, the
layers against PyTorch's own, parameter counts, GPT-2's names and initialization, weight tying,
causality, greedy generation, and the proof that the model is GPT-2: with the weights of a random
transformers GPT2LMHeadModel copied in, the logits agree to 1e-5 and the greedy continuation is the same."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from buildgpt.attention import causal_mask
from buildgpt.model import (GELU, GPT, PRESETS, FeedForward, GPTConfig, LayerNorm, TransformerBlock,
                            check_token_ids, check_vocab_size, count_gpt_parameters, generate_greedy,
                            init_gpt2_weights)


def randn(*shape, seed=0, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def small_config(**overrides) -> GPTConfig:
    return GPTConfig(**{**dict(vocab_size=100, context_length=32, d_model=64, n_heads=4, n_layers=2), **overrides})


# ----------------------------------------------------------------------------------------
# The configuration


def test_presets_have_the_gpt2_shapes():
    shapes = {name: (c.n_layers, c.n_heads, c.d_model, c.vocab_size, c.context_length)
              for name, c in ((n, GPTConfig.from_preset(n)) for n in ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl"))}
    assert shapes == {"gpt2": (12, 12, 768, 50257, 1024), "gpt2-medium": (24, 16, 1024, 50257, 1024),
                      "gpt2-large": (36, 20, 1280, 50257, 1024), "gpt2-xl": (48, 25, 1600, 50257, 1024)}
    for name in ("char-tiny", "char-small"):
        assert name in PRESETS and GPTConfig.from_preset(name).n_layers <= 8
    assert GPTConfig.from_preset("char-tiny", vocab_size=80).vocab_size == 80


def test_config_round_trips_and_is_frozen():
    config = small_config(dropout=0.1, bias=False)
    assert GPTConfig(**config.to_dict()) == config
    assert set(config.to_dict()) == {"vocab_size", "context_length", "d_model", "n_heads", "n_layers",
                                     "dropout", "bias", "use_fused"}
    with pytest.raises(Exception):
        config.d_model = 8  # frozen


@pytest.mark.parametrize("bad,pattern", [
    (dict(d_model=100, n_heads=12), r"d_model \(100\) must be divisible by n_heads \(12\)"),
    (dict(n_layers=0), r"n_layers must be a positive integer"),
    (dict(vocab_size=2.5), r"vocab_size must be a positive integer"),
    (dict(dropout=1.0), r"dropout must be in \[0, 1\)"),
])
def test_bad_config_fails_at_construction_in_one_sentence(bad, pattern):
    with pytest.raises(ValueError, match=pattern) as info:
        small_config(**bad)
    assert "\n" not in str(info.value)


def test_unknown_preset_names_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown preset 'gpt3'; choose one of gpt2, gpt2-medium"):
        GPTConfig.from_preset("gpt3")


# ----------------------------------------------------------------------------------------
# Bad input to the model


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return GPT(small_config()).eval()


@pytest.mark.parametrize("idx,pattern", [
    (torch.zeros(1, 33, dtype=torch.long), r"the sequence has 33 tokens but the model's context is 32; crop it"),
    (torch.tensor([[1, 100]]), r"token id 100 is outside the vocabulary of 100 ids"),
    (torch.tensor([[-1, 3]]), r"token id -1 is outside the vocabulary"),
    (torch.zeros(1, 4), r"token ids must be integers \(torch.long\); got torch.float32"),
    (torch.zeros(4, dtype=torch.long), r"the model reads a \(B, T\) tensor of token ids; got \(4,\)"),
    (torch.zeros(1, 0, dtype=torch.long), r"the sequence is empty"),
])
def test_bad_input_gets_one_sentence(model, idx, pattern):
    with pytest.raises(ValueError, match=pattern) as info:
        model(idx)
    assert "\n" not in str(info.value)


def test_vocabulary_smaller_than_the_tokenizers_is_refused():
    config = GPTConfig.from_preset("char-tiny")
    check_vocab_size(config, 65)  # fits exactly
    check_vocab_size(config, 10)  # a smaller tokenizer only leaves rows unused
    with pytest.raises(ValueError, match=r"the tokenizer has 66 ids but the model's vocab_size is 65; build the model with vocab_size=66"):
        check_vocab_size(config, 66)


def test_check_token_ids_returns_the_length():
    assert check_token_ids(torch.zeros(3, 7, dtype=torch.long), small_config()) == 7
    assert check_token_ids(torch.zeros(1, 32, dtype=torch.int32), small_config()) == 32


# ----------------------------------------------------------------------------------------
# The layers


@pytest.mark.parametrize("shape", [(5, 16), (2, 3, 16), (2, 3, 4, 16)])
@pytest.mark.parametrize("bias", [True, False])
def test_layernorm_matches_torch(shape, bias):
    ours, theirs = LayerNorm(16, bias=bias), nn.LayerNorm(16, bias=bias)
    with torch.no_grad():
        weight = randn(16, seed=1)
        ours.weight.copy_(weight)
        theirs.weight.copy_(weight)
        if bias:
            ours.bias.copy_(randn(16, seed=2))
            theirs.bias.copy_(randn(16, seed=2))
    x = randn(*shape, seed=3) * 7 + 3
    assert torch.allclose(ours(x), theirs(x), atol=1e-5)
    assert (ours.bias is None) == (not bias)


def test_layernorm_is_safe_on_constant_and_tiny_rows():
    flat = LayerNorm(8)(torch.full((2, 8), 4.0))
    assert torch.equal(flat, torch.zeros(2, 8))
    quiet = randn(3, 8, seed=4) * 1e-3
    assert torch.allclose(LayerNorm(8)(quiet), F.layer_norm(quiet, (8,)), atol=1e-5)


def test_gelu_is_the_tanh_approximation():
    x = torch.linspace(-8, 8, 1001, dtype=torch.float64)
    assert torch.allclose(GELU()(x), F.gelu(x, approximate="tanh"), atol=1e-12)
    gap = (GELU()(x) - F.gelu(x)).abs().max().item()
    assert 1e-4 < gap < 1e-3  # close to the exact GELU, and not the exact one


def test_feedforward_and_block_have_gpt2_shapes():
    ffn = FeedForward(64)
    assert tuple(ffn.fc.weight.shape) == (256, 64) and tuple(ffn.proj.weight.shape) == (64, 256)
    block = TransformerBlock(small_config())
    names = {n: tuple(p.shape) for n, p in block.named_parameters()}
    assert names == {"ln_1.weight": (64,), "ln_1.bias": (64,), "attn.qkv.weight": (192, 64), "attn.qkv.bias": (192,),
                     "attn.proj.weight": (64, 64), "attn.proj.bias": (64,), "ln_2.weight": (64,), "ln_2.bias": (64,),
                     "mlp.fc.weight": (256, 64), "mlp.fc.bias": (256,), "mlp.proj.weight": (64, 256), "mlp.proj.bias": (64,)}


def test_block_is_pre_ln_with_residuals():
    torch.manual_seed(1)
    block = TransformerBlock(small_config()).eval()
    x, mask = randn(2, 6, 64, seed=5), causal_mask(6)
    half = x + block.attn(block.ln_1(x), mask=mask)
    assert torch.allclose(block(x, mask), half + block.mlp(block.ln_2(half)), atol=1e-6)


# ----------------------------------------------------------------------------------------
# The model


def test_gpt2_small_has_124439808_parameters_without_allocating():
    config = GPTConfig.from_preset("gpt2")
    with torch.device("meta"):
        meta = GPT(config)
    assert sum(p.numel() for p in meta.parameters()) == 124_439_808
    assert count_gpt_parameters(config)["total"] == 124_439_808
    assert meta.lm_head.weight is meta.tok_emb.weight


@pytest.mark.parametrize("name", ["gpt2-medium", "gpt2-large", "gpt2-xl", "char-tiny", "char-small"])
def test_count_matches_the_module(name):
    with torch.device("meta"):
        meta = GPT(GPTConfig.from_preset(name))
    assert count_gpt_parameters(meta.config)["total"] == sum(p.numel() for p in meta.parameters())


def test_count_without_bias():
    config = small_config(bias=False)
    built = GPT(config)
    assert count_gpt_parameters(config)["total"] == sum(p.numel() for p in built.parameters())
    assert all(not n.endswith("bias") for n, _ in built.named_parameters())


def test_state_dict_uses_the_documented_names(model):
    names = set(model.state_dict())
    expected = {"tok_emb.weight", "pos_emb.weight", "ln_f.weight", "ln_f.bias", "lm_head.weight"}
    for i in range(2):
        expected |= {f"blocks.{i}.{part}" for part in (
            "ln_1.weight", "ln_1.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight", "attn.proj.bias",
            "ln_2.weight", "ln_2.bias", "mlp.fc.weight", "mlp.fc.bias", "mlp.proj.weight", "mlp.proj.bias")}
    assert names == expected


def test_head_is_tied_and_trains_as_one_matrix():
    torch.manual_seed(2)
    gpt = GPT(small_config())
    assert gpt.lm_head.weight is gpt.tok_emb.weight
    before = gpt.tok_emb.weight.detach().clone()
    optimizer = torch.optim.SGD(gpt.parameters(), lr=0.1)
    ids = torch.randint(0, 100, (2, 8))
    F.cross_entropy(gpt(ids).flatten(0, 1), ids.flatten()).backward()
    optimizer.step()
    assert not torch.equal(gpt.tok_emb.weight, before)
    assert gpt.lm_head.weight.data_ptr() == gpt.tok_emb.weight.data_ptr()


def test_gpt2_initialization():
    torch.manual_seed(3)
    gpt = GPT(small_config(d_model=128, n_layers=8))
    residual = 0.02 / math.sqrt(16)
    for name, p in gpt.named_parameters():
        if name.endswith(("attn.proj.weight", "mlp.proj.weight")):
            assert abs(p.std().item() - residual) < 0.1 * residual, name
        elif name.endswith("weight") and p.dim() == 2:
            assert abs(p.std().item() - 0.02) < 0.1 * 0.02, name
        elif ".ln" in name or name.startswith("ln_f"):
            assert torch.equal(p, torch.ones_like(p) if name.endswith("weight") else torch.zeros_like(p)), name
        else:
            assert name.endswith("bias") and p.abs().max().item() == 0.0, name


def test_loss_at_initialization_is_close_to_ln_vocab():
    torch.manual_seed(4)
    gpt = GPT(small_config(vocab_size=1000)).eval()
    ids = torch.randint(0, 1000, (4, 32), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        loss = F.cross_entropy(gpt(ids[:, :-1]).flatten(0, 1), ids[:, 1:].flatten()).item()
    assert abs(loss - math.log(1000)) < 0.1


def test_model_is_causal(model):
    ids = torch.randint(0, 100, (2, 20), generator=torch.Generator().manual_seed(6))
    changed = ids.clone()
    changed[:, 12:] = (changed[:, 12:] + 7) % 100
    with torch.no_grad():
        a, b = model(ids), model(changed)
    assert torch.allclose(a[:, :12], b[:, :12], atol=1e-6)
    assert not torch.allclose(a[:, 12:], b[:, 12:], atol=1e-3)


def test_fused_and_manual_attention_give_the_same_model():
    torch.manual_seed(7)
    fused = GPT(small_config(use_fused=True)).eval()
    manual = GPT(small_config(use_fused=False)).eval()
    manual.load_state_dict(fused.state_dict())
    ids = torch.randint(0, 100, (2, 32), generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        assert torch.allclose(fused(ids), manual(ids), atol=1e-5)


def test_dropout_only_in_training_mode():
    torch.manual_seed(8)
    gpt = GPT(small_config(dropout=0.2))
    ids = torch.randint(0, 100, (2, 10))
    assert not torch.equal(gpt(ids), gpt(ids))
    gpt.eval()
    assert torch.equal(gpt(ids), gpt(ids))


def test_generate_greedy_slides_past_the_context(model):
    ids = torch.randint(0, 100, (2, 30), generator=torch.Generator().manual_seed(9))
    out = generate_greedy(model, ids, 10)  # 40 tokens from a model whose context is 32
    assert tuple(out.shape) == (2, 40) and torch.equal(out[:, :30], ids)
    with torch.no_grad():
        last = model(out[:, -33:-1])[:, -1].argmax(-1)
    assert torch.equal(out[:, -1], last)  # the last token came from the last 32 tokens
    assert torch.equal(generate_greedy(model, ids, 0), ids)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_same_logits_on_gpu(model):
    ids = torch.randint(0, 100, (2, 16), generator=torch.Generator().manual_seed(10))
    gpu = GPT(model.config).cuda().eval()
    gpu.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert torch.allclose(gpu(ids.cuda()).cpu(), model(ids), atol=1e-4)


# ----------------------------------------------------------------------------------------
# The proof that it is GPT-2


OUR_NAMES_TO_GPT2 = [("tok_emb", "transformer.wte"), ("pos_emb", "transformer.wpe"), ("blocks.", "transformer.h."),
                     ("ln_f", "transformer.ln_f"), ("attn.qkv", "attn.c_attn"), ("attn.proj", "attn.c_proj"),
                     ("mlp.fc", "mlp.c_fc"), ("mlp.proj", "mlp.c_proj")]
CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def copy_from_hf(ours: GPT, theirs) -> None:
    source = theirs.state_dict()
    with torch.no_grad():
        for name, tensor in ours.state_dict().items():
            hf_name = name
            for mine, gpt2 in OUR_NAMES_TO_GPT2:
                hf_name = hf_name.replace(mine, gpt2)
            value = source[hf_name]
            tensor.copy_(value.T if hf_name.endswith(CONV1D) else value)  # Conv1D weights are (in, out)


@pytest.fixture(scope="module")
def gpt2_pair():
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    hf_config = transformers.GPT2Config(n_layer=2, n_head=4, n_embd=64, n_positions=32, vocab_size=100,
                                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    theirs = transformers.GPT2LMHeadModel(hf_config).eval()
    ours = GPT(small_config()).eval()
    copy_from_hf(ours, theirs)
    return ours, theirs


@pytest.mark.parametrize("use_fused", [True, False])
def test_same_logits_as_transformers_gpt2(gpt2_pair, use_fused):
    ours, theirs = gpt2_pair
    for block in ours.blocks:
        block.attn.use_fused = use_fused
    ids = torch.randint(0, 100, (4, 32), generator=torch.Generator().manual_seed(11))
    with torch.no_grad():
        gap = (ours(ids) - theirs(ids).logits).abs().max().item()
        short = (ours(ids[:, :5]) - theirs(ids[:, :5]).logits).abs().max().item()
    for block in ours.blocks:
        block.attn.use_fused = True
    assert gap < 1e-5 and short < 1e-5, f"largest logits difference {max(gap, short):.2e}"


def test_same_greedy_continuation_as_transformers_gpt2(gpt2_pair):
    ours, theirs = gpt2_pair
    prompt = torch.randint(0, 100, (3, 6), generator=torch.Generator().manual_seed(12))
    with torch.no_grad():
        expected = theirs.generate(prompt, max_new_tokens=20, do_sample=False,
                                   attention_mask=torch.ones_like(prompt), pad_token_id=0)
    assert torch.equal(generate_greedy(ours, prompt, 20), expected)


def test_the_mapping_covers_every_weight_of_gpt2(gpt2_pair):
    ours, theirs = gpt2_pair
    mapped = set()
    for name in ours.state_dict():
        for mine, gpt2 in OUR_NAMES_TO_GPT2:
            name = name.replace(mine, gpt2)
        mapped.add(name)
    assert {n for n, _ in theirs.named_parameters()} | {"lm_head.weight"} == mapped


def test_init_matches_transformers_statistics(gpt2_pair):
    """Our initialization and transformers' draw from the same distributions (GPT-2's)."""
    import transformers

    torch.manual_seed(13)
    config = transformers.GPT2Config(n_layer=6, n_head=4, n_embd=128, n_positions=64, vocab_size=500)
    theirs = transformers.GPT2LMHeadModel(config)
    ours = GPT(GPTConfig(vocab_size=500, context_length=64, d_model=128, n_heads=4, n_layers=6))
    reference = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        hf_name = name
        for mine, gpt2 in OUR_NAMES_TO_GPT2:
            hf_name = hf_name.replace(mine, gpt2)
        theirs_std = reference[hf_name].detach().float().std().item()
        assert abs(p.detach().float().std().item() - theirs_std) < 0.1 * max(theirs_std, 1e-3), name


# ----------------------------------------------------------------------------------------
# The fused kernels (issue 15): the same model, the same weights, the same numbers up to rounding


def test_fast_kernels_compute_the_taught_modules():
    from buildgpt.model import FastGELU, FastLayerNorm

    x = randn(3, 5, 16, seed=1) * 3
    ln = LayerNorm(16)
    with torch.no_grad():
        ln.weight.uniform_(0.5, 1.5)
        ln.bias.uniform_(-1, 1)
    fast_ln = FastLayerNorm(16)
    fast_ln.load_state_dict(ln.state_dict())
    assert torch.allclose(fast_ln(x), ln(x), atol=1e-5)
    assert torch.allclose(FastLayerNorm(16, bias=False)(x), LayerNorm(16, bias=False)(x), atol=1e-5)
    assert torch.allclose(FastGELU()(x), GELU()(x), atol=1e-6)


def test_fast_attention_is_causal_only_for_the_causal_mask():
    from buildgpt.attention import MultiHeadAttention
    from buildgpt.model import FastAttention, is_causal_mask

    torch.manual_seed(0)
    taught = MultiHeadAttention(32, 4, use_fused=True)
    fast = FastAttention(32, 4, use_fused=True)
    fast.load_state_dict(taught.state_dict())
    x = randn(2, 9, 32, seed=2)
    mask = causal_mask(9)
    assert is_causal_mask(mask, 9) and not is_causal_mask(mask.T, 9) and not is_causal_mask(torch.ones(9, 9, dtype=torch.bool), 9)
    # the same kernel, told rather than shown the mask: the same numbers
    assert torch.equal(fast(x, mask=mask), taught(x, mask=mask))
    other = torch.rand(9, 9, generator=torch.Generator().manual_seed(3)) > 0.3
    other |= torch.eye(9, dtype=torch.bool)
    assert torch.equal(fast(x, mask=other), taught(x, mask=other)), "another mask must be used as it is"
    assert torch.equal(fast(x), taught(x)), "no mask means no mask"
    out, weights = fast(x, mask=mask, return_weights=True)
    assert weights.shape == (2, 4, 9, 9) and torch.allclose(out, taught(x, mask=mask), atol=1e-6)


def test_use_fast_kernels_keeps_the_weights_and_switches_back():
    from buildgpt.model import use_fast_kernels

    torch.manual_seed(0)
    model = GPT(small_config())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ids = torch.randint(0, model.config.vocab_size, (2, model.config.context_length))
    targets = torch.randint(0, model.config.vocab_size, ids.shape)

    def logits_and_grads():
        model.zero_grad()
        logits = model(ids)
        F.cross_entropy(logits.flatten(0, 1), targets.flatten()).backward()
        return logits.detach(), [p.grad.clone() for p in model.parameters()]

    taught, taught_grads = logits_and_grads()
    assert use_fast_kernels(model) is model
    kinds = {type(m).__name__ for m in model.modules()}
    assert {"FastLayerNorm", "FastGELU", "FastAttention"} <= kinds and not {"LayerNorm", "GELU"} & kinds
    fast, fast_grads = logits_and_grads()
    assert torch.allclose(fast, taught, atol=1e-5)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(fast_grads, taught_grads))
    assert model.state_dict().keys() == before.keys()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())
    use_fast_kernels(model, enabled=False)
    kinds = {type(m).__name__ for m in model.modules()}
    assert {"LayerNorm", "GELU", "MultiHeadAttention"} <= kinds and not any(k.startswith("Fast") for k in kinds)
    assert torch.equal(model(ids), taught)


def test_gpt_takes_the_causal_path_by_default(monkeypatch):
    """GPT(config) hands its causal mask to the fused kernel as is_causal=True (no mask tensor), with the
    logits of chapter 3's boolean-mask path; use_fused=False keeps chapter 3's attention as it is."""
    from buildgpt.attention import MultiHeadAttention
    from buildgpt.model import FastAttention, use_fast_kernels

    torch.manual_seed(0)
    model = GPT(small_config()).eval()
    assert all(type(block.attn) is FastAttention for block in model.blocks)
    assert all(type(block.attn) is MultiHeadAttention for block in GPT(small_config(use_fused=False)).blocks)
    calls = []
    kernel = F.scaled_dot_product_attention

    def spy(*args, **kwargs):
        calls.append((kwargs.get("is_causal", False), kwargs.get("attn_mask")))
        return kernel(*args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    ids = torch.randint(0, 100, (3, 32), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        causal = model(ids)
        assert len(calls) == 2 and all(is_causal and mask is None for is_causal, mask in calls), calls
        calls.clear()
        use_fast_kernels(model, enabled=False)  # chapter 3's MultiHeadAttention: the boolean mask, read
        masked = model(ids)
    assert len(calls) == 2 and all(not is_causal and mask is not None for is_causal, mask in calls)
    assert torch.allclose(causal, masked, atol=1e-6)
    shifted = ids.clone()
    shifted[:, 20] = (shifted[:, 20] + 1) % 100
    use_fast_kernels(model)
    with torch.no_grad():
        assert torch.allclose(model(shifted)[:, :20], causal[:, :20], atol=1e-6), "the causal path sees the future"
