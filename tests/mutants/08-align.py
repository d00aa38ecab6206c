"""Plausible wrong answers to the exercises of chapter 8 (solutions/08-align.md).

Each mutant replaces the whole answer cell; the exercise's test cell must reject it.
"""

_IMPORTS = '''
import torch
import torch.nn.functional as F
'''

MUTANTS = {
    "ex-08-sequence-logprobs": {
        "mean over the answer's tokens instead of the sum": _IMPORTS + '''
def sequence_logprobs(logits, targets, ignore_index=-100):
    counted = targets != ignore_index
    safe = targets.masked_fill(~counted, 0)
    token_logps = torch.log_softmax(logits, dim=-1).gather(-1, safe.unsqueeze(-1)).squeeze(-1)
    return (token_logps * counted).sum(dim=-1) / counted.sum(dim=-1).clamp(min=1)
''',
        "prompt and padding counted: -100 replaced by token 0 and every position summed": _IMPORTS + '''
def sequence_logprobs(logits, targets, ignore_index=-100):
    safe = targets.clamp(min=0)
    return torch.log_softmax(logits, dim=-1).gather(-1, safe.unsqueeze(-1)).squeeze(-1).sum(dim=-1)
''',
        "shifted again although collate already shifted the targets": _IMPORTS + '''
def sequence_logprobs(logits, targets, ignore_index=-100):
    logits, targets = logits[:, :-1], targets[:, 1:]
    counted = targets != ignore_index
    safe = targets.masked_fill(~counted, 0)
    token_logps = torch.log_softmax(logits, dim=-1).gather(-1, safe.unsqueeze(-1)).squeeze(-1)
    return (token_logps * counted).sum(dim=-1)
''',
        "raw logits used as log-probabilities (no log_softmax)": _IMPORTS + '''
def sequence_logprobs(logits, targets, ignore_index=-100):
    counted = targets != ignore_index
    safe = targets.masked_fill(~counted, 0)
    token_logps = logits.gather(-1, safe.unsqueeze(-1)).squeeze(-1)
    return (token_logps * counted).sum(dim=-1)
''',
        "cross-entropy averaged over the whole batch, one number for all rows": _IMPORTS + '''
def sequence_logprobs(logits, targets, ignore_index=-100):
    loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=ignore_index)
    return -loss.expand(logits.shape[0])
''',
        "ignore_index fixed at -100 instead of the argument": _IMPORTS + '''
def sequence_logprobs(logits, targets, ignore_index=-100):
    counted = targets != -100
    safe = targets.masked_fill(~counted, 0).clamp(min=0)
    token_logps = torch.log_softmax(logits, dim=-1).gather(-1, safe.unsqueeze(-1)).squeeze(-1)
    return (token_logps * counted).sum(dim=-1)
''',
    },
    "ex-08-bradley-terry": {
        "chosen and rejected swapped": _IMPORTS + '''
def bradley_terry_loss(reward_chosen, reward_rejected):
    return -F.logsigmoid(reward_rejected - reward_chosen).mean()
''',
        "sigmoid instead of log-sigmoid": _IMPORTS + '''
def bradley_terry_loss(reward_chosen, reward_rejected):
    return -torch.sigmoid(reward_chosen - reward_rejected).mean()
''',
        "log of sigmoid, which is -inf for very negative margins": _IMPORTS + '''
def bradley_terry_loss(reward_chosen, reward_rejected):
    return -torch.log(torch.sigmoid(reward_chosen - reward_rejected)).mean()
''',
        "sum over the batch instead of the mean": _IMPORTS + '''
def bradley_terry_loss(reward_chosen, reward_rejected):
    return -F.logsigmoid(reward_chosen - reward_rejected).sum()
''',
    },
    "ex-08-dpo-loss": {
        "chosen and rejected swapped": _IMPORTS + '''
def dpo_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta):
    chosen = policy_chosen_logps - ref_chosen_logps.detach()
    rejected = policy_rejected_logps - ref_rejected_logps.detach()
    loss = -F.logsigmoid(beta * (rejected - chosen)).mean()
    return loss, (beta * chosen).detach(), (beta * rejected).detach()
''',
        "beta on the wrong side: outside the log-sigmoid": _IMPORTS + '''
def dpo_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta):
    chosen = policy_chosen_logps - ref_chosen_logps.detach()
    rejected = policy_rejected_logps - ref_rejected_logps.detach()
    loss = -beta * F.logsigmoid(chosen - rejected).mean()
    return loss, (beta * chosen).detach(), (beta * rejected).detach()
''',
        "divided by beta instead of multiplied": _IMPORTS + '''
def dpo_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta):
    chosen = policy_chosen_logps - ref_chosen_logps.detach()
    rejected = policy_rejected_logps - ref_rejected_logps.detach()
    loss = -F.logsigmoid((chosen - rejected) / beta).mean()
    return loss, (chosen / beta).detach(), (rejected / beta).detach()
''',
        "sigmoid instead of log-sigmoid": _IMPORTS + '''
def dpo_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta):
    chosen = policy_chosen_logps - ref_chosen_logps.detach()
    rejected = policy_rejected_logps - ref_rejected_logps.detach()
    loss = -torch.sigmoid(beta * (chosen - rejected)).mean()
    return loss, (beta * chosen).detach(), (beta * rejected).detach()
''',
        "the reference is not frozen: its log-probabilities are not detached": _IMPORTS + '''
def dpo_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta):
    chosen = policy_chosen_logps - ref_chosen_logps
    rejected = policy_rejected_logps - ref_rejected_logps
    loss = -F.logsigmoid(beta * (chosen - rejected)).mean()
    return loss, (beta * chosen).detach(), (beta * rejected).detach()
''',
        "reference log-ratio with the wrong sign": _IMPORTS + '''
def dpo_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta):
    chosen = policy_chosen_logps + ref_chosen_logps.detach()
    rejected = policy_rejected_logps + ref_rejected_logps.detach()
    loss = -F.logsigmoid(beta * (chosen - rejected)).mean()
    return loss, (beta * chosen).detach(), (beta * rejected).detach()
''',
        "log of sigmoid, which is -inf for very negative margins": _IMPORTS + '''
def dpo_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta):
    chosen = policy_chosen_logps - ref_chosen_logps.detach()
    rejected = policy_rejected_logps - ref_rejected_logps.detach()
    loss = -torch.log(torch.sigmoid(beta * (chosen - rejected))).mean()
    return loss, (beta * chosen).detach(), (beta * rejected).detach()
''',
        "sum over the batch instead of the mean": _IMPORTS + '''
def dpo_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta):
    chosen = policy_chosen_logps - ref_chosen_logps.detach()
    rejected = policy_rejected_logps - ref_rejected_logps.detach()
    loss = -F.logsigmoid(beta * (chosen - rejected)).sum()
    return loss, (beta * chosen).detach(), (beta * rejected).detach()
''',
    },
}
