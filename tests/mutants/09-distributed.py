"""Plausible wrong answers to the exercises of chapter 9 (solutions/09-distributed.md).

Each mutant replaces the whole answer cell; the exercise's test cell must reject it.
"""

MUTANTS = {
    "ex-09-zero-memory": {
        "stage 1 shards the gradients instead of the optimizer state": '''
def zero_bytes_per_rank(n_params, world_size, stage, optimizer_bytes=12):
    if stage not in (0, 1, 2, 3):
        raise ValueError("stage")
    if world_size < 1 or n_params < 0:
        raise ValueError("sizes")
    weights, grads, opt = 2.0 * n_params, 2.0 * n_params, float(optimizer_bytes) * n_params
    if stage >= 1:
        grads /= world_size
    if stage >= 2:
        opt /= world_size
    if stage >= 3:
        weights /= world_size
    return round(weights + grads + opt)
''',
        "float32 weights and gradients (4 + 4 bytes) on top of K": '''
def zero_bytes_per_rank(n_params, world_size, stage, optimizer_bytes=12):
    if stage not in (0, 1, 2, 3):
        raise ValueError("stage")
    if world_size < 1 or n_params < 0:
        raise ValueError("sizes")
    weights, grads, opt = 4.0 * n_params, 4.0 * n_params, float(optimizer_bytes) * n_params
    if stage >= 1:
        opt /= world_size
    if stage >= 2:
        grads /= world_size
    if stage >= 3:
        weights /= world_size
    return round(weights + grads + opt)
''',
        "optimizer_bytes ignored (always 12)": '''
def zero_bytes_per_rank(n_params, world_size, stage, optimizer_bytes=12):
    if stage not in (0, 1, 2, 3):
        raise ValueError("stage")
    if world_size < 1 or n_params < 0:
        raise ValueError("sizes")
    weights, grads, opt = 2.0 * n_params, 2.0 * n_params, 12.0 * n_params
    if stage >= 1:
        opt /= world_size
    if stage >= 2:
        grads /= world_size
    if stage >= 3:
        weights /= world_size
    return round(weights + grads + opt)
''',
        "no check of the world size": '''
def zero_bytes_per_rank(n_params, world_size, stage, optimizer_bytes=12):
    if stage not in (0, 1, 2, 3):
        raise ValueError("stage")
    weights, grads, opt = 2.0 * n_params, 2.0 * n_params, float(optimizer_bytes) * n_params
    if stage >= 1:
        opt /= max(world_size, 1)
    if stage >= 2:
        grads /= max(world_size, 1)
    if stage >= 3:
        weights /= max(world_size, 1)
    return round(weights + grads + opt)
''',
    },
    "ex-09-accumulate": {
        "every micro-batch weighted 1/k, wrong when the sizes differ": '''
import torch
from buildgpt.losses import cross_entropy


def accumulated_gradients(model, x, y, micro_batches):
    model.zero_grad(set_to_none=True)
    for xs, ys in zip(torch.tensor_split(x, micro_batches), torch.tensor_split(y, micro_batches)):
        (cross_entropy(model(xs), ys) / micro_batches).backward()
    return [p.grad.clone() for p in model.parameters()]
''',
        "losses summed, not averaged (k times the gradient)": '''
import torch
from buildgpt.losses import cross_entropy


def accumulated_gradients(model, x, y, micro_batches):
    model.zero_grad(set_to_none=True)
    for xs, ys in zip(torch.tensor_split(x, micro_batches), torch.tensor_split(y, micro_batches)):
        cross_entropy(model(xs), ys).backward()
    return [p.grad.clone() for p in model.parameters()]
''',
        "gradients not zeroed first (an earlier step's leak in)": '''
import torch
from buildgpt.losses import cross_entropy


def accumulated_gradients(model, x, y, micro_batches):
    B = x.shape[0]
    for xs, ys in zip(torch.tensor_split(x, micro_batches), torch.tensor_split(y, micro_batches)):
        (cross_entropy(model(xs), ys) * (xs.shape[0] / B)).backward()
    return [p.grad.clone() for p in model.parameters()]
''',
    },
    "ex-09-ddp": {
        "gradients summed with all_reduce, not averaged": '''
import torch
import torch.distributed as dist


def broadcast_parameters(model, src=0):
    with torch.no_grad():
        for p in model.parameters():
            dist.broadcast(p.data, src=src)


def average_gradients(model):
    for p in model.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
''',
        "initial weights never broadcast": '''
import torch
import torch.distributed as dist


def broadcast_parameters(model, src=0):
    pass


def average_gradients(model):
    world_size = dist.get_world_size()
    for p in model.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad /= world_size
''',
        "weights averaged instead of broadcast": '''
import torch
import torch.distributed as dist


def broadcast_parameters(model, src=0):
    with torch.no_grad():
        for p in model.parameters():
            dist.all_reduce(p.data)
            p.data /= dist.get_world_size()


def average_gradients(model):
    world_size = dist.get_world_size()
    for p in model.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad /= world_size
''',
        "frozen parameters (grad None) not skipped": '''
import torch
import torch.distributed as dist


def broadcast_parameters(model, src=0):
    with torch.no_grad():
        for p in model.parameters():
            dist.broadcast(p.data, src=src)


def average_gradients(model):
    world_size = dist.get_world_size()
    for p in model.parameters():
        dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
        p.grad /= world_size
''',
    },
    "ex-09-zero": {
        "parameters gathered before the step, so other ranks never see the update": '''
import math
import torch
import torch.distributed as dist
from buildgpt.optim import adamw_update


def shard_bounds(numel, world_size, rank):
    chunk = math.ceil(numel / world_size)
    start = min(rank * chunk, numel)
    return start, min(start + chunk, numel)


def zero2_step(param, grad, state, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    world_size, rank = dist.get_world_size(), dist.get_rank()
    n = param.numel()
    chunk = math.ceil(n / world_size)
    start, end = shard_bounds(n, world_size, rank)
    padded = torch.zeros(chunk * world_size, dtype=grad.dtype)
    padded[:n] = grad
    mine = torch.empty(chunk, dtype=grad.dtype)
    dist.reduce_scatter(mine, list(padded.chunk(world_size)))
    mine /= world_size
    if not state:
        state["step"] = 0
        state["exp_avg"] = torch.zeros(end - start, dtype=param.dtype)
        state["exp_avg_sq"] = torch.zeros(end - start, dtype=param.dtype)
    state["step"] += 1
    current = torch.zeros(chunk, dtype=param.dtype)
    current[: end - start] = param[start:end]
    pieces = [torch.empty(chunk, dtype=param.dtype) for _ in range(world_size)]
    dist.all_gather(pieces, current)
    param.copy_(torch.cat(pieces)[:n])
    shard = param[start:end]
    adamw_update(shard, mine[: end - start], state["exp_avg"], state["exp_avg_sq"], state["step"],
                 lr, betas[0], betas[1], eps, weight_decay)
''',
        "full optimizer state updated on every rank (all_reduce, no sharding)": '''
import math
import torch
import torch.distributed as dist
from buildgpt.optim import adamw_update


def shard_bounds(numel, world_size, rank):
    chunk = math.ceil(numel / world_size)
    start = min(rank * chunk, numel)
    return start, min(start + chunk, numel)


def zero2_step(param, grad, state, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    g = grad.clone()
    dist.all_reduce(g)
    g /= dist.get_world_size()
    if not state:
        state["step"] = 0
        state["exp_avg"] = torch.zeros_like(param)
        state["exp_avg_sq"] = torch.zeros_like(param)
    state["step"] += 1
    adamw_update(param, g, state["exp_avg"], state["exp_avg_sq"], state["step"], lr, betas[0], betas[1], eps, weight_decay)
''',
        "shards of numel // world_size: the tail is never updated": '''
import math
import torch
import torch.distributed as dist
from buildgpt.optim import adamw_update


def shard_bounds(numel, world_size, rank):
    chunk = numel // world_size
    return rank * chunk, (rank + 1) * chunk


def zero2_step(param, grad, state, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    world_size, rank = dist.get_world_size(), dist.get_rank()
    n = param.numel()
    chunk = n // world_size
    start, end = shard_bounds(n, world_size, rank)
    mine = torch.empty(chunk, dtype=grad.dtype)
    dist.reduce_scatter(mine, list(grad[: chunk * world_size].chunk(world_size)))
    mine /= world_size
    if not state:
        state["step"] = 0
        state["exp_avg"] = torch.zeros(chunk, dtype=param.dtype)
        state["exp_avg_sq"] = torch.zeros(chunk, dtype=param.dtype)
    state["step"] += 1
    shard = param[start:end].clone()
    adamw_update(shard, mine, state["exp_avg"], state["exp_avg_sq"], state["step"], lr, betas[0], betas[1], eps, weight_decay)
    pieces = [torch.empty(chunk, dtype=param.dtype) for _ in range(world_size)]
    dist.all_gather(pieces, shard)
    param[: chunk * world_size].copy_(torch.cat(pieces))
''',
        "reduce-scattered gradient summed, not divided by W": '''
import math
import torch
import torch.distributed as dist
from buildgpt.optim import adamw_update


def shard_bounds(numel, world_size, rank):
    chunk = math.ceil(numel / world_size)
    start = min(rank * chunk, numel)
    return start, min(start + chunk, numel)


def zero2_step(param, grad, state, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    world_size, rank = dist.get_world_size(), dist.get_rank()
    n = param.numel()
    chunk = math.ceil(n / world_size)
    start, end = shard_bounds(n, world_size, rank)
    padded = torch.zeros(chunk * world_size, dtype=grad.dtype)
    padded[:n] = grad
    mine = torch.empty(chunk, dtype=grad.dtype)
    dist.reduce_scatter(mine, list(padded.chunk(world_size)))
    if not state:
        state["step"] = 0
        state["exp_avg"] = torch.zeros(end - start, dtype=param.dtype)
        state["exp_avg_sq"] = torch.zeros(end - start, dtype=param.dtype)
    state["step"] += 1
    shard = param[start:end].clone()
    adamw_update(shard, mine[: end - start], state["exp_avg"], state["exp_avg_sq"], state["step"],
                 lr, betas[0], betas[1], eps, weight_decay)
    updated = torch.zeros(chunk, dtype=param.dtype)
    updated[: end - start] = shard
    pieces = [torch.empty(chunk, dtype=param.dtype) for _ in range(world_size)]
    dist.all_gather(pieces, updated)
    param.copy_(torch.cat(pieces)[:n])
''',
    },
}
