"""Plausible wrong answers to the exercises of chapter 6 (solutions/06-pretrained.md).

Each mutant replaces the whole answer cell; the exercise's test cell must reject it.
"""

_SHAPES_HEAD = '''
def gpt2_shapes(config):
    C, L = config.d_model, config.n_layers
    shapes = {"wte.weight": (config.vocab_size, C), "wpe.weight": (config.context_length, C)}
    for i in range(L):
        p = f"h.{i}."
'''

_CONVERT_HEAD = '''
import torch

GPT2_PARTS = {"wte": "tok_emb", "wpe": "pos_emb", "h": "blocks", "c_attn": "qkv", "c_fc": "fc", "c_proj": "proj"}
CONV1D_WEIGHTS = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
'''

_LOAD_CHECKS = '''
    params = dict(model.named_parameters())
    for name, param in params.items():
        if name not in state:
            raise ValueError(f"missing tensor {name}")
    for name, tensor in state.items():
        if name not in params:
            raise ValueError(f"extra tensor {name}")
        if tuple(tensor.shape) != tuple(params[name].shape):
            raise ValueError(f"tensor {name} has shape {tuple(tensor.shape)}, not {tuple(params[name].shape)}")
'''

_CACHE_FORWARD_HEAD = '''
import torch
import torch.nn.functional as F


def forward_cached(model, idx, cache):
    B, T = idx.shape
    past = cache.length
    if past + T > model.config.context_length:
        raise ValueError("too long")
'''

_CACHE_FORWARD_BLOCKS = '''
    for layer, block in enumerate(model.blocks):
        attn = block.attn
        q, k, v = attn.qkv(block.ln_1(x)).split(x.shape[-1], dim=-1)
        q, k, v = (t.view(B, T, attn.n_heads, attn.head_dim).transpose(1, 2) for t in (q, k, v))
        k, v = cache.update(layer, k, v)
'''

_SPEED_HEAD = '''
import statistics
import time

import torch


def tokens_per_second(generate_fn, idx, max_new_tokens, repeats=3):
'''

MUTANTS = {
    "ex-06-shapes": {
        "Conv1D weights in nn.Linear's (C_out, C_in) order": _SHAPES_HEAD + '''
        shapes.update({
            p + "ln_1.weight": (C,), p + "ln_1.bias": (C,),
            p + "attn.c_attn.weight": (3 * C, C), p + "attn.c_attn.bias": (3 * C,),
            p + "attn.c_proj.weight": (C, C), p + "attn.c_proj.bias": (C,),
            p + "ln_2.weight": (C,), p + "ln_2.bias": (C,),
            p + "mlp.c_fc.weight": (4 * C, C), p + "mlp.c_fc.bias": (4 * C,),
            p + "mlp.c_proj.weight": (C, 4 * C), p + "mlp.c_proj.bias": (C,),
        })
    shapes.update({"ln_f.weight": (C,), "ln_f.bias": (C,)})
    return shapes
''',
        "lists an lm_head.weight, which the tied file does not store": _SHAPES_HEAD + '''
        shapes.update({
            p + "ln_1.weight": (C,), p + "ln_1.bias": (C,),
            p + "attn.c_attn.weight": (C, 3 * C), p + "attn.c_attn.bias": (3 * C,),
            p + "attn.c_proj.weight": (C, C), p + "attn.c_proj.bias": (C,),
            p + "ln_2.weight": (C,), p + "ln_2.bias": (C,),
            p + "mlp.c_fc.weight": (C, 4 * C), p + "mlp.c_fc.bias": (4 * C,),
            p + "mlp.c_proj.weight": (4 * C, C), p + "mlp.c_proj.bias": (C,),
        })
    shapes.update({"ln_f.weight": (C,), "ln_f.bias": (C,), "lm_head.weight": (config.vocab_size, C)})
    return shapes
''',
        "c_attn bias of size C instead of 3C": _SHAPES_HEAD + '''
        shapes.update({
            p + "ln_1.weight": (C,), p + "ln_1.bias": (C,),
            p + "attn.c_attn.weight": (C, 3 * C), p + "attn.c_attn.bias": (C,),
            p + "attn.c_proj.weight": (C, C), p + "attn.c_proj.bias": (C,),
            p + "ln_2.weight": (C,), p + "ln_2.bias": (C,),
            p + "mlp.c_fc.weight": (C, 4 * C), p + "mlp.c_fc.bias": (4 * C,),
            p + "mlp.c_proj.weight": (4 * C, C), p + "mlp.c_proj.bias": (C,),
        })
    shapes.update({"ln_f.weight": (C,), "ln_f.bias": (C,)})
    return shapes
''',
        "GPT-2 small's sizes hard-coded instead of the config's": '''
def gpt2_shapes(config):
    C, L = 768, config.n_layers
    shapes = {"wte.weight": (50257, C), "wpe.weight": (1024, C)}
    for i in range(L):
        p = f"h.{i}."
        shapes.update({
            p + "ln_1.weight": (C,), p + "ln_1.bias": (C,),
            p + "attn.c_attn.weight": (C, 3 * C), p + "attn.c_attn.bias": (3 * C,),
            p + "attn.c_proj.weight": (C, C), p + "attn.c_proj.bias": (C,),
            p + "ln_2.weight": (C,), p + "ln_2.bias": (C,),
            p + "mlp.c_fc.weight": (C, 4 * C), p + "mlp.c_fc.bias": (4 * C,),
            p + "mlp.c_proj.weight": (4 * C, C), p + "mlp.c_proj.bias": (C,),
        })
    shapes.update({"ln_f.weight": (C,), "ln_f.bias": (C,)})
    return shapes
''',
    },
    "ex-06-convert": {
        "Conv1D weights not transposed": _CONVERT_HEAD + '''

def convert_gpt2(tensors):
    converted = {}
    for name, tensor in tensors.items():
        name = name.removeprefix("transformer.")
        if name == "lm_head.weight" or name.endswith((".attn.bias", ".attn.masked_bias")):
            continue
        converted[".".join(GPT2_PARTS.get(part, part) for part in name.split("."))] = tensor
    return converted
''',
        "transposes only the non-square weights, so attn.c_proj stays as stored": _CONVERT_HEAD + '''

def convert_gpt2(tensors):
    converted = {}
    for name, tensor in tensors.items():
        name = name.removeprefix("transformer.")
        if name == "lm_head.weight" or name.endswith((".attn.bias", ".attn.masked_bias")):
            continue
        if name.endswith(CONV1D_WEIGHTS) and tensor.shape[0] != tensor.shape[1]:
            tensor = tensor.t()
        converted[".".join(GPT2_PARTS.get(part, part) for part in name.split("."))] = tensor
    return converted
''',
        "transposes every 2-D tensor, the embeddings too": _CONVERT_HEAD + '''

def convert_gpt2(tensors):
    converted = {}
    for name, tensor in tensors.items():
        name = name.removeprefix("transformer.")
        if name == "lm_head.weight" or name.endswith((".attn.bias", ".attn.masked_bias")):
            continue
        if tensor.dim() == 2:
            tensor = tensor.t()
        converted[".".join(GPT2_PARTS.get(part, part) for part in name.split("."))] = tensor
    return converted
''',
        "c_attn split and put back in the wrong order (k, q, v)": _CONVERT_HEAD + '''

def convert_gpt2(tensors):
    converted = {}
    for name, tensor in tensors.items():
        name = name.removeprefix("transformer.")
        if name == "lm_head.weight" or name.endswith((".attn.bias", ".attn.masked_bias")):
            continue
        if name.endswith("c_attn.weight"):
            q, k, v = tensor.split(tensor.shape[0], dim=1)
            tensor = torch.cat([k, q, v], dim=1)
        if name.endswith(CONV1D_WEIGHTS):
            tensor = tensor.t()
        converted[".".join(GPT2_PARTS.get(part, part) for part in name.split("."))] = tensor
    return converted
''',
        "drops every name ending in attn.bias, the c_attn biases too": _CONVERT_HEAD + '''

def convert_gpt2(tensors):
    converted = {}
    for name, tensor in tensors.items():
        name = name.removeprefix("transformer.")
        if name == "lm_head.weight" or name.endswith(("attn.bias", "attn.masked_bias")):
            continue
        if name.endswith(CONV1D_WEIGHTS):
            tensor = tensor.t()
        converted[".".join(GPT2_PARTS.get(part, part) for part in name.split("."))] = tensor
    return converted
''',
        "keeps the transformer. prefix and lm_head.weight": _CONVERT_HEAD + '''

def convert_gpt2(tensors):
    converted = {}
    for name, tensor in tensors.items():
        if name.endswith((".attn.bias", ".attn.masked_bias")):
            continue
        if name.endswith(CONV1D_WEIGHTS):
            tensor = tensor.t()
        converted[".".join(GPT2_PARTS.get(part, part) for part in name.split("."))] = tensor
    return converted
''',
    },
    "ex-06-load": {
        "no check for extra tensors: they are silently ignored": '''
import torch


def load_into(model, state):
    params = dict(model.named_parameters())
    for name, param in params.items():
        if name not in state:
            raise ValueError(f"missing tensor {name}")
        if tuple(state[name].shape) != tuple(param.shape):
            raise ValueError(f"tensor {name} has shape {tuple(state[name].shape)}, not {tuple(param.shape)}")
    with torch.no_grad():
        for name, param in params.items():
            param.copy_(state[name])
    return model
''',
        "no shape check: copy_ broadcasts or fails with PyTorch's own error": '''
import torch


def load_into(model, state):
    params = dict(model.named_parameters())
    for name in params:
        if name not in state:
            raise ValueError(f"missing tensor {name}")
    for name in state:
        if name not in params:
            raise ValueError(f"extra tensor {name}")
    with torch.no_grad():
        for name, param in params.items():
            param.copy_(state[name])
    return model
''',
        "copies while checking, so a failed load leaves a half-loaded model": '''
import torch


def load_into(model, state):
    params = dict(model.named_parameters())
    for name in params:
        if name not in state:
            raise ValueError(f"missing tensor {name}")
    with torch.no_grad():
        for name, tensor in state.items():
            if name not in params:
                raise ValueError(f"extra tensor {name}")
            if tuple(tensor.shape) != tuple(params[name].shape):
                raise ValueError(f"tensor {name} has shape {tuple(tensor.shape)}, not {tuple(params[name].shape)}")
            params[name].copy_(tensor)
    return model
''',
        "replaces the parameters instead of filling them, which unties the head": '''
import torch
import torch.nn as nn


def load_into(model, state):
''' + _LOAD_CHECKS + '''
    for name in params:
        owner, _, leaf = name.rpartition(".")
        setattr(model.get_submodule(owner), leaf, nn.Parameter(state[name].float().clone()))
    return model
''',
        "messages that do not name the tensor": '''
import torch


def load_into(model, state):
    params = dict(model.named_parameters())
    if set(params) != set(state) or any(tuple(state[n].shape) != tuple(p.shape) for n, p in params.items()):
        raise ValueError("the checkpoint does not match the model (missing, extra or wrong-shape tensors)")
    with torch.no_grad():
        for name, param in params.items():
            param.copy_(state[name])
    return model
''',
    },
    "ex-06-kvcache": {
        "appends along the heads dimension (dim 1) instead of time": '''
import torch


class KVCache:
    def __init__(self, n_layers):
        self.keys = [None] * n_layers
        self.values = [None] * n_layers

    def update(self, layer, k, v):
        if self.keys[layer] is not None:
            k = torch.cat([self.keys[layer], k], dim=1)
            v = torch.cat([self.values[layer], v], dim=1)
        self.keys[layer], self.values[layer] = k, v
        return k, v

    @property
    def length(self):
        return 0 if self.keys[0] is None else self.keys[0].shape[2]
''',
        "appends along the last dimension (head_dim)": '''
import torch


class KVCache:
    def __init__(self, n_layers):
        self.keys = [None] * n_layers
        self.values = [None] * n_layers

    def update(self, layer, k, v):
        if self.keys[layer] is not None:
            k = torch.cat([self.keys[layer], k], dim=-1)
            v = torch.cat([self.values[layer], v], dim=-1)
        self.keys[layer], self.values[layer] = k, v
        return k, v

    @property
    def length(self):
        return 0 if self.keys[0] is None else self.keys[0].shape[2]
''',
        "returns only the new keys and values": '''
import torch


class KVCache:
    def __init__(self, n_layers):
        self.keys = [None] * n_layers
        self.values = [None] * n_layers

    def update(self, layer, k, v):
        if self.keys[layer] is not None:
            self.keys[layer] = torch.cat([self.keys[layer], k], dim=2)
            self.values[layer] = torch.cat([self.values[layer], v], dim=2)
        else:
            self.keys[layer], self.values[layer] = k, v
        return k, v

    @property
    def length(self):
        return 0 if self.keys[0] is None else self.keys[0].shape[2]
''',
        "length reads the number of heads (dim 1)": '''
import torch


class KVCache:
    def __init__(self, n_layers):
        self.keys = [None] * n_layers
        self.values = [None] * n_layers

    def update(self, layer, k, v):
        if self.keys[layer] is not None:
            k = torch.cat([self.keys[layer], k], dim=2)
            v = torch.cat([self.values[layer], v], dim=2)
        self.keys[layer], self.values[layer] = k, v
        return k, v

    @property
    def length(self):
        return 0 if self.keys[0] is None else self.keys[0].shape[1]
''',
        "one store shared by every layer": '''
import torch


class KVCache:
    def __init__(self, n_layers):
        self.keys = [None] * n_layers
        self.values = [None] * n_layers
        self.k_all = self.v_all = None

    def update(self, layer, k, v):
        if self.k_all is not None:
            k = torch.cat([self.k_all, k], dim=2)
            v = torch.cat([self.v_all, v], dim=2)
        self.k_all, self.v_all = k, v
        self.keys[layer], self.values[layer] = k, v
        return k, v

    @property
    def length(self):
        return 0 if self.k_all is None else self.k_all.shape[2]
''',
    },
    "ex-06-cached-forward": {
        "position offset forgotten: every chunk starts at position 0": _CACHE_FORWARD_HEAD + '''
    x = model.drop(model.tok_emb(idx) + model.pos_emb(torch.arange(T, device=idx.device)))
    allowed = torch.ones(T, past + T, dtype=torch.bool, device=idx.device).tril(diagonal=past)
''' + _CACHE_FORWARD_BLOCKS + '''
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
        x = x + block.drop(attn.proj(out.transpose(1, 2).reshape(B, T, -1)))
        x = x + block.mlp(block.ln_2(x))
    return model.lm_head(model.ln_f(x))
''',
        "is_causal=True, which aligns the mask to the first cached key, not the new queries": _CACHE_FORWARD_HEAD + '''
    x = model.drop(model.tok_emb(idx) + model.pos_emb(torch.arange(past, past + T, device=idx.device)))
''' + _CACHE_FORWARD_BLOCKS + '''
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + block.drop(attn.proj(out.transpose(1, 2).reshape(B, T, -1)))
        x = x + block.mlp(block.ln_2(x))
    return model.lm_head(model.ln_f(x))
''',
        "no mask at all, so the prompt sees its own future": _CACHE_FORWARD_HEAD + '''
    x = model.drop(model.tok_emb(idx) + model.pos_emb(torch.arange(past, past + T, device=idx.device)))
''' + _CACHE_FORWARD_BLOCKS + '''
        out = F.scaled_dot_product_attention(q, k, v)
        x = x + block.drop(attn.proj(out.transpose(1, 2).reshape(B, T, -1)))
        x = x + block.mlp(block.ln_2(x))
    return model.lm_head(model.ln_f(x))
''',
        "the causal mask of the new tokens only, not shifted by the cache length": _CACHE_FORWARD_HEAD + '''
    x = model.drop(model.tok_emb(idx) + model.pos_emb(torch.arange(past, past + T, device=idx.device)))
    allowed = torch.ones(T, T, dtype=torch.bool, device=idx.device).tril()
''' + _CACHE_FORWARD_BLOCKS + '''
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
        x = x + block.drop(attn.proj(out.transpose(1, 2).reshape(B, T, -1)))
        x = x + block.mlp(block.ln_2(x))
    return model.lm_head(model.ln_f(x))
''',
        "forgets the final layer norm": _CACHE_FORWARD_HEAD + '''
    x = model.drop(model.tok_emb(idx) + model.pos_emb(torch.arange(past, past + T, device=idx.device)))
    allowed = torch.ones(T, past + T, dtype=torch.bool, device=idx.device).tril(diagonal=past)
''' + _CACHE_FORWARD_BLOCKS + '''
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
        x = x + block.drop(attn.proj(out.transpose(1, 2).reshape(B, T, -1)))
        x = x + block.mlp(block.ln_2(x))
    return model.lm_head(x)
''',
    },
    "ex-06-speed": {
        "counts the prompt's tokens too": _SPEED_HEAD + '''
    generate_fn(idx, max_new_tokens)
    speeds = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = generate_fn(idx, max_new_tokens)
        speeds.append(out.numel() / (time.perf_counter() - start))
    return float(statistics.median(speeds))
''',
        "forgets the batch: counts one row's tokens": _SPEED_HEAD + '''
    generate_fn(idx, max_new_tokens)
    speeds = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = generate_fn(idx, max_new_tokens)
        speeds.append((out.shape[1] - idx.shape[1]) / (time.perf_counter() - start))
    return float(statistics.median(speeds))
''',
        "no warm-up call": _SPEED_HEAD + '''
    speeds = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = generate_fn(idx, max_new_tokens)
        speeds.append(idx.shape[0] * (out.shape[1] - idx.shape[1]) / (time.perf_counter() - start))
    return float(statistics.median(speeds))
''',
        "the mean of the speeds, which one slow call drags down": _SPEED_HEAD + '''
    generate_fn(idx, max_new_tokens)
    speeds = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = generate_fn(idx, max_new_tokens)
        speeds.append(idx.shape[0] * (out.shape[1] - idx.shape[1]) / (time.perf_counter() - start))
    return float(sum(speeds) / len(speeds))
''',
        "assumes every call produced max_new_tokens tokens": _SPEED_HEAD + '''
    generate_fn(idx, max_new_tokens)
    speeds = []
    for _ in range(repeats):
        start = time.perf_counter()
        generate_fn(idx, max_new_tokens)
        speeds.append(idx.shape[0] * max_new_tokens / (time.perf_counter() - start))
    return float(statistics.median(speeds))
''',
    },
}
