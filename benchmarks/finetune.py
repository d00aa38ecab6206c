"""Chapter 7's CPU measurement, outside the notebook: validation loss before and after instruction
fine-tuning (full and LoRA) of the chapter's small character GPT, and LoRA's trainable fraction.

It repeats the chapter's cells (same seeds, same steps): a 64-wide, 2-layer GPT with a 512-character
context and a vocabulary of TinyShakespeare's and the training instructions' characters plus "\\x03",
pretrained for 300 steps on TinyShakespeare, then fine-tuned for 300 steps each way. It also counts
LoRA's trainable fraction for GPT-2 small on the meta device (no weights needed).

    python benchmarks/finetune.py [--threads 1] [--steps 300]
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import time

import torch
import torch.nn.functional as F


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=300, help="fine-tuning steps of each kind (the chapter: 300)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from buildgpt.basics import set_seed
    from buildgpt.instruct import (END_OF_TEXT_CHAR, evaluate_loss, finetune, format_prompt,
                                   instruction_batches, load_instructions, split_dataset)
    from buildgpt.lora import apply_lora, lora_report, merge_lora
    from buildgpt.model import GPT, GPTConfig
    from buildgpt.resources import dataset_path
    from buildgpt.tokenizer import CharTokenizer

    data = load_instructions(dataset_path("instruction-data.json"))
    train, val, _ = split_dataset(data, seed=123)
    shakespeare = dataset_path("tinyshakespeare.txt").read_text(encoding="utf-8")
    tok = CharTokenizer(shakespeare + "".join(format_prompt(e) + e["output"] for e in train) + END_OF_TEXT_CHAR)

    set_seed(1337)
    config = GPTConfig(vocab_size=tok.vocab_size, context_length=512, d_model=64, n_heads=4, n_layers=2)
    model = GPT(config)
    corpus = torch.tensor(tok.encode(shakespeare), dtype=torch.long)
    steps, window, max_lr = 300, config.context_length, 4e-3
    opt = torch.optim.AdamW(model.parameters(), lr=max_lr, weight_decay=0.1)
    sampler = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for step in range(steps):
        lr = max_lr * min(1.0, (step + 1) / 20) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / steps)))
        for group in opt.param_groups:
            group["lr"] = lr
        starts = torch.randint(0, len(corpus) - window - 1, (4,), generator=sampler)
        x = torch.stack([corpus[s:s + window] for s in starts])
        y = torch.stack([corpus[s + 1:s + window + 1] for s in starts])
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval()
    print(f"pretraining: {steps} steps in {time.perf_counter() - start:.0f} s, last loss {loss.item():.3f}")

    val_batches = instruction_batches(val, tok, 8, max_length=config.context_length)
    before = evaluate_loss(model, val_batches)
    set_seed(0)
    full = copy.deepcopy(model)
    start = time.perf_counter()
    finetune(full, train, val, tok, steps=args.steps, batch_size=8, lr=1e-3, eval_every=25, progress=False)
    full_s = time.perf_counter() - start
    set_seed(0)
    lora = apply_lora(copy.deepcopy(model), r=8, alpha=16)
    report = lora_report(lora)
    start = time.perf_counter()
    finetune(lora, train, val, tok, steps=args.steps, batch_size=8, lr=3e-3, eval_every=25, progress=False)
    lora_s = time.perf_counter() - start
    merge_lora(lora)
    print(f"validation loss before fine-tuning: {before:.3f}")
    print(f"full fine-tuning, {args.steps} steps ({full_s:.0f} s): {evaluate_loss(full, val_batches):.3f}")
    print(f"LoRA r=8 alpha=16, {args.steps} steps ({lora_s:.0f} s): {evaluate_loss(lora, val_batches):.3f}; {report}")
    with torch.device("meta"):
        print("GPT-2 small, LoRA r=8 on every linear layer of the blocks:",
              lora_report(apply_lora(GPT(GPTConfig.from_preset("gpt2")), r=8, alpha=16)))
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(f"threads {args.threads}; load average {load}")


if __name__ == "__main__":
    main()
