"""Plausible wrong answers to the exercises of chapter 3 (solutions/03-attention.md).

Each mutant replaces the whole answer cell; the exercise's test cell must reject it.
"""

MUTANTS = {
    "ex-03-simple-attention": {
        "softmax over the queries (dim=-2), so columns sum to 1 instead of rows": '''
import torch


def simple_self_attention(x):
    weights = torch.softmax(x @ x.transpose(-2, -1), dim=-2)
    return weights @ x, weights
''',
        "no softmax: raw dot products used as weights": '''
import torch


def simple_self_attention(x):
    scores = x @ x.transpose(-2, -1)
    return scores @ x, scores
''',
        ".T reverses every dimension, so batches attend across sequences": '''
import torch


def simple_self_attention(x):
    weights = torch.softmax(x @ x.T, dim=-1)
    return weights @ x, weights
''',
        "scaled by sqrt(C), which the weight-free version does not do": '''
import math

import torch


def simple_self_attention(x):
    weights = torch.softmax(x @ x.transpose(-2, -1) / math.sqrt(x.shape[-1]), dim=-1)
    return weights @ x, weights
''',
        "output multiplies the weights by the transposed input": '''
import torch


def simple_self_attention(x):
    weights = torch.softmax(x @ x.transpose(-2, -1), dim=-1)
    return weights.transpose(-2, -1) @ x, weights
''',
    },
    "ex-03-softmax": {
        "no max subtraction: overflows on large scores": '''
import torch


def softmax(x, dim=-1):
    e = x.exp()
    return e / e.sum(dim=dim, keepdim=True)
''',
        "softmax over the last dimension whatever dim says": '''
import torch


def softmax(x, dim=-1):
    e = (x - x.amax(dim=-1, keepdim=True)).exp()
    return e / e.sum(dim=-1, keepdim=True)
''',
        "subtracts the maximum of the whole tensor, not of each slice": '''
import torch


def softmax(x, dim=-1):
    e = (x - x.max()).exp()
    return e / e.sum(dim=dim, keepdim=True)
''',
        "subtracts the minimum instead of the maximum": '''
import torch


def softmax(x, dim=-1):
    e = (x - x.amin(dim=dim, keepdim=True)).exp()
    return e / e.sum(dim=dim, keepdim=True)
''',
        "calls torch.softmax instead of writing it": '''
import torch


def softmax(x, dim=-1):
    return torch.softmax(x, dim=dim)
''',
    },
    "ex-03-causal-mask": {
        "flipped: True above the diagonal (the future)": '''
import torch


def causal_mask(T, device=None):
    return torch.ones(T, T, dtype=torch.bool, device=device).triu()
''',
        "diagonal excluded: a token may not attend to itself": '''
import torch


def causal_mask(T, device=None):
    return torch.ones(T, T, dtype=torch.bool, device=device).tril(diagonal=-1)
''',
        "a float 0/1 mask instead of a bool one": '''
import torch


def causal_mask(T, device=None):
    return torch.tril(torch.ones(T, T, device=device))
''',
        "True marks what is blocked (the opposite convention)": '''
import torch


def causal_mask(T, device=None):
    return ~torch.ones(T, T, dtype=torch.bool, device=device).tril()
''',
    },
    "ex-03-sdpa": {
        "unscaled scores": '''
import torch
import torch.nn.functional as F


def scaled_dot_product_attention(q, k, v, mask=None, dropout_p=0.0):
    scores = q @ k.transpose(-2, -1)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = softmax(scores, dim=-1)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ v, weights
''',
        "k.transpose(1, 2): the last two dimensions only for 3-D inputs": '''
import math

import torch
import torch.nn.functional as F


def scaled_dot_product_attention(q, k, v, mask=None, dropout_p=0.0):
    scores = q @ k.transpose(1, 2) / math.sqrt(q.size(-1))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = softmax(scores, dim=-1)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ v, weights
''',
        "divided by d_k instead of sqrt(d_k)": '''
import torch
import torch.nn.functional as F


def scaled_dot_product_attention(q, k, v, mask=None, dropout_p=0.0):
    scores = q @ k.transpose(-2, -1) / q.size(-1)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = softmax(scores, dim=-1)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ v, weights
''',
        "scaled by sqrt of the number of keys T, not of d_k": '''
import math

import torch
import torch.nn.functional as F


def scaled_dot_product_attention(q, k, v, mask=None, dropout_p=0.0):
    scores = q @ k.transpose(-2, -1) / math.sqrt(k.size(-2))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = softmax(scores, dim=-1)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ v, weights
''',
        "flipped mask: blocks where the mask is True": '''
import math

import torch
import torch.nn.functional as F


def scaled_dot_product_attention(q, k, v, mask=None, dropout_p=0.0):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    if mask is not None:
        scores = scores.masked_fill(mask, float("-inf"))
    weights = softmax(scores, dim=-1)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ v, weights
''',
        "mask applied after the softmax, rows not renormalized": '''
import math

import torch
import torch.nn.functional as F


def scaled_dot_product_attention(q, k, v, mask=None, dropout_p=0.0):
    weights = softmax(q @ k.transpose(-2, -1) / math.sqrt(q.size(-1)), dim=-1)
    if mask is not None:
        weights = weights * mask
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ v, weights
''',
        "mask applied after the softmax, then renormalized (equal only in exact arithmetic)": '''
import math

import torch
import torch.nn.functional as F


def scaled_dot_product_attention(q, k, v, mask=None, dropout_p=0.0):
    weights = softmax(q @ k.transpose(-2, -1) / math.sqrt(q.size(-1)), dim=-1)
    if mask is not None:
        weights = weights * mask
        weights = weights / weights.sum(dim=-1, keepdim=True)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ v, weights
''',
        "masked scores set to 0 instead of -inf": '''
import math

import torch
import torch.nn.functional as F


def scaled_dot_product_attention(q, k, v, mask=None, dropout_p=0.0):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    if mask is not None:
        scores = scores.masked_fill(~mask, 0.0)
    weights = softmax(scores, dim=-1)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ v, weights
''',
        "dropout without the 1 / (1 - p) rescaling": '''
import math

import torch


def scaled_dot_product_attention(q, k, v, mask=None, dropout_p=0.0):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = softmax(scores, dim=-1)
    if dropout_p > 0.0:
        weights = weights * (torch.rand_like(weights) >= dropout_p)
    return weights @ v, weights
''',
        "dropout applied to the output instead of the weights": '''
import math

import torch
import torch.nn.functional as F


def scaled_dot_product_attention(q, k, v, mask=None, dropout_p=0.0):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = softmax(scores, dim=-1)
    out = weights @ v
    if dropout_p > 0.0:
        out = F.dropout(out, p=dropout_p)
    return out, weights
''',
        "softmax over the queries (dim=-2)": '''
import math

import torch
import torch.nn.functional as F


def scaled_dot_product_attention(q, k, v, mask=None, dropout_p=0.0):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = softmax(scores, dim=-2)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ v, weights
''',
    },
    "ex-03-mha": {
        "heads split without transpose: reshaped straight to (B, n_heads, T, head_dim)": '''
import torch
import torch.nn as nn
import torch.nn.functional as F


class MultiHeadAttention(nn.Module):
    def __init__(self, d_model, n_heads, dropout=0.0, bias=True, use_fused=False):
        super().__init__()
        if d_model % n_heads != 0:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.n_heads, self.head_dim = n_heads, d_model // n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=bias)
        self.proj = nn.Linear(d_model, d_model, bias=bias)
        self.dropout, self.use_fused = dropout, use_fused

    def forward(self, x, mask=None, return_weights=False):
        B, T, C = x.shape
        q, k, v = (t.reshape(B, self.n_heads, T, self.head_dim) for t in self.qkv(x).split(C, dim=-1))
        p = self.dropout if self.training else 0.0
        weights = None
        if self.use_fused and not return_weights:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        else:
            out, weights = scaled_dot_product_attention(q, k, v, mask=mask, dropout_p=p)
        out = self.proj(out.reshape(B, T, C))
        return (out, weights) if return_weights else out
''',
        "heads merged back without transpose": '''
import torch
import torch.nn as nn
import torch.nn.functional as F


class MultiHeadAttention(nn.Module):
    def __init__(self, d_model, n_heads, dropout=0.0, bias=True, use_fused=False):
        super().__init__()
        if d_model % n_heads != 0:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.n_heads, self.head_dim = n_heads, d_model // n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=bias)
        self.proj = nn.Linear(d_model, d_model, bias=bias)
        self.dropout, self.use_fused = dropout, use_fused

    def forward(self, x, mask=None, return_weights=False):
        B, T, C = x.shape
        q, k, v = (t.view(B, T, self.n_heads, self.head_dim).transpose(1, 2) for t in self.qkv(x).split(C, dim=-1))
        p = self.dropout if self.training else 0.0
        weights = None
        if self.use_fused and not return_weights:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        else:
            out, weights = scaled_dot_product_attention(q, k, v, mask=mask, dropout_p=p)
        out = self.proj(out.reshape(B, T, C))
        return (out, weights) if return_weights else out
''',
        "q, k, v chunks taken in the wrong order (k, q, v)": '''
import torch
import torch.nn as nn
import torch.nn.functional as F


class MultiHeadAttention(nn.Module):
    def __init__(self, d_model, n_heads, dropout=0.0, bias=True, use_fused=False):
        super().__init__()
        if d_model % n_heads != 0:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.n_heads, self.head_dim = n_heads, d_model // n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=bias)
        self.proj = nn.Linear(d_model, d_model, bias=bias)
        self.dropout, self.use_fused = dropout, use_fused

    def forward(self, x, mask=None, return_weights=False):
        B, T, C = x.shape
        k, q, v = (t.view(B, T, self.n_heads, self.head_dim).transpose(1, 2) for t in self.qkv(x).split(C, dim=-1))
        p = self.dropout if self.training else 0.0
        weights = None
        if self.use_fused and not return_weights:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        else:
            out, weights = scaled_dot_product_attention(q, k, v, mask=mask, dropout_p=p)
        out = self.proj(out.transpose(1, 2).reshape(B, T, C))
        return (out, weights) if return_weights else out
''',
        "missing the output projection": '''
import torch
import torch.nn as nn
import torch.nn.functional as F


class MultiHeadAttention(nn.Module):
    def __init__(self, d_model, n_heads, dropout=0.0, bias=True, use_fused=False):
        super().__init__()
        if d_model % n_heads != 0:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.n_heads, self.head_dim = n_heads, d_model // n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=bias)
        self.proj = nn.Linear(d_model, d_model, bias=bias)
        self.dropout, self.use_fused = dropout, use_fused

    def forward(self, x, mask=None, return_weights=False):
        B, T, C = x.shape
        q, k, v = (t.view(B, T, self.n_heads, self.head_dim).transpose(1, 2) for t in self.qkv(x).split(C, dim=-1))
        p = self.dropout if self.training else 0.0
        weights = None
        if self.use_fused and not return_weights:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        else:
            out, weights = scaled_dot_product_attention(q, k, v, mask=mask, dropout_p=p)
        out = out.transpose(1, 2).reshape(B, T, C)
        return (out, weights) if return_weights else out
''',
        "dropout active in evaluation mode too": '''
import torch
import torch.nn as nn
import torch.nn.functional as F


class MultiHeadAttention(nn.Module):
    def __init__(self, d_model, n_heads, dropout=0.0, bias=True, use_fused=False):
        super().__init__()
        if d_model % n_heads != 0:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.n_heads, self.head_dim = n_heads, d_model // n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=bias)
        self.proj = nn.Linear(d_model, d_model, bias=bias)
        self.dropout, self.use_fused = dropout, use_fused

    def forward(self, x, mask=None, return_weights=False):
        B, T, C = x.shape
        q, k, v = (t.view(B, T, self.n_heads, self.head_dim).transpose(1, 2) for t in self.qkv(x).split(C, dim=-1))
        weights = None
        if self.use_fused and not return_weights:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout)
        else:
            out, weights = scaled_dot_product_attention(q, k, v, mask=mask, dropout_p=self.dropout)
        out = self.proj(out.transpose(1, 2).reshape(B, T, C))
        return (out, weights) if return_weights else out
''',
        "no ValueError: d_model // n_heads silently drops channels": '''
import torch
import torch.nn as nn
import torch.nn.functional as F


class MultiHeadAttention(nn.Module):
    def __init__(self, d_model, n_heads, dropout=0.0, bias=True, use_fused=False):
        super().__init__()
        self.n_heads, self.head_dim = n_heads, d_model // n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=bias)
        self.proj = nn.Linear(d_model, d_model, bias=bias)
        self.dropout, self.use_fused = dropout, use_fused

    def forward(self, x, mask=None, return_weights=False):
        B, T, C = x.shape
        q, k, v = (t.view(B, T, self.n_heads, self.head_dim).transpose(1, 2) for t in self.qkv(x).split(C, dim=-1))
        p = self.dropout if self.training else 0.0
        weights = None
        if self.use_fused and not return_weights:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        else:
            out, weights = scaled_dot_product_attention(q, k, v, mask=mask, dropout_p=p)
        out = self.proj(out.transpose(1, 2).reshape(B, T, C))
        return (out, weights) if return_weights else out
''',
        "fused path ignores the mask": '''
import torch
import torch.nn as nn
import torch.nn.functional as F


class MultiHeadAttention(nn.Module):
    def __init__(self, d_model, n_heads, dropout=0.0, bias=True, use_fused=False):
        super().__init__()
        if d_model % n_heads != 0:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.n_heads, self.head_dim = n_heads, d_model // n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=bias)
        self.proj = nn.Linear(d_model, d_model, bias=bias)
        self.dropout, self.use_fused = dropout, use_fused

    def forward(self, x, mask=None, return_weights=False):
        B, T, C = x.shape
        q, k, v = (t.view(B, T, self.n_heads, self.head_dim).transpose(1, 2) for t in self.qkv(x).split(C, dim=-1))
        p = self.dropout if self.training else 0.0
        weights = None
        if self.use_fused and not return_weights:
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
        else:
            out, weights = scaled_dot_product_attention(q, k, v, mask=mask, dropout_p=p)
        out = self.proj(out.transpose(1, 2).reshape(B, T, C))
        return (out, weights) if return_weights else out
''',
        "use_fused ignored: always the manual path": '''
import torch
import torch.nn as nn


class MultiHeadAttention(nn.Module):
    def __init__(self, d_model, n_heads, dropout=0.0, bias=True, use_fused=False):
        super().__init__()
        if d_model % n_heads != 0:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.n_heads, self.head_dim = n_heads, d_model // n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=bias)
        self.proj = nn.Linear(d_model, d_model, bias=bias)
        self.dropout, self.use_fused = dropout, use_fused

    def forward(self, x, mask=None, return_weights=False):
        B, T, C = x.shape
        q, k, v = (t.view(B, T, self.n_heads, self.head_dim).transpose(1, 2) for t in self.qkv(x).split(C, dim=-1))
        p = self.dropout if self.training else 0.0
        out, weights = scaled_dot_product_attention(q, k, v, mask=mask, dropout_p=p)
        out = self.proj(out.transpose(1, 2).reshape(B, T, C))
        return (out, weights) if return_weights else out
''',
    },
    "ex-03-compare-paths": {
        "forgot mha.eval(): dropout makes the two paths differ": '''
import statistics
import time

import torch


def compare_attention_paths(mha, x, repeats=10):
    was_fused = mha.use_fused
    mask = causal_mask(x.shape[1], device=x.device)
    outputs, seconds = [], []
    with torch.no_grad():
        for fused in (False, True):
            mha.use_fused = fused
            outputs.append(mha(x, mask=mask))
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                mha(x, mask=mask)
                times.append(time.perf_counter() - start)
            seconds.append(statistics.median(times))
    mha.use_fused = was_fused
    return (outputs[0] - outputs[1]).abs().max().item(), seconds[0], seconds[1]
''',
        "returns the total time of all repeats, not the time of one call": '''
import time

import torch


def compare_attention_paths(mha, x, repeats=10):
    was_training, was_fused = mha.training, mha.use_fused
    mask = causal_mask(x.shape[1], device=x.device)
    outputs, seconds = [], []
    mha.eval()
    try:
        with torch.no_grad():
            for fused in (False, True):
                mha.use_fused = fused
                outputs.append(mha(x, mask=mask))
                start = time.perf_counter()
                for _ in range(repeats):
                    mha(x, mask=mask)
                seconds.append(time.perf_counter() - start)
    finally:
        mha.use_fused = was_fused
        mha.train(was_training)
    return (outputs[0] - outputs[1]).abs().max().item(), seconds[0], seconds[1]
''',
        "signed difference: the largest of manual - fused, not of its absolute value": '''
import statistics
import time

import torch


def compare_attention_paths(mha, x, repeats=10):
    was_training, was_fused = mha.training, mha.use_fused
    mask = causal_mask(x.shape[1], device=x.device)
    outputs, seconds = [], []
    mha.eval()
    try:
        with torch.no_grad():
            for fused in (False, True):
                mha.use_fused = fused
                outputs.append(mha(x, mask=mask))
                times = []
                for _ in range(repeats):
                    start = time.perf_counter()
                    mha(x, mask=mask)
                    times.append(time.perf_counter() - start)
                seconds.append(statistics.median(times))
    finally:
        mha.use_fused = was_fused
        mha.train(was_training)
    return (outputs[1] - outputs[0]).max().item(), seconds[0], seconds[1]
''',
        "leaves the module in evaluation mode with use_fused set": '''
import statistics
import time

import torch


def compare_attention_paths(mha, x, repeats=10):
    mask = causal_mask(x.shape[1], device=x.device)
    outputs, seconds = [], []
    mha.eval()
    with torch.no_grad():
        for fused in (False, True):
            mha.use_fused = fused
            outputs.append(mha(x, mask=mask))
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                mha(x, mask=mask)
                times.append(time.perf_counter() - start)
            seconds.append(statistics.median(times))
    return (outputs[0] - outputs[1]).abs().max().item(), seconds[0], seconds[1]
''',
        "no try/finally: an error midway leaves the module changed": '''
import statistics
import time

import torch


def compare_attention_paths(mha, x, repeats=10):
    was_training, was_fused = mha.training, mha.use_fused
    mask = causal_mask(x.shape[1], device=x.device)
    outputs, seconds = [], []
    mha.eval()
    with torch.no_grad():
        for fused in (False, True):
            mha.use_fused = fused
            outputs.append(mha(x, mask=mask))
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                mha(x, mask=mask)
                times.append(time.perf_counter() - start)
            seconds.append(statistics.median(times))
    mha.use_fused = was_fused
    mha.train(was_training)
    return (outputs[0] - outputs[1]).abs().max().item(), seconds[0], seconds[1]
''',
        "records the autograd graph: no torch.no_grad()": '''
import statistics
import time

import torch


def compare_attention_paths(mha, x, repeats=10):
    was_training, was_fused = mha.training, mha.use_fused
    mask = causal_mask(x.shape[1], device=x.device)
    outputs, seconds = [], []
    mha.eval()
    try:
        for fused in (False, True):
            mha.use_fused = fused
            outputs.append(mha(x, mask=mask))
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                mha(x, mask=mask)
                times.append(time.perf_counter() - start)
            seconds.append(statistics.median(times))
    finally:
        mha.use_fused = was_fused
        mha.train(was_training)
    return (outputs[0] - outputs[1]).abs().max().item(), seconds[0], seconds[1]
''',
    },
}
