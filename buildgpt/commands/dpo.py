"""Align an instruction-tuned GPT with preference pairs by DPO (chapter 8).

The policy starts from --ckpt (a buildgpt checkpoint or run folder, from `python -m buildgpt
finetune`); the reference is a frozen copy of it, or --ref, which must have the same shape and
vocabulary. The pairs are a JSON file of {"instruction", "input", "chosen", "rejected"} records,
as a list or as {"train": [...], "val": [...]} (scripts/make_preference_pairs.py writes one). It
trains every weight, or LoRA adapters with --lora-rank, on the DPO loss with --beta. Written to --out:
  ckpt.pt        the aligned model (LoRA merged in), a buildgpt checkpoint for `chat` and `generate`
  state.pt       what --resume needs: trainable weights, optimizer, step, options
  history.json   loss, reward accuracy and margin, on training and validation pairs, at every evaluation

  python -m buildgpt dpo --ckpt datasets/instruct-sft.pt --data datasets/preference-pairs.json --beta 0.1 --out runs/dpo
  python -m buildgpt chat --ckpt runs/dpo
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from buildgpt.commands import CommandError, run_state
from buildgpt.impl import add_impl_argument, load_impl
from buildgpt.threads import THREADS_HELP, set_threads


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", required=True, help="the instruction-tuned model to align: a buildgpt checkpoint or run folder")
    parser.add_argument("--data", required=True, help="preference pairs: a JSON file (e.g. datasets/preference-pairs.json)")
    parser.add_argument("--out", required=True, help="folder for ckpt.pt, state.pt, history.json")
    parser.add_argument("--ref", default=None, help="the frozen reference model (default: --ckpt itself, as DPO intends)")
    parser.add_argument("--beta", type=float, default=0.1, help="DPO's beta: the price of drifting from the reference (default 0.1)")
    parser.add_argument("--steps", type=int, default=300, help="optimizer steps (default 300)")
    parser.add_argument("--batch-size", type=int, default=8, help="pairs per step (default 8)")
    parser.add_argument("--lr", type=float, default=None, help="peak learning rate (default 1e-4, or 1e-3 with LoRA; 1e-6 for GPT-2 sizes)")
    parser.add_argument("--eval-every", type=int, default=50, help="score the validation pairs and save every N steps")
    parser.add_argument("--lora-rank", type=int, default=0, help="LoRA rank r; 0 (the default) trains every weight")
    parser.add_argument("--lora-alpha", type=float, default=None, help="LoRA alpha (default: 2 * rank)")
    parser.add_argument("--lora-targets", default="attn.qkv,attn.proj,mlp.fc,mlp.proj", help="comma-separated layer names to adapt")
    parser.add_argument("--seed", type=int, default=0, help="seed of the order of the pairs")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its state.pt")
    parser.add_argument("--threads", type=int, help=THREADS_HELP)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    add_impl_argument(parser)


def _shape(config) -> dict:
    return {k: getattr(config, k) for k in ("vocab_size", "context_length", "d_model", "n_heads", "n_layers")}


def run(args: argparse.Namespace) -> int:
    import copy
    import pickle
    import zipfile

    import torch

    from buildgpt.commands.finetune import _atomic_save, load_any, pick_device

    impl = load_impl(args)  # buildgpt, or the student's own package (--impl mygpt)
    align, lora = impl.align, impl.lora
    save_checkpoint = impl.checkpoint.save_checkpoint
    end_of_text_id = impl.instruct.end_of_text_id

    for name in ("steps", "batch_size", "eval_every"):
        if getattr(args, name) < 1:
            raise CommandError(f"--{name.replace('_', '-')} must be at least 1; got {getattr(args, name)}")
    if not args.beta > 0:
        raise CommandError(f"--beta must be positive (0.1 is usual); got {args.beta}")
    if args.lora_rank < 0:
        raise CommandError(f"--lora-rank must be 0 (train every weight) or a positive rank; got {args.lora_rank}")
    if args.lr is not None and not args.lr > 0:
        raise CommandError(f"--lr must be positive; got {args.lr}")
    set_threads(args.threads)
    device = pick_device(args.device)
    train_pairs, val_pairs = align.load_pairs(args.data)
    out = Path(args.out)
    state_path = run_state(out, args.resume)

    policy, tokenizer, tokenizer_meta = load_any(args.ckpt, device="cpu", impl=impl)
    end_of_text_id(tokenizer)  # one sentence if the tokenizer cannot end an answer
    if args.ref is None:
        reference = copy.deepcopy(policy)
    else:
        reference, _, ref_meta = load_any(args.ref, device="cpu", impl=impl)
        if _shape(reference.config) != _shape(policy.config) or ref_meta != tokenizer_meta:
            what = ("vocabulary" if _shape(reference.config) == _shape(policy.config) else
                    ", ".join(f"{k} {v} vs {_shape(policy.config)[k]}" for k, v in _shape(reference.config).items()
                              if _shape(policy.config)[k] != v))
            raise CommandError(f"the reference model {args.ref} has another shape than {args.ckpt} ({what}); DPO's "
                               "reference must be the model the policy starts from: leave --ref out to use --ckpt itself")
    context = policy.config.context_length
    longest = max(len(tokenizer.encode(impl.instruct.format_prompt(p) + p[side])) + 1
                  for p in train_pairs + val_pairs for side in ("chosen", "rejected"))
    if longest > context:
        print(f"note: some prompt + answer rows have {longest} tokens but the model's context holds {context}; "
              "they are cut at the context length")
    small = policy.config.d_model < 512
    lr = args.lr if args.lr is not None else ((1e-3 if args.lora_rank else 1e-4) if small else (1e-5 if args.lora_rank else 1e-6))
    alpha = args.lora_alpha if args.lora_alpha is not None else 2.0 * args.lora_rank
    targets = tuple(t.strip() for t in args.lora_targets.split(",") if t.strip())
    if args.lora_rank:
        lora.apply_lora(policy, args.lora_rank, alpha, targets)
    policy.to(device)
    reference.to(device).eval().requires_grad_(False)
    print(f"{len(train_pairs)} training pairs, {len(val_pairs)} validation pairs; beta {args.beta}; "
          + (lora.lora_report(policy) if args.lora_rank else f"every one of {sum(p.numel() for p in policy.parameters()):,} parameters trains"),
          "on", device)

    trainable = [p for p in policy.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=lr, weight_decay=0.0)
    options = {"beta": args.beta, "lora_rank": args.lora_rank, "lora_alpha": alpha, "lora_targets": list(targets),
               "seed": args.seed, "lr": lr, "steps": args.steps, "batch_size": args.batch_size, "ckpt": str(args.ckpt),
               "ref": None if args.ref is None else str(args.ref), "data": str(args.data)}
    start_step, history = 0, None
    if args.resume:
        try:
            saved = torch.load(state_path, map_location=device, weights_only=True)
        except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError, OSError) as exc:
            raise CommandError(f"{state_path} is damaged ({type(exc).__name__}); start a new run with another --out") from None
        kept = {k: saved["options"][k] for k in ("beta", "lora_rank", "seed", "batch_size")}
        if kept != {k: options[k] for k in kept}:
            raise CommandError(f"the run in {out} used " + ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in kept.items())
                               + "; resume it with the same options")
        policy.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        start_step, history = saved["step"], saved["history"]
        if start_step >= args.steps:
            raise CommandError(f"the run in {out} already did {start_step} steps; pass a larger --steps to continue it")
        print(f"resuming at step {start_step}")
    out.mkdir(parents=True, exist_ok=True)
    if history is None:
        history = {"step": [], "loss": [], "accuracy": [], "margin": [], "val_loss": [], "val_accuracy": [],
                   "val_margin": [], "val_chosen_reward": [], "val_rejected_reward": []}
        if val_pairs:
            first = align.evaluate_preferences(policy, reference, val_pairs, tokenizer, args.beta)
            print(f"validation pairs before DPO: loss {first['loss']:.3f} (log 2: the policy is still the reference)")
    command = "python -m buildgpt dpo " + " ".join(
        f"--{k} {v}" for k, v in (("ckpt", args.ckpt), ("data", args.data), ("beta", args.beta), ("steps", args.steps),
                                  ("batch-size", args.batch_size), ("lr", lr), ("lora-rank", args.lora_rank),
                                  ("seed", args.seed), ("out", args.out)))

    def save(step, run_history, opt):
        full = {k: history[k] + run_history[k] for k in history}
        _atomic_save({"model": policy.state_dict(), "optimizer": opt.state_dict(), "step": step,
                      "history": full, "options": options}, state_path)
        deployable = lora.merge_lora(copy.deepcopy(policy)) if args.lora_rank else policy
        save_checkpoint(out / "ckpt.pt", model=deployable, tokenizer_meta=tokenizer_meta, step=step,
                        extra={"dpo": {**options, "command": command, "val_accuracy": run_history["val_accuracy"][-1],
                                       "val_margin": run_history["val_margin"][-1]}})
        (out / "history.json").write_text(json.dumps(full, indent=1) + "\n", encoding="utf-8")
        if val_pairs:
            print(f"step {step}: validation pairs: loss {run_history['val_loss'][-1]:.3f}, accuracy "
                  f"{run_history['val_accuracy'][-1]:.1%}, margin {run_history['val_margin'][-1]:.2f}; saved {out / 'ckpt.pt'}")
        else:
            print(f"step {step}: saved {out / 'ckpt.pt'} (no validation pairs to score)")

    align.dpo_train(policy, reference, train_pairs, val_pairs, tokenizer, steps=args.steps, beta=args.beta,
                    batch_size=args.batch_size, lr=lr, eval_every=args.eval_every, seed=args.seed,
                    optimizer=optimizer, start_step=start_step, on_eval=save)
    print(f"done: {out / 'ckpt.pt'}; talk to it with python -m buildgpt chat --ckpt {out}")
    return 0
