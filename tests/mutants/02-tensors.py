"""Plausible wrong answers to the exercises of chapter 2 (solutions/02-tensors.md).

Each mutant replaces the whole answer cell; the exercise's test cell must reject it.
"""

_DATASET_INIT = '''
import numpy as np
import torch
from torch.utils.data import Dataset


class TokenWindowDataset(Dataset):
    def __init__(self, ids, context_length, stride=None):
        if len(ids) <= context_length:
            raise ValueError("too short")
        self.ids = ids
        self.context_length = context_length
        self.stride = context_length if stride is None else stride
'''

_EMBEDDING_INIT = '''
import torch
import torch.nn as nn


class TokenPositionEmbedding(nn.Module):
    def __init__(self, vocab_size, context_length, d_model):
        super().__init__()
        self.context_length = context_length
        self.token = nn.Embedding(vocab_size, d_model)
        self.position = nn.Embedding(context_length, d_model)
'''

MUTANTS = {
    "ex-02-shifted-windows": {
        "targets not shifted: y is the input window itself": '''
import torch


def shifted_windows(ids, context_length, stride):
    chunks = ids.unfold(0, context_length + 1, stride)
    return chunks[:, :-1], chunks[:, :-1]
''',
        "shifted the wrong way: y is the token before, not after": '''
import torch


def shifted_windows(ids, context_length, stride):
    chunks = ids.unfold(0, context_length + 1, stride)
    return chunks[:, 1:], chunks[:, :-1]
''',
        "loop stops one window early (range(0, N - T - 1, stride))": '''
import torch


def shifted_windows(ids, context_length, stride):
    starts = range(0, len(ids) - context_length - 1, stride)
    X = torch.stack([ids[s : s + context_length] for s in starts])
    Y = torch.stack([ids[s + 1 : s + context_length + 1] for s in starts])
    return X, Y
''',
        "stride off by one: windows move by stride + 1": '''
import torch


def shifted_windows(ids, context_length, stride):
    chunks = ids.unfold(0, context_length + 1, stride + 1)
    return chunks[:, :-1], chunks[:, 1:]
''',
        "one target per window (chapter 0's pairs) instead of a shifted window": '''
import torch


def shifted_windows(ids, context_length, stride):
    chunks = ids.unfold(0, context_length + 1, stride)
    return chunks[:, :-1], chunks[:, -1]
''',
    },
    "ex-02-window-dataset": {
        "__len__ off by one: (N - T) // stride + 1 counts a window that does not fit": _DATASET_INIT + '''
    def __len__(self):
        return (len(self.ids) - self.context_length) // self.stride + 1

    def __getitem__(self, k):
        if not 0 <= k < len(self):
            raise IndexError(k)
        s = k * self.stride
        window = torch.as_tensor(np.asarray(self.ids[s : s + self.context_length + 1], dtype=np.int64))
        return window[:-1], window[1:]
''',
        "__getitem__ ignores the stride: window k starts at k": _DATASET_INIT + '''
    def __len__(self):
        return (len(self.ids) - self.context_length - 1) // self.stride + 1

    def __getitem__(self, k):
        if not 0 <= k < len(self):
            raise IndexError(k)
        window = torch.as_tensor(np.asarray(self.ids[k : k + self.context_length + 1], dtype=np.int64))
        return window[:-1], window[1:]
''',
        "keeps the dtype of the data (uint16 from a memmap) instead of int64": _DATASET_INIT + '''
    def __len__(self):
        return (len(self.ids) - self.context_length - 1) // self.stride + 1

    def __getitem__(self, k):
        if not 0 <= k < len(self):
            raise IndexError(k)
        s = k * self.stride
        window = torch.as_tensor(self.ids[s : s + self.context_length + 1])
        return window[:-1], window[1:]
''',
        "no IndexError: an index past the end returns a short window": _DATASET_INIT + '''
    def __len__(self):
        return (len(self.ids) - self.context_length - 1) // self.stride + 1

    def __getitem__(self, k):
        s = k * self.stride
        window = torch.as_tensor(np.asarray(self.ids[s : s + self.context_length + 1], dtype=np.int64))
        return window[:-1], window[1:]
''',
        "converts through int16, so ids above 32,767 turn negative": _DATASET_INIT + '''
    def __len__(self):
        return (len(self.ids) - self.context_length - 1) // self.stride + 1

    def __getitem__(self, k):
        if not 0 <= k < len(self):
            raise IndexError(k)
        s = k * self.stride
        window = np.asarray(self.ids[s : s + self.context_length + 1]).astype(np.int16)
        window = torch.from_numpy(window).long()
        return window[:-1], window[1:]
''',
    },
    "ex-02-get-batch": {
        "targets not shifted: y equals x": '''
import numpy as np
import torch


def get_batch(data, batch_size, context_length, device="cpu", generator=None):
    device = resolve_device(device)
    if context_length >= len(data):
        raise ValueError(f"the data holds only {len(data)} ids")
    starts = torch.randint(len(data) - context_length, (batch_size,), generator=generator)
    x = torch.stack([torch.from_numpy(np.asarray(data[s : s + context_length], dtype=np.int64)) for s in starts.tolist()])
    return x.to(device), x.clone().to(device)
''',
        "the last valid start is never drawn (randint(N - T - 1))": '''
import numpy as np
import torch


def get_batch(data, batch_size, context_length, device="cpu", generator=None):
    device = resolve_device(device)
    if context_length >= len(data):
        raise ValueError(f"the data holds only {len(data)} ids")
    starts = torch.randint(len(data) - context_length - 1, (batch_size,), generator=generator)
    rows = np.stack([np.asarray(data[s : s + context_length + 1], dtype=np.int64) for s in starts.tolist()])
    return torch.from_numpy(rows[:, :-1]).to(device), torch.from_numpy(rows[:, 1:]).to(device)
''',
        "starts drawn from N - T + 1 values, so the last window runs past the end (padded with zeros)": '''
import numpy as np
import torch


def get_batch(data, batch_size, context_length, device="cpu", generator=None):
    device = resolve_device(device)
    if context_length >= len(data):
        raise ValueError(f"the data holds only {len(data)} ids")
    starts = torch.randint(len(data) - context_length + 1, (batch_size,), generator=generator)
    rows = np.zeros((batch_size, context_length + 1), dtype=np.int64)
    for b, s in enumerate(starts.tolist()):
        window = np.asarray(data[s : s + context_length + 1], dtype=np.int64)
        rows[b, : len(window)] = window
    return torch.from_numpy(rows[:, :-1]).to(device), torch.from_numpy(rows[:, 1:]).to(device)
''',
        "int32 instead of int64": '''
import numpy as np
import torch


def get_batch(data, batch_size, context_length, device="cpu", generator=None):
    device = resolve_device(device)
    if context_length >= len(data):
        raise ValueError(f"the data holds only {len(data)} ids")
    starts = torch.randint(len(data) - context_length, (batch_size,), generator=generator)
    rows = np.stack([np.asarray(data[s : s + context_length + 1], dtype=np.int32) for s in starts.tolist()])
    return torch.from_numpy(rows[:, :-1]).to(device), torch.from_numpy(rows[:, 1:]).to(device)
''',
        "ignores the generator, so batches do not repeat": '''
import numpy as np
import torch


def get_batch(data, batch_size, context_length, device="cpu", generator=None):
    device = resolve_device(device)
    if context_length >= len(data):
        raise ValueError(f"the data holds only {len(data)} ids")
    starts = torch.randint(len(data) - context_length, (batch_size,))
    rows = np.stack([np.asarray(data[s : s + context_length + 1], dtype=np.int64) for s in starts.tolist()])
    return torch.from_numpy(rows[:, :-1]).to(device), torch.from_numpy(rows[:, 1:]).to(device)
''',
        "does not check the device: .to('gpu') raises PyTorch's RuntimeError": '''
import numpy as np
import torch


def get_batch(data, batch_size, context_length, device="cpu", generator=None):
    if context_length >= len(data):
        raise ValueError(f"the data holds only {len(data)} ids")
    starts = torch.randint(len(data) - context_length, (batch_size,), generator=generator)
    rows = np.stack([np.asarray(data[s : s + context_length + 1], dtype=np.int64) for s in starts.tolist()])
    return torch.from_numpy(rows[:, :-1]).to(device), torch.from_numpy(rows[:, 1:]).to(device)
''',
        "does not check the context length: a window that does not fit gives numpy's error": '''
import numpy as np
import torch


def get_batch(data, batch_size, context_length, device="cpu", generator=None):
    device = resolve_device(device)
    starts = torch.randint(max(len(data) - context_length, 1), (batch_size,), generator=generator)
    rows = np.stack([np.asarray(data[s : s + context_length + 1], dtype=np.int64) for s in starts.tolist()])
    return torch.from_numpy(rows[:, :-1]).to(device), torch.from_numpy(rows[:, 1:]).to(device)
''',
    },
    "ex-02-one-hot": {
        "F.one_hot without num_classes: one entry per id seen, not per vocabulary entry": '''
import torch
import torch.nn.functional as F


def one_hot_embed(ids, weight):
    return F.one_hot(ids).to(weight.dtype) @ weight
''',
        "one-hot always float32, whatever the dtype of the table": '''
import torch
import torch.nn.functional as F


def one_hot_embed(ids, weight):
    return F.one_hot(ids, num_classes=weight.shape[0]).float() @ weight
''',
        "one-hot along the wrong axis (V before the last id dimension)": '''
import torch
import torch.nn.functional as F


def one_hot_embed(ids, weight):
    vectors = F.one_hot(ids, num_classes=weight.shape[0]).to(weight.dtype).transpose(-1, -2)
    return vectors @ weight
''',
        "ids off by one (counts tokens from 1)": '''
import torch
import torch.nn.functional as F


def one_hot_embed(ids, weight):
    vectors = F.one_hot((ids + 1) % weight.shape[0], num_classes=weight.shape[0]).to(weight.dtype)
    return vectors @ weight
''',
    },
    "ex-02-position-embedding": {
        "forgot the positions: token embeddings only": _EMBEDDING_INIT + '''
    def forward(self, idx):
        if idx.shape[1] > self.context_length:
            raise ValueError("too long")
        return self.token(idx)
''',
        "positions looked up by the token ids instead of 0..T-1": _EMBEDDING_INIT + '''
    def forward(self, idx):
        if idx.shape[1] > self.context_length:
            raise ValueError("too long")
        return self.token(idx) + self.position(idx.clamp(max=self.context_length - 1))
''',
        "concatenates the two vectors instead of adding them": _EMBEDDING_INIT + '''
    def forward(self, idx):
        B, T = idx.shape
        if T > self.context_length:
            raise ValueError("too long")
        pos = self.position(torch.arange(T)).expand(B, T, -1)
        return torch.cat([self.token(idx), pos], dim=-1)
''',
        "positions counted from 1": _EMBEDDING_INIT + '''
    def forward(self, idx):
        T = idx.shape[1]
        if T > self.context_length:
            raise ValueError("too long")
        return self.token(idx) + self.position(torch.arange(1, T + 1).clamp(max=self.context_length - 1))
''',
        "no length check: nn.Embedding raises IndexError deep inside": _EMBEDDING_INIT + '''
    def forward(self, idx):
        return self.token(idx) + self.position(torch.arange(idx.shape[1]))
''',
        "one position vector per sequence in the batch instead of per position": _EMBEDDING_INIT + '''
    def forward(self, idx):
        B, T = idx.shape
        if T > self.context_length:
            raise ValueError("too long")
        return self.token(idx) + self.position(torch.arange(B))[:, None, :]
''',
    },
    "ex-02-sinusoidal": {
        "sine and cosine swapped": '''
import torch


def sinusoidal_positions(context_length, d_model, base=10000.0):
    if d_model % 2:
        raise ValueError("odd")
    p = torch.arange(context_length, dtype=torch.float64)[:, None]
    angle = p / base ** (torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    pe = torch.empty(context_length, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.cos(angle)
    pe[:, 1::2] = torch.sin(angle)
    return pe.float()
''',
        "exponent i / d instead of 2i / d": '''
import torch


def sinusoidal_positions(context_length, d_model, base=10000.0):
    if d_model % 2:
        raise ValueError("odd")
    p = torch.arange(context_length, dtype=torch.float64)[:, None]
    angle = p / base ** (torch.arange(d_model // 2, dtype=torch.float64) / d_model)
    pe = torch.empty(context_length, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle)
    return pe.float()
''',
        "sines in the first half, cosines in the second, not interleaved": '''
import torch


def sinusoidal_positions(context_length, d_model, base=10000.0):
    if d_model % 2:
        raise ValueError("odd")
    p = torch.arange(context_length, dtype=torch.float64)[:, None]
    angle = p / base ** (torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    return torch.cat([torch.sin(angle), torch.cos(angle)], dim=1).float()
''',
        "multiplies by base ** (2i / d) instead of dividing": '''
import torch


def sinusoidal_positions(context_length, d_model, base=10000.0):
    if d_model % 2:
        raise ValueError("odd")
    p = torch.arange(context_length, dtype=torch.float64)[:, None]
    angle = p * base ** (torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    pe = torch.empty(context_length, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle)
    return pe.float()
''',
        "ignores the base argument (always 10000)": '''
import torch


def sinusoidal_positions(context_length, d_model, base=10000.0):
    if d_model % 2:
        raise ValueError("odd")
    p = torch.arange(context_length, dtype=torch.float64)[:, None]
    angle = p / 10000.0 ** (torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    pe = torch.empty(context_length, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle)
    return pe.float()
''',
        "positions counted from 1": '''
import torch


def sinusoidal_positions(context_length, d_model, base=10000.0):
    if d_model % 2:
        raise ValueError("odd")
    p = torch.arange(1, context_length + 1, dtype=torch.float64)[:, None]
    angle = p / base ** (torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    pe = torch.empty(context_length, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle)
    return pe.float()
''',
    },
}
