"""Plausible wrong answers to the exercises of chapter 0 (solutions/00-pytorch.md).

Each mutant replaces the whole answer cell; the exercise's test cell must reject it.
"""

MUTANTS = {
    "ex-00-context-windows": {
        "target is the last id of the context, not the one after it": '''
import torch


def context_windows(ids, context):
    windows = ids.unfold(0, context + 1, 1)
    return windows[:, :-1], windows[:, -2]
''',
        "loop stops one pair early": '''
import torch


def context_windows(ids, context):
    X = torch.stack([ids[i : i + context] for i in range(len(ids) - context - 1)])
    Y = torch.stack([ids[i + context] for i in range(len(ids) - context - 1)])
    return X, Y
''',
        "non-overlapping chunks instead of sliding windows": '''
import torch


def context_windows(ids, context):
    windows = ids.unfold(0, context + 1, context + 1)
    return windows[:, :-1], windows[:, -1]
''',
        "columns stacked along the wrong dimension, so X is transposed": '''
import torch


def context_windows(ids, context):
    n = len(ids) - context
    X = torch.stack([ids[j : j + n] for j in range(context)], dim=0)
    return X, ids[context:]
''',
    },
    "ex-00-pairwise-sq-distances": {
        "forgot to square the differences": '''
import torch


def pairwise_sq_distances(a, b):
    return (a[:, None, :] - b[None, :, :]).sum(dim=-1)
''',
        "took the square root (plain Euclidean distance)": '''
import torch


def pairwise_sq_distances(a, b):
    return torch.cdist(a, b)
''',
        "summed over the wrong dimension": '''
import torch


def pairwise_sq_distances(a, b):
    return ((a[:, None, :] - b[None, :, :]) ** 2).sum(dim=1)
''',
        "mean over the features instead of the sum": '''
import torch


def pairwise_sq_distances(a, b):
    return ((a[:, None, :] - b[None, :, :]) ** 2).mean(dim=-1)
''',
        "expanded |a|^2 - 2ab + |b|^2 with the norm of a broadcast along the wrong axis": '''
import torch


def pairwise_sq_distances(a, b):
    return (a ** 2).sum(dim=1) - 2 * a @ b.T + (b ** 2).sum(dim=1)
''',
    },
    "ex-00-mse-grad": {
        "missing the factor 2 from the square": '''
import torch


def mse_grad(w, X, y):
    return X.T @ (X @ w - y) / X.shape[0]
''',
        "sum instead of mean: no 1 / N": '''
import torch


def mse_grad(w, X, y):
    return 2.0 * X.T @ (X @ w - y)
''',
        "residual with the wrong sign": '''
import torch


def mse_grad(w, X, y):
    return 2.0 / X.shape[0] * X.T @ (y - X @ w)
''',
        "divides by the number of weights D instead of the number of examples N": '''
import torch


def mse_grad(w, X, y):
    return 2.0 / X.shape[1] * X.T @ (X @ w - y)
''',
        "asks autograd instead of using the formula": '''
import torch


def mse_grad(w, X, y):
    w = w.detach().clone().requires_grad_(True)
    ((X @ w - y) ** 2).mean().backward()
    return w.grad
''',
    },
    "ex-00-count-parameters": {
        "counts parameter tensors, not their elements": '''
import torch.nn as nn


def count_parameters(model, trainable_only=True):
    return len([p for p in model.parameters() if p.requires_grad or not trainable_only])
''',
        "ignores trainable_only, so frozen parameters count too": '''
import torch.nn as nn


def count_parameters(model, trainable_only=True):
    return sum(p.numel() for p in model.parameters())
''',
        "counts the state_dict: buffers, and shared weights twice": '''
import torch.nn as nn


def count_parameters(model, trainable_only=True):
    return sum(t.numel() for t in model.state_dict().values())
''',
        "trainable_only inverted: with False it counts only the frozen ones": '''
import torch.nn as nn


def count_parameters(model, trainable_only=True):
    return sum(p.numel() for p in model.parameters() if p.requires_grad == trainable_only)
''',
    },
    "ex-00-char-mlp": {
        "no nonlinearity between the two layers": '''
import torch
import torch.nn as nn


class CharMLP(nn.Module):
    def __init__(self, vocab_size, context, emb_dim, hidden):
        super().__init__()
        self.context = context
        self.embedding = nn.Embedding(vocab_size, emb_dim)
        self.hidden = nn.Linear(context * emb_dim, hidden)
        self.output = nn.Linear(hidden, vocab_size)

    def forward(self, x):
        B, T = x.shape
        return self.output(self.hidden(self.embedding(x).view(B, -1)))
''',
        "returns probabilities (softmax) instead of logits": '''
import torch
import torch.nn as nn


class CharMLP(nn.Module):
    def __init__(self, vocab_size, context, emb_dim, hidden):
        super().__init__()
        self.context = context
        self.embedding = nn.Embedding(vocab_size, emb_dim)
        self.hidden = nn.Linear(context * emb_dim, hidden)
        self.output = nn.Linear(hidden, vocab_size)

    def forward(self, x):
        B, T = x.shape
        logits = self.output(torch.tanh(self.hidden(self.embedding(x).view(B, -1))))
        return torch.softmax(logits, dim=-1)
''',
        "averages the context embeddings instead of concatenating them": '''
import torch
import torch.nn as nn


class CharMLP(nn.Module):
    def __init__(self, vocab_size, context, emb_dim, hidden):
        super().__init__()
        self.context = context
        self.embedding = nn.Embedding(vocab_size, emb_dim)
        self.hidden = nn.Linear(emb_dim, hidden)
        self.output = nn.Linear(hidden, vocab_size)

    def forward(self, x):
        return self.output(torch.tanh(self.hidden(self.embedding(x).mean(dim=1))))
''',
        "transposes (B, T, C) to (B, C, T) before flattening, interleaving the embeddings": '''
import torch
import torch.nn as nn


class CharMLP(nn.Module):
    def __init__(self, vocab_size, context, emb_dim, hidden):
        super().__init__()
        self.context = context
        self.embedding = nn.Embedding(vocab_size, emb_dim)
        self.hidden = nn.Linear(context * emb_dim, hidden)
        self.output = nn.Linear(hidden, vocab_size)

    def forward(self, x):
        B, T = x.shape
        e = self.embedding(x).transpose(1, 2).reshape(B, -1)
        return self.output(torch.tanh(self.hidden(e)))
''',
        "ReLU instead of tanh": '''
import torch
import torch.nn as nn


class CharMLP(nn.Module):
    def __init__(self, vocab_size, context, emb_dim, hidden):
        super().__init__()
        self.context = context
        self.embedding = nn.Embedding(vocab_size, emb_dim)
        self.hidden = nn.Linear(context * emb_dim, hidden)
        self.output = nn.Linear(hidden, vocab_size)

    def forward(self, x):
        B, T = x.shape
        return self.output(torch.relu(self.hidden(self.embedding(x).view(B, -1))))
''',
    },
    "ex-00-train-step": {
        "forgot optimizer.zero_grad(), so gradients accumulate across calls": '''
import torch
import torch.nn.functional as F


def train_step(model, optimizer, x, y):
    logits = model(x)
    loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
    loss.backward()
    optimizer.step()
    return loss.item()
''',
        "forgot optimizer.step(), so nothing is learned": '''
import torch
import torch.nn.functional as F


def train_step(model, optimizer, x, y):
    optimizer.zero_grad()
    logits = model(x)
    loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
    loss.backward()
    return loss.item()
''',
        "returns the loss tensor instead of a float": '''
import torch
import torch.nn.functional as F


def train_step(model, optimizer, x, y):
    optimizer.zero_grad()
    logits = model(x)
    loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
    loss.backward()
    optimizer.step()
    return loss
''',
        "zero_grad between backward and step wipes the gradients": '''
import torch
import torch.nn.functional as F


def train_step(model, optimizer, x, y):
    logits = model(x)
    loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
    loss.backward()
    optimizer.zero_grad()
    optimizer.step()
    return loss.item()
''',
        "does not flatten (B, T, V) logits and (B, T) targets": '''
import torch
import torch.nn.functional as F


def train_step(model, optimizer, x, y):
    optimizer.zero_grad()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    return loss.item()
''',
    },
}
