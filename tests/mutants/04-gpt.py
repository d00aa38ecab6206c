"""Plausible wrong answers to the exercises of chapter 4 (solutions/04-gpt.md).

Each mutant replaces the whole answer cell; the exercise's test cell must reject it.
"""

_LAYERNORM_INIT = '''
import torch
import torch.nn as nn


class LayerNorm(nn.Module):
    def __init__(self, d_model, eps=1e-5, bias=True):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model))
        self.bias = nn.Parameter(torch.zeros(d_model)) if bias else None
'''

_FFN_HEAD = '''
import torch
import torch.nn as nn
import torch.nn.functional as F


class FeedForward(nn.Module):
'''

_BLOCK_INIT = '''
import torch.nn as nn
from buildgpt.attention import MultiHeadAttention


class TransformerBlock(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.ln_1 = LayerNorm(config.d_model, bias=config.bias)
        self.attn = MultiHeadAttention(config.d_model, config.n_heads, dropout=config.dropout,
                                       bias=config.bias, use_fused=config.use_fused)
        self.drop = nn.Dropout(config.dropout)
        self.ln_2 = LayerNorm(config.d_model, bias=config.bias)
        self.mlp = FeedForward(config.d_model, config.dropout, config.bias)
'''

_INIT_HEAD = '''
import math

import torch.nn as nn


def init_gpt2_weights(model, n_layers, std=0.02):
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=std)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if isinstance(module, (LayerNorm, nn.LayerNorm)):
            nn.init.ones_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
'''

_GPT_INIT = '''
import torch
import torch.nn as nn
from buildgpt.attention import causal_mask


class GPT(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.d_model)
        self.pos_emb = nn.Embedding(config.context_length, config.d_model)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(TransformerBlock(config) for _ in range(config.n_layers))
        self.ln_f = LayerNorm(config.d_model, bias=config.bias)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
'''

_TIE_AND_INIT = '''
        self.lm_head.weight = self.tok_emb.weight
        init_gpt2_weights(self, config.n_layers)
'''

_COUNT_HEAD = '''
def count_gpt_parameters(config):
    C, L, b = config.d_model, config.n_layers, int(config.bias)
'''

_GREEDY_HEAD = '''
import torch


@torch.no_grad()
def generate_greedy(model, idx, max_new_tokens):
    context = model.config.context_length
    for _ in range(max_new_tokens):
'''

MUTANTS = {
    "ex-04-layernorm": {
        "unbiased variance (divides by C - 1, the default of x.var())": _LAYERNORM_INIT + '''
    def forward(self, x):
        mean = x.mean(dim=-1, keepdim=True)
        y = (x - mean) / torch.sqrt(x.var(dim=-1, keepdim=True) + self.eps) * self.weight
        return y if self.bias is None else y + self.bias
''',
        "eps added after the square root": _LAYERNORM_INIT + '''
    def forward(self, x):
        mean = x.mean(dim=-1, keepdim=True)
        std = x.var(dim=-1, keepdim=True, unbiased=False).sqrt()
        y = (x - mean) / (std + self.eps) * self.weight
        return y if self.bias is None else y + self.bias
''',
        "no eps at all: NaN on a constant row": _LAYERNORM_INIT + '''
    def forward(self, x):
        mean = x.mean(dim=-1, keepdim=True)
        y = (x - mean) / x.var(dim=-1, keepdim=True, unbiased=False).sqrt() * self.weight
        return y if self.bias is None else y + self.bias
''',
        "forgets the learned scale and shift": _LAYERNORM_INIT + '''
    def forward(self, x):
        mean = x.mean(dim=-1, keepdim=True)
        return (x - mean) / torch.sqrt(x.var(dim=-1, keepdim=True, unbiased=False) + self.eps)
''',
        "statistics over the first dimension instead of the last": _LAYERNORM_INIT + '''
    def forward(self, x):
        mean = x.mean(dim=0, keepdim=True)
        var = x.var(dim=0, keepdim=True, unbiased=False)
        y = (x - mean) / torch.sqrt(var + self.eps) * self.weight
        return y if self.bias is None else y + self.bias
''',
        "bias kept as a parameter even when bias=False": '''
import torch
import torch.nn as nn


class LayerNorm(nn.Module):
    def __init__(self, d_model, eps=1e-5, bias=True):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model))
        self.bias = nn.Parameter(torch.zeros(d_model))

    def forward(self, x):
        mean = x.mean(dim=-1, keepdim=True)
        var = x.var(dim=-1, keepdim=True, unbiased=False)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias
''',
    },
    "ex-04-gelu": {
        "the exact GELU (erf) instead of GPT-2's tanh approximation": '''
import math

import torch
import torch.nn as nn


class GELU(nn.Module):
    def forward(self, x):
        return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))
''',
        "cubic term forgotten": '''
import math

import torch
import torch.nn as nn


class GELU(nn.Module):
    def forward(self, x):
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * x))
''',
        "the sigmoid approximation x * sigmoid(1.702 x)": '''
import torch
import torch.nn as nn


class GELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)
''',
        "sqrt(2 / pi) replaced by 2 / pi": '''
import math

import torch
import torch.nn as nn


class GELU(nn.Module):
    def forward(self, x):
        return 0.5 * x * (1.0 + torch.tanh(2.0 / math.pi * (x + 0.044715 * x ** 3)))
''',
        "ReLU": '''
import torch
import torch.nn as nn


class GELU(nn.Module):
    def forward(self, x):
        return torch.relu(x)
''',
    },
    "ex-04-feedforward": {
        "expansion by 2 instead of 4": _FFN_HEAD + '''
    def __init__(self, d_model, dropout=0.0, bias=True):
        super().__init__()
        self.fc = nn.Linear(d_model, 2 * d_model, bias=bias)
        self.act = GELU()
        self.proj = nn.Linear(2 * d_model, d_model, bias=bias)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        return self.drop(self.proj(self.act(self.fc(x))))
''',
        "ReLU instead of GELU": _FFN_HEAD + '''
    def __init__(self, d_model, dropout=0.0, bias=True):
        super().__init__()
        self.fc = nn.Linear(d_model, 4 * d_model, bias=bias)
        self.proj = nn.Linear(4 * d_model, d_model, bias=bias)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        return self.drop(self.proj(F.relu(self.fc(x))))
''',
        "the exact GELU of PyTorch instead of the tanh form": _FFN_HEAD + '''
    def __init__(self, d_model, dropout=0.0, bias=True):
        super().__init__()
        self.fc = nn.Linear(d_model, 4 * d_model, bias=bias)
        self.proj = nn.Linear(4 * d_model, d_model, bias=bias)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        return self.drop(self.proj(F.gelu(self.fc(x))))
''',
        "dropout on the hidden layer instead of the output": _FFN_HEAD + '''
    def __init__(self, d_model, dropout=0.0, bias=True):
        super().__init__()
        self.fc = nn.Linear(d_model, 4 * d_model, bias=bias)
        self.act = GELU()
        self.proj = nn.Linear(4 * d_model, d_model, bias=bias)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        return self.proj(self.drop(self.act(self.fc(x))))
''',
        "bias argument ignored": _FFN_HEAD + '''
    def __init__(self, d_model, dropout=0.0, bias=True):
        super().__init__()
        self.fc = nn.Linear(d_model, 4 * d_model)
        self.act = GELU()
        self.proj = nn.Linear(4 * d_model, d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        return self.drop(self.proj(self.act(self.fc(x))))
''',
    },
    "ex-04-block": {
        "post-LN, as in the original Transformer": _BLOCK_INIT + '''
    def forward(self, x, mask):
        x = self.ln_1(x + self.drop(self.attn(x, mask=mask)))
        return self.ln_2(x + self.mlp(x))
''',
        "no residual around the attention": _BLOCK_INIT + '''
    def forward(self, x, mask):
        x = self.drop(self.attn(self.ln_1(x), mask=mask))
        return x + self.mlp(self.ln_2(x))
''',
        "no residual around the MLP": _BLOCK_INIT + '''
    def forward(self, x, mask):
        x = x + self.drop(self.attn(self.ln_1(x), mask=mask))
        return self.mlp(self.ln_2(x))
''',
        "the same LayerNorm before both sublayers": _BLOCK_INIT + '''
    def forward(self, x, mask):
        x = x + self.drop(self.attn(self.ln_1(x), mask=mask))
        return x + self.mlp(self.ln_1(x))
''',
        "the mask is not passed: tokens see the future": _BLOCK_INIT + '''
    def forward(self, x, mask):
        x = x + self.drop(self.attn(self.ln_1(x)))
        return x + self.mlp(self.ln_2(x))
''',
        "both sublayers read the block's input (parallel, not sequential)": _BLOCK_INIT + '''
    def forward(self, x, mask):
        return x + self.drop(self.attn(self.ln_1(x), mask=mask)) + self.mlp(self.ln_2(x))
''',
        "dropout, bias and use_fused not taken from the config": '''
import torch.nn as nn
from buildgpt.attention import MultiHeadAttention


class TransformerBlock(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.ln_1 = LayerNorm(config.d_model)
        self.attn = MultiHeadAttention(config.d_model, config.n_heads)
        self.drop = nn.Dropout(0.0)
        self.ln_2 = LayerNorm(config.d_model)
        self.mlp = FeedForward(config.d_model)

    def forward(self, x, mask):
        x = x + self.drop(self.attn(self.ln_1(x), mask=mask))
        return x + self.mlp(self.ln_2(x))
''',
    },
    "ex-04-init": {
        "residual projections not scaled": _INIT_HEAD,
        "scaled by 1 / sqrt(n_layers), forgetting the 2 residual additions per block": _INIT_HEAD + '''
    for name, p in model.named_parameters():
        if name.endswith(("attn.proj.weight", "mlp.proj.weight")):
            nn.init.normal_(p, mean=0.0, std=std / math.sqrt(n_layers))
''',
        "scales every weight of a block, not only the output projections": _INIT_HEAD + '''
    for name, p in model.named_parameters():
        if p.dim() == 2 and "emb" not in name:
            nn.init.normal_(p, mean=0.0, std=std / math.sqrt(2 * n_layers))
''',
        "biases left at PyTorch's default": '''
import math

import torch.nn as nn


def init_gpt2_weights(model, n_layers, std=0.02):
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=std)
    for name, p in model.named_parameters():
        if name.endswith(("attn.proj.weight", "mlp.proj.weight")):
            nn.init.normal_(p, mean=0.0, std=std / math.sqrt(2 * n_layers))
''',
        "embeddings left at Normal(0, 1)": '''
import math

import torch.nn as nn


def init_gpt2_weights(model, n_layers, std=0.02):
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        if isinstance(module, (LayerNorm, nn.LayerNorm)):
            nn.init.ones_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    for name, p in model.named_parameters():
        if name.endswith(("attn.proj.weight", "mlp.proj.weight")):
            nn.init.normal_(p, mean=0.0, std=std / math.sqrt(2 * n_layers))
''',
        "std argument ignored (always 0.02)": _INIT_HEAD.replace("std=std)", "std=0.02)") + '''
    for name, p in model.named_parameters():
        if name.endswith(("attn.proj.weight", "mlp.proj.weight")):
            nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * n_layers))
''',
    },
    "ex-04-gpt": {
        "untied head: a separate output matrix": _GPT_INIT + '''
        init_gpt2_weights(self, config.n_layers)

    def forward(self, idx):
        T = check_token_ids(idx, self.config)
        x = self.drop(self.tok_emb(idx) + self.pos_emb(torch.arange(T, device=idx.device)))
        for block in self.blocks:
            x = block(x, causal_mask(T, idx.device))
        return self.lm_head(self.ln_f(x))
''',
        "tied by copying the values, not sharing the parameter": _GPT_INIT + '''
        self.lm_head.weight.data.copy_(self.tok_emb.weight.data)
        init_gpt2_weights(self, config.n_layers)

    def forward(self, idx):
        T = check_token_ids(idx, self.config)
        x = self.drop(self.tok_emb(idx) + self.pos_emb(torch.arange(T, device=idx.device)))
        for block in self.blocks:
            x = block(x, causal_mask(T, idx.device))
        return self.lm_head(self.ln_f(x))
''',
        "no position embeddings in the forward pass": _GPT_INIT + _TIE_AND_INIT + '''
    def forward(self, idx):
        T = check_token_ids(idx, self.config)
        x = self.drop(self.tok_emb(idx))
        for block in self.blocks:
            x = block(x, causal_mask(T, idx.device))
        return self.lm_head(self.ln_f(x))
''',
        "no final LayerNorm": _GPT_INIT + _TIE_AND_INIT + '''
    def forward(self, idx):
        T = check_token_ids(idx, self.config)
        x = self.drop(self.tok_emb(idx) + self.pos_emb(torch.arange(T, device=idx.device)))
        for block in self.blocks:
            x = block(x, causal_mask(T, idx.device))
        return self.lm_head(x)
''',
        "no causal mask: every position sees the whole sequence": _GPT_INIT + _TIE_AND_INIT + '''
    def forward(self, idx):
        T = check_token_ids(idx, self.config)
        x = self.drop(self.tok_emb(idx) + self.pos_emb(torch.arange(T, device=idx.device)))
        everything = torch.ones(T, T, dtype=torch.bool, device=idx.device)
        for block in self.blocks:
            x = block(x, everything)
        return self.lm_head(self.ln_f(x))
''',
        "only the first block is applied": _GPT_INIT + _TIE_AND_INIT + '''
    def forward(self, idx):
        T = check_token_ids(idx, self.config)
        x = self.drop(self.tok_emb(idx) + self.pos_emb(torch.arange(T, device=idx.device)))
        x = self.blocks[0](x, causal_mask(T, idx.device))
        return self.lm_head(self.ln_f(x))
''',
        "position table sized by the vocabulary, and no dropout layer used": '''
import torch
import torch.nn as nn
from buildgpt.attention import causal_mask


class GPT(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.d_model)
        self.pos_emb = nn.Embedding(config.vocab_size, config.d_model)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(TransformerBlock(config) for _ in range(config.n_layers))
        self.ln_f = LayerNorm(config.d_model, bias=config.bias)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.lm_head.weight = self.tok_emb.weight
        init_gpt2_weights(self, config.n_layers)

    def forward(self, idx):
        T = check_token_ids(idx, self.config)
        x = self.tok_emb(idx) + self.pos_emb(torch.arange(T, device=idx.device))
        for block in self.blocks:
            x = block(x, causal_mask(T, idx.device))
        return self.lm_head(self.ln_f(x))
''',
    },
    "ex-04-count": {
        "the LM head counted separately (untied)": _COUNT_HEAD + '''
    counts = {
        "token embedding": 2 * config.vocab_size * C,
        "position embedding": config.context_length * C,
        "attention": L * (4 * C * C + 4 * C * b),
        "feed-forward": L * (8 * C * C + 5 * C * b),
        "layer norms": (2 * L + 1) * (C + C * b),
    }
    counts["total"] = sum(counts.values())
    return counts
''',
        "attention without the output projection": _COUNT_HEAD + '''
    counts = {
        "token embedding": config.vocab_size * C,
        "position embedding": config.context_length * C,
        "attention": L * (3 * C * C + 3 * C * b),
        "feed-forward": L * (8 * C * C + 5 * C * b),
        "layer norms": (2 * L + 1) * (C + C * b),
    }
    counts["total"] = sum(counts.values())
    return counts
''',
        "the final LayerNorm forgotten": _COUNT_HEAD + '''
    counts = {
        "token embedding": config.vocab_size * C,
        "position embedding": config.context_length * C,
        "attention": L * (4 * C * C + 4 * C * b),
        "feed-forward": L * (8 * C * C + 5 * C * b),
        "layer norms": 2 * L * (C + C * b),
    }
    counts["total"] = sum(counts.values())
    return counts
''',
        "biases always counted, even with bias=False": '''
def count_gpt_parameters(config):
    C, L = config.d_model, config.n_layers
    counts = {
        "token embedding": config.vocab_size * C,
        "position embedding": config.context_length * C,
        "attention": L * (4 * C * C + 4 * C),
        "feed-forward": L * (8 * C * C + 5 * C),
        "layer norms": (2 * L + 1) * 2 * C,
    }
    counts["total"] = sum(counts.values())
    return counts
''',
        "the MLP's output bias counted as 4C": _COUNT_HEAD + '''
    counts = {
        "token embedding": config.vocab_size * C,
        "position embedding": config.context_length * C,
        "attention": L * (4 * C * C + 4 * C * b),
        "feed-forward": L * (8 * C * C + 8 * C * b),
        "layer norms": (2 * L + 1) * (C + C * b),
    }
    counts["total"] = sum(counts.values())
    return counts
''',
    },
    "ex-04-greedy": {
        "no cropping to the context": _GREEDY_HEAD + '''
        logits = model(idx)
        idx = torch.cat([idx, logits[:, -1].argmax(dim=-1, keepdim=True)], dim=1)
    return idx
''',
        "crops to the first context_length tokens instead of the last": _GREEDY_HEAD + '''
        logits = model(idx[:, :context])
        idx = torch.cat([idx, logits[:, -1].argmax(dim=-1, keepdim=True)], dim=1)
    return idx
''',
        "argmax of the first position's logits": _GREEDY_HEAD + '''
        logits = model(idx[:, -context:])
        idx = torch.cat([idx, logits[:, 0].argmax(dim=-1, keepdim=True)], dim=1)
    return idx
''',
        "returns only the new tokens": _GREEDY_HEAD + '''
        logits = model(idx[:, -context:])
        idx = torch.cat([idx, logits[:, -1].argmax(dim=-1, keepdim=True)], dim=1)
    return idx[:, -max_new_tokens:]
''',
        "one token too few": _GREEDY_HEAD.replace("range(max_new_tokens)", "range(max_new_tokens - 1)") + '''
        logits = model(idx[:, -context:])
        idx = torch.cat([idx, logits[:, -1].argmax(dim=-1, keepdim=True)], dim=1)
    return idx
''',
    },
}
