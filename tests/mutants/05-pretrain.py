"""Plausible wrong answers to the exercises of chapter 5 (solutions/05-pretrain.md).

Each mutant replaces the whole answer cell; the exercise's test cell must reject it.
"""

MUTANTS = {
    "ex-05-cross-entropy": {
        "log of the softmax: no max subtracted, so large logits overflow and small probabilities underflow": '''
import torch


def log_softmax(logits, dim=-1):
    return torch.log(torch.exp(logits) / torch.exp(logits).sum(dim=dim, keepdim=True))


def cross_entropy(logits, targets, ignore_index=-100):
    logp = log_softmax(logits.float(), dim=-1)
    keep = targets != ignore_index
    picked = logp.gather(-1, torch.where(keep, targets, 0).unsqueeze(-1)).squeeze(-1)
    return -(picked * keep).sum() / keep.sum().clamp(min=1)
''',
        "max subtracted but the log taken of each probability (underflows to log 0)": '''
import torch


def log_softmax(logits, dim=-1):
    shifted = logits - logits.amax(dim=dim, keepdim=True)
    return torch.log(torch.exp(shifted) / torch.exp(shifted).sum(dim=dim, keepdim=True))


def cross_entropy(logits, targets, ignore_index=-100):
    logp = log_softmax(logits.float(), dim=-1)
    keep = targets != ignore_index
    picked = logp.gather(-1, torch.where(keep, targets, 0).unsqueeze(-1)).squeeze(-1)
    return -(picked * keep).sum() / keep.sum().clamp(min=1)
''',
        "sum over positions instead of the mean": '''
import torch


def log_softmax(logits, dim=-1):
    shifted = logits - logits.amax(dim=dim, keepdim=True)
    return shifted - torch.log(torch.exp(shifted).sum(dim=dim, keepdim=True))


def cross_entropy(logits, targets, ignore_index=-100):
    logp = log_softmax(logits.float(), dim=-1)
    keep = targets != ignore_index
    picked = logp.gather(-1, torch.where(keep, targets, 0).unsqueeze(-1)).squeeze(-1)
    return -(picked * keep).sum()
''',
        "ignored positions excluded from the sum but still counted in the mean": '''
import torch


def log_softmax(logits, dim=-1):
    shifted = logits - logits.amax(dim=dim, keepdim=True)
    return shifted - torch.log(torch.exp(shifted).sum(dim=dim, keepdim=True))


def cross_entropy(logits, targets, ignore_index=-100):
    logp = log_softmax(logits.float(), dim=-1)
    keep = targets != ignore_index
    picked = logp.gather(-1, torch.where(keep, targets, 0).unsqueeze(-1)).squeeze(-1)
    return -(picked * keep).sum() / targets.numel()
''',
        "max over the whole tensor instead of along dim": '''
import torch


def log_softmax(logits, dim=-1):
    shifted = logits - logits.max()
    return shifted - torch.log(torch.exp(shifted).sum(dim=dim, keepdim=True))


def cross_entropy(logits, targets, ignore_index=-100):
    logp = log_softmax(logits.float(), dim=-1)
    keep = targets != ignore_index
    picked = logp.gather(-1, torch.where(keep, targets, 0).unsqueeze(-1)).squeeze(-1)
    return -(picked * keep).sum() / keep.sum().clamp(min=1)
''',
    },
    "ex-05-adamw": {
        "bias correction missing": '''
import torch


@torch.no_grad()
def adamw_update(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay):
    param.mul_(1 - lr * weight_decay)
    exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    param.addcdiv_(exp_avg, exp_avg_sq.sqrt().add_(eps), value=-lr)
''',
        "weight decay added to the gradient (Adam with L2), not decoupled": '''
import torch


@torch.no_grad()
def adamw_update(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay):
    grad = grad + weight_decay * param
    exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    m_hat = exp_avg / (1 - beta1 ** step)
    v_hat = exp_avg_sq / (1 - beta2 ** step)
    param.addcdiv_(m_hat, v_hat.sqrt().add_(eps), value=-lr)
''',
        "decay not scaled by the learning rate": '''
import torch


@torch.no_grad()
def adamw_update(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay):
    param.mul_(1 - weight_decay)
    exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    m_hat = exp_avg / (1 - beta1 ** step)
    v_hat = exp_avg_sq / (1 - beta2 ** step)
    param.addcdiv_(m_hat, v_hat.sqrt().add_(eps), value=-lr)
''',
        "eps inside the square root": '''
import torch


@torch.no_grad()
def adamw_update(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay):
    param.mul_(1 - lr * weight_decay)
    exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    m_hat = exp_avg / (1 - beta1 ** step)
    v_hat = exp_avg_sq / (1 - beta2 ** step)
    param.addcdiv_(m_hat, (v_hat + eps).sqrt(), value=-lr)
''',
        "bias correction written into the stored moments": '''
import torch


@torch.no_grad()
def adamw_update(param, grad, exp_avg, exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay):
    param.mul_(1 - lr * weight_decay)
    exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1).div_(1 - beta1 ** step)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2).div_(1 - beta2 ** step)
    param.addcdiv_(exp_avg, exp_avg_sq.sqrt().add_(eps), value=-lr)
''',
    },
    "ex-05-param-groups": {
        "everything decayed": '''
def param_groups(model, weight_decay):
    return [{"params": list(model.parameters()), "weight_decay": weight_decay},
            {"params": [], "weight_decay": 0.0}]
''',
        "chosen by name: LayerNorm's 'weight' decays too": '''
def param_groups(model, weight_decay):
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return [{"params": [p for n, p in named if n.endswith("weight")], "weight_decay": weight_decay},
            {"params": [p for n, p in named if not n.endswith("weight")], "weight_decay": 0.0}]
''',
        "embeddings excluded from decay": '''
import torch.nn as nn


def param_groups(model, weight_decay):
    embedding = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    params = [p for p in model.parameters() if p.requires_grad]
    return [{"params": [p for p in params if p.dim() >= 2 and id(p) not in embedding], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2 or id(p) in embedding], "weight_decay": 0.0}]
''',
        "frozen parameters kept": '''
def param_groups(model, weight_decay):
    params = list(model.parameters())
    return [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
''',
    },
    "ex-05-lr-schedule": {
        "warmup off by one: step 0 gets a learning rate of 0": '''
import math


def lr_at(step, *, max_lr, min_lr, warmup_steps, total_steps):
    if step < warmup_steps:
        return max_lr * step / warmup_steps
    if step >= total_steps:
        return min_lr
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (max_lr - min_lr)
''',
        "cosine decays to 0, ignoring the floor": '''
import math


def lr_at(step, *, max_lr, min_lr, warmup_steps, total_steps):
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    if step >= total_steps:
        return min_lr
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * progress)) * max_lr
''',
        "cosine progress counted from step 0, not from the end of warmup": '''
import math


def lr_at(step, *, max_lr, min_lr, warmup_steps, total_steps):
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    if step >= total_steps:
        return min_lr
    progress = step / total_steps
    return min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (max_lr - min_lr)
''',
        "linear decay instead of cosine": '''
def lr_at(step, *, max_lr, min_lr, warmup_steps, total_steps):
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    if step >= total_steps:
        return min_lr
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return max_lr - progress * (max_lr - min_lr)
''',
    },
    "ex-05-clip": {
        "clipped tensor by tensor instead of by the global norm": '''
import torch


@torch.no_grad()
def clip_grad_norm(parameters, max_norm):
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    total = torch.sqrt(sum((g.float() ** 2).sum() for g in grads))
    for g in grads:
        g.mul_((max_norm / (g.norm() + 1e-6)).clamp(max=1.0))
    return total
''',
        "returns the norm after clipping": '''
import torch


@torch.no_grad()
def clip_grad_norm(parameters, max_norm):
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    total = torch.sqrt(sum((g.float() ** 2).sum() for g in grads))
    scale = (max_norm / (total + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(scale)
    return torch.sqrt(sum((g.float() ** 2).sum() for g in grads))
''',
        "always rescales to max_norm, scaling small gradients up": '''
import torch


@torch.no_grad()
def clip_grad_norm(parameters, max_norm):
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    total = torch.sqrt(sum((g.float() ** 2).sum() for g in grads))
    for g in grads:
        g.mul_(max_norm / (total + 1e-6))
    return total
''',
        "sum of the tensors' norms instead of the norm of all gradients": '''
import torch


@torch.no_grad()
def clip_grad_norm(parameters, max_norm):
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    total = sum(g.float().norm() for g in grads)
    scale = (max_norm / (total + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(scale)
    return total
''',
        "goes through the parameters twice (a generator is empty the second time)": '''
import torch


@torch.no_grad()
def clip_grad_norm(parameters, max_norm):
    total = torch.sqrt(sum((p.grad.float() ** 2).sum() for p in parameters if p.grad is not None) + torch.tensor(0.0))
    scale = (max_norm / (total + 1e-6)).clamp(max=1.0)
    for p in parameters:
        if p.grad is not None:
            p.grad.mul_(scale)
    return total
''',
    },
    "ex-05-sampling": {
        "top-k keeps exactly k indices, dropping tokens tied with the k-th": '''
import torch


def next_token_probs(logits, temperature=1.0, top_k=None, top_p=None):
    logits = logits.float()
    if temperature == 0:
        return torch.nn.functional.one_hot(logits.argmax(dim=-1), logits.shape[-1]).float()
    logits = logits / temperature
    if top_k is not None:
        keep_idx = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).indices
        keep = torch.zeros_like(logits, dtype=torch.bool).scatter(-1, keep_idx, True)
        logits = logits.masked_fill(~keep, float("-inf"))
    if top_p is not None:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        before = probs.cumsum(dim=-1) - probs
        sorted_logits = sorted_logits.masked_fill(before >= top_p, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    return torch.softmax(logits, dim=-1)
''',
        "top-p measured on the distribution before top-k": '''
import torch


def next_token_probs(logits, temperature=1.0, top_k=None, top_p=None):
    logits = logits.float()
    if temperature == 0:
        return torch.nn.functional.one_hot(logits.argmax(dim=-1), logits.shape[-1]).float()
    logits = logits / temperature
    unfiltered = logits
    if top_k is not None:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None:
        sorted_all, order = torch.sort(unfiltered, dim=-1, descending=True)
        probs = torch.softmax(sorted_all, dim=-1)
        before = probs.cumsum(dim=-1) - probs
        sorted_logits = torch.gather(logits, -1, order).masked_fill(before >= top_p, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    return torch.softmax(logits, dim=-1)
''',
        "top-p keeps the wrong side (drops the likeliest tokens)": '''
import torch


def next_token_probs(logits, temperature=1.0, top_k=None, top_p=None):
    logits = logits.float()
    if temperature == 0:
        return torch.nn.functional.one_hot(logits.argmax(dim=-1), logits.shape[-1]).float()
    logits = logits / temperature
    if top_k is not None:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        before = probs.cumsum(dim=-1) - probs
        sorted_logits = sorted_logits.masked_fill(before < top_p, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    return torch.softmax(logits, dim=-1)
''',
        "top-p drops the token that crosses p (cumulative mass including itself)": '''
import torch


def next_token_probs(logits, temperature=1.0, top_k=None, top_p=None):
    logits = logits.float()
    if temperature == 0:
        return torch.nn.functional.one_hot(logits.argmax(dim=-1), logits.shape[-1]).float()
    logits = logits / temperature
    if top_k is not None:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
        remove = cumulative > top_p
        remove[:, 0] = False
        sorted_logits = sorted_logits.masked_fill(remove, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    return torch.softmax(logits, dim=-1)
''',
        "temperature multiplies the logits": '''
import torch


def next_token_probs(logits, temperature=1.0, top_k=None, top_p=None):
    logits = logits.float()
    if temperature == 0:
        return torch.nn.functional.one_hot(logits.argmax(dim=-1), logits.shape[-1]).float()
    logits = logits * temperature
    if top_k is not None:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        sorted_logits = sorted_logits.masked_fill(probs.cumsum(dim=-1) - probs >= top_p, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    return torch.softmax(logits, dim=-1)
''',
        "top-p filter left in sorted order (not scattered back)": '''
import torch


def next_token_probs(logits, temperature=1.0, top_k=None, top_p=None):
    logits = logits.float()
    if temperature == 0:
        return torch.nn.functional.one_hot(logits.argmax(dim=-1), logits.shape[-1]).float()
    logits = logits / temperature
    if top_k is not None:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        logits = sorted_logits.masked_fill(probs.cumsum(dim=-1) - probs >= top_p, float("-inf"))
    return torch.softmax(logits, dim=-1)
''',
        "top-k keeps one token too many": '''
import torch


def next_token_probs(logits, temperature=1.0, top_k=None, top_p=None):
    logits = logits.float()
    if temperature == 0:
        return torch.nn.functional.one_hot(logits.argmax(dim=-1), logits.shape[-1]).float()
    logits = logits / temperature
    if top_k is not None:
        kth = torch.topk(logits, min(top_k + 1, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        sorted_logits = sorted_logits.masked_fill(probs.cumsum(dim=-1) - probs >= top_p, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    return torch.softmax(logits, dim=-1)
''',
    },
}
