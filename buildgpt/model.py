# DRAFT written by hand to unblock chapters 5-7: chapter 4 (solutions/04-gpt.md) will export this
# module and overwrite this file. Keep the names and signatures below.
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import torch
import torch.nn as nn
import torch.nn.functional as F

from buildgpt.attention import MultiHeadAttention, causal_mask


@dataclass(frozen=True)
class GPTConfig:
    """The shape of a GPT. GPT-2 small: GPTConfig.from_preset("gpt2")."""
    vocab_size: int = 50257
    context_length: int = 1024   # T_max: the longest sequence the position table covers
    d_model: int = 768           # C: width of every token vector
    n_heads: int = 12
    n_layers: int = 12
    dropout: float = 0.0
    bias: bool = True
    use_fused: bool = True       # F.scaled_dot_product_attention inside MultiHeadAttention

    def __post_init__(self) -> None:
        for name in ("vocab_size", "context_length", "d_model", "n_heads", "n_layers"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads}); "
                             "choose, e.g., d_model = 64 * n_heads")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1); got {self.dropout}")

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "GPTConfig":
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
        return replace(cls(**PRESETS[name]), **overrides)

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS: dict[str, dict] = {
    "gpt2": dict(n_layers=12, n_heads=12, d_model=768),
    "gpt2-medium": dict(n_layers=24, n_heads=16, d_model=1024),
    "gpt2-large": dict(n_layers=36, n_heads=20, d_model=1280),
    "gpt2-xl": dict(n_layers=48, n_heads=25, d_model=1600),
    # character-level models that train on a laptop CPU (vocab_size is set from the corpus)
    "char-tiny": dict(vocab_size=65, context_length=64, d_model=128, n_heads=4, n_layers=4),
    "char-small": dict(vocab_size=65, context_length=128, d_model=192, n_heads=6, n_layers=6),
}


class LayerNorm(nn.Module):
    """y = (x - mean) / sqrt(var + eps) * weight + bias over the last dim (biased variance)."""

    def __init__(self, d_model: int, eps: float = 1e-5, bias: bool = True) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model))
        self.bias = nn.Parameter(torch.zeros(d_model)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=-1, keepdim=True)
        var = x.var(dim=-1, keepdim=True, unbiased=False)
        y = (x - mean) / torch.sqrt(var + self.eps) * self.weight
        return y + self.bias if self.bias is not None else y


class GELU(nn.Module):
    """GPT-2's tanh approximation of x * Phi(x)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


class FeedForward(nn.Module):
    """Position-wise MLP: fc (C -> 4C) [GPT-2: c_fc], GELU, proj (4C -> C) [c_proj], dropout."""

    def __init__(self, d_model: int, dropout: float = 0.0, bias: bool = True) -> None:
        super().__init__()
        self.fc = nn.Linear(d_model, 4 * d_model, bias=bias)
        self.act = GELU()
        self.proj = nn.Linear(4 * d_model, d_model, bias=bias)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.proj(self.act(self.fc(x))))


class TransformerBlock(nn.Module):
    """Pre-LN block: x + drop(attn(ln_1(x))), then x + mlp(ln_2(x))."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = LayerNorm(config.d_model, bias=config.bias)
        self.attn = MultiHeadAttention(config.d_model, config.n_heads, dropout=config.dropout,
                                       bias=config.bias, use_fused=config.use_fused)
        self.drop = nn.Dropout(config.dropout)
        self.ln_2 = LayerNorm(config.d_model, bias=config.bias)
        self.mlp = FeedForward(config.d_model, config.dropout, config.bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln_1(x), mask=mask))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """Decoder-only Transformer (Radford et al. 2019). forward(idx (B, T) long) -> logits (B, T, V).

    Layers (GPT-2's names): tok_emb [wte], pos_emb [wpe], drop, blocks [h], ln_f, lm_head (tied to
    tok_emb.weight).
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.d_model)
        self.pos_emb = nn.Embedding(config.context_length, config.d_model)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(TransformerBlock(config) for _ in range(config.n_layers))
        self.ln_f = LayerNorm(config.d_model, bias=config.bias)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.lm_head.weight = self.tok_emb.weight  # weight tying (Press and Wolf 2017)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # residual projections: std / sqrt(2 * n_layers)
            if name.endswith("attn.proj.weight") or name.endswith("mlp.proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layers))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        B, T = idx.shape
        if T > self.config.context_length:
            raise ValueError(f"the sequence has {T} tokens but the model's context is "
                             f"{self.config.context_length}; crop it to the last {self.config.context_length}")
        pos = torch.arange(T, device=idx.device)
        x = self.drop(self.tok_emb(idx) + self.pos_emb(pos))
        mask = causal_mask(T, idx.device)
        for block in self.blocks:
            x = block(x, mask)
        return self.lm_head(self.ln_f(x))


@torch.no_grad()
def generate_greedy(model: GPT, idx: torch.Tensor, max_new_tokens: int) -> torch.Tensor:
    """Append the most likely next token max_new_tokens times. idx (B, T) -> (B, T + max_new_tokens)."""
    for _ in range(max_new_tokens):
        logits = model(idx[:, -model.config.context_length:])
        idx = torch.cat([idx, logits[:, -1].argmax(dim=-1, keepdim=True)], dim=1)
    return idx
