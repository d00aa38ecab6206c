"""Plausible wrong answers to the exercises of chapter 7 (solutions/07-finetune.md).

Each mutant replaces the whole answer cell; the exercise's test cell must reject it.
"""

_PREAMBLE = '''
PREAMBLE = ("Below is an instruction that describes a task. "
            "Write a response that appropriately completes the request.")
'''

_LORA_HEAD = '''
import math

import torch
import torch.nn as nn


class LoRALinear(nn.Module):
    def __init__(self, base, r, alpha):
        super().__init__()
        if not isinstance(r, int) or r < 1:
            raise ValueError("r must be a positive integer")
        self.base = base
'''

_FREEZE = '''
        for p in self.base.parameters():
            p.requires_grad_(False)
'''

_A_RANDOM = '''
        self.A = nn.Parameter(torch.empty(r, base.in_features, dtype=base.weight.dtype))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))
'''

_B_ZERO = '''
        self.B = nn.Parameter(torch.zeros(base.out_features, r, dtype=base.weight.dtype))
'''

_FORWARD = '''
    def forward(self, x):
        return self.base(x) + (x @ self.A.T @ self.B.T) * self.scaling
'''

_MERGE = '''
    @torch.no_grad()
    def merge(self):
        out = nn.Linear(self.base.in_features, self.base.out_features, bias=self.base.bias is not None,
                        dtype=self.base.weight.dtype)
        out.weight.copy_(self.base.weight + self.scaling * (self.B @ self.A))
        if self.base.bias is not None:
            out.bias.copy_(self.base.bias)
        return out
'''

_SCALE = '''
        self.r, self.alpha, self.scaling = r, alpha, alpha / r
'''


def _lora(freeze=_FREEZE, a=_A_RANDOM, b=_B_ZERO, scale=_SCALE, forward=_FORWARD, merge=_MERGE):
    return _LORA_HEAD + freeze + a + b + scale + forward + merge


_APPLY_HEAD = '''
import torch.nn as nn


def apply_lora(model, r, alpha, targets=("attn.qkv", "attn.proj", "mlp.fc", "mlp.proj")):
'''

MUTANTS = {
    "ex-07-prompt": {
        "an Input section even when the input is empty": _PREAMBLE + '''
def format_prompt(entry):
    return (f"{PREAMBLE}\\n\\n### Instruction:\\n{entry['instruction']}"
            f"\\n\\n### Input:\\n{entry.get('input', '')}\\n\\n### Response:\\n")
''',
        "the output is put into the prompt": _PREAMBLE + '''
def format_prompt(entry):
    prompt = f"{PREAMBLE}\\n\\n### Instruction:\\n{entry['instruction']}"
    if entry.get("input"):
        prompt += f"\\n\\n### Input:\\n{entry['input']}"
    return prompt + "\\n\\n### Response:\\n" + entry.get("output", "")
''',
        "no newline after the response header": _PREAMBLE + '''
def format_prompt(entry):
    prompt = f"{PREAMBLE}\\n\\n### Instruction:\\n{entry['instruction']}"
    if entry.get("input"):
        prompt += f"\\n\\n### Input:\\n{entry['input']}"
    return prompt + "\\n\\n### Response:"
''',
        "single newlines between sections instead of blank lines": _PREAMBLE + '''
def format_prompt(entry):
    prompt = f"{PREAMBLE}\\n### Instruction:\\n{entry['instruction']}"
    if entry.get("input"):
        prompt += f"\\n### Input:\\n{entry['input']}"
    return prompt + "\\n### Response:\\n"
''',
        "a record without an input key raises KeyError": _PREAMBLE + '''
def format_prompt(entry):
    prompt = f"{PREAMBLE}\\n\\n### Instruction:\\n{entry['instruction']}"
    if entry["input"]:
        prompt += f"\\n\\n### Input:\\n{entry['input']}"
    return prompt + "\\n\\n### Response:\\n"
''',
    },
    "ex-07-collate": {
        "padding counted in the loss (targets padded with pad_id, not -100)": '''
import torch


def collate(batch, pad_id, prompt_lengths=None, max_length=None, ignore_index=-100):
    T = max(len(b) for b in batch)
    rows = [b + [pad_id] * (T + 1 - len(b)) for b in batch]
    inputs = torch.tensor([r[:-1] for r in rows])
    targets = torch.tensor([r[1:] for r in rows])
    if prompt_lengths is not None:
        for i, p in enumerate(prompt_lengths):
            targets[i, :p - 1] = ignore_index
    if max_length is not None:
        inputs, targets = inputs[:, :max_length], targets[:, :max_length]
    return inputs, targets
''',
        "targets not shifted (targets equal the inputs)": '''
import torch


def collate(batch, pad_id, prompt_lengths=None, max_length=None, ignore_index=-100):
    T = max(len(b) for b in batch)
    inputs = torch.full((len(batch), T), pad_id, dtype=torch.long)
    targets = torch.full((len(batch), T), ignore_index, dtype=torch.long)
    for i, b in enumerate(batch):
        inputs[i, :len(b)] = torch.tensor(b)
        targets[i, :len(b)] = torch.tensor(b)
        if prompt_lengths is not None:
            targets[i, :prompt_lengths[i] - 1] = ignore_index
    if max_length is not None:
        inputs, targets = inputs[:, :max_length], targets[:, :max_length]
    return inputs, targets
''',
        "the first end-of-text is dropped too (every pad target ignored)": '''
import torch


def collate(batch, pad_id, prompt_lengths=None, max_length=None, ignore_index=-100):
    T = max(len(b) for b in batch)
    rows = [b + [pad_id] * (T + 1 - len(b)) for b in batch]
    inputs = torch.tensor([r[:-1] for r in rows])
    targets = torch.tensor([r[1:] for r in rows])
    targets[targets == pad_id] = ignore_index
    if prompt_lengths is not None:
        for i, p in enumerate(prompt_lengths):
            targets[i, :p - 1] = ignore_index
    if max_length is not None:
        inputs, targets = inputs[:, :max_length], targets[:, :max_length]
    return inputs, targets
''',
        "prompt mask one too long (hides the first response token)": '''
import torch


def collate(batch, pad_id, prompt_lengths=None, max_length=None, ignore_index=-100):
    T = max(len(b) for b in batch)
    inputs = torch.full((len(batch), T), pad_id, dtype=torch.long)
    targets = torch.full((len(batch), T), ignore_index, dtype=torch.long)
    for i, b in enumerate(batch):
        inputs[i, :len(b)] = torch.tensor(b)
        targets[i, :len(b) - 1] = torch.tensor(b[1:], dtype=torch.long)
        targets[i, len(b) - 1] = pad_id
        if prompt_lengths is not None:
            targets[i, :prompt_lengths[i]] = ignore_index
    if max_length is not None:
        inputs, targets = inputs[:, :max_length], targets[:, :max_length]
    return inputs, targets
''',
        "max_length ignored": '''
import torch


def collate(batch, pad_id, prompt_lengths=None, max_length=None, ignore_index=-100):
    T = max(len(b) for b in batch)
    inputs = torch.full((len(batch), T), pad_id, dtype=torch.long)
    targets = torch.full((len(batch), T), ignore_index, dtype=torch.long)
    for i, b in enumerate(batch):
        inputs[i, :len(b)] = torch.tensor(b)
        targets[i, :len(b) - 1] = torch.tensor(b[1:], dtype=torch.long)
        targets[i, len(b) - 1] = pad_id
        if prompt_lengths is not None:
            targets[i, :prompt_lengths[i] - 1] = ignore_index
    return inputs, targets
''',
        "always ignores -100, whatever ignore_index says": '''
import torch


def collate(batch, pad_id, prompt_lengths=None, max_length=None, ignore_index=-100):
    T = max(len(b) for b in batch)
    inputs = torch.full((len(batch), T), pad_id, dtype=torch.long)
    targets = torch.full((len(batch), T), -100, dtype=torch.long)
    for i, b in enumerate(batch):
        inputs[i, :len(b)] = torch.tensor(b)
        targets[i, :len(b) - 1] = torch.tensor(b[1:], dtype=torch.long)
        targets[i, len(b) - 1] = pad_id
        if prompt_lengths is not None:
            targets[i, :prompt_lengths[i] - 1] = -100
    if max_length is not None:
        inputs, targets = inputs[:, :max_length], targets[:, :max_length]
    return inputs, targets
''',
    },
    "ex-07-lora-linear": {
        "B initialized randomly, so the model changes before any training": _lora(b='''
        self.B = nn.Parameter(torch.randn(base.out_features, r, dtype=base.weight.dtype) * 0.01)
'''),
        "scaling by r / alpha instead of alpha / r": _lora(scale='''
        self.r, self.alpha, self.scaling = r, alpha, r / alpha
'''),
        "base layer not frozen": _lora(freeze=""),
        "A and B both zeros, so nothing can learn": _lora(a='''
        self.A = nn.Parameter(torch.zeros(r, base.in_features, dtype=base.weight.dtype))
'''),
        "merge forgets the scaling": _lora(merge='''
    @torch.no_grad()
    def merge(self):
        out = nn.Linear(self.base.in_features, self.base.out_features, bias=self.base.bias is not None,
                        dtype=self.base.weight.dtype)
        out.weight.copy_(self.base.weight + self.B @ self.A)
        if self.base.bias is not None:
            out.bias.copy_(self.base.bias)
        return out
'''),
        "merge changes the base layer in place": _lora(merge='''
    @torch.no_grad()
    def merge(self):
        self.base.weight += self.scaling * (self.B @ self.A)
        return self.base
'''),
        "forward without the scaling": _lora(forward='''
    def forward(self, x):
        return self.base(x) + x @ self.A.T @ self.B.T
'''),
    },
    "ex-07-apply-lora": {
        "does not freeze the layers that are not adapted": _APPLY_HEAD + '''
    chosen = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)
              and any(n == t or n.endswith("." + t) for t in targets)]
    if not chosen:
        raise ValueError("no layer matches")
    for n in chosen:
        parent, _, child = n.rpartition(".")
        owner = model.get_submodule(parent) if parent else model
        setattr(owner, child, LoRALinear(getattr(owner, child), r, alpha))
    return model
''',
        "matches only the last part of the name, so attn.proj also wraps mlp.proj": _APPLY_HEAD + '''
    for p in model.parameters():
        p.requires_grad_(False)
    leaves = {t.split(".")[-1] for t in targets}
    chosen = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and n.split(".")[-1] in leaves]
    if not chosen:
        raise ValueError("no layer matches")
    for n in chosen:
        parent, _, child = n.rpartition(".")
        owner = model.get_submodule(parent) if parent else model
        setattr(owner, child, LoRALinear(getattr(owner, child), r, alpha))
    return model
''',
        "wraps only the first matching layer": _APPLY_HEAD + '''
    for p in model.parameters():
        p.requires_grad_(False)
    for n, m in model.named_modules():
        if isinstance(m, nn.Linear) and any(n == t or n.endswith("." + t) for t in targets):
            parent, _, child = n.rpartition(".")
            owner = model.get_submodule(parent) if parent else model
            setattr(owner, child, LoRALinear(m, r, alpha))
            return model
    raise ValueError("no layer matches")
''',
        "silently does nothing when no layer matches": _APPLY_HEAD + '''
    for p in model.parameters():
        p.requires_grad_(False)
    chosen = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)
              and any(n == t or n.endswith("." + t) for t in targets)]
    for n in chosen:
        parent, _, child = n.rpartition(".")
        owner = model.get_submodule(parent) if parent else model
        setattr(owner, child, LoRALinear(getattr(owner, child), r, alpha))
    return model
''',
    },
}
