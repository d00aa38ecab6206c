"""Instruction-tune a GPT on an Alpaca-style JSON file, fully or with LoRA (chapter 7).

The model is a buildgpt checkpoint (a file or a run folder, from `python -m buildgpt train` or an
earlier fine-tuning) or GPT-2's weights (a name such as gpt2 or gpt2-medium, found in the local
cache that chapter 6 fills, or a folder or model.safetensors file). The data is the course's
checkable tasks mixed with Alpaca records (datasets/instruct-tasks.json, split into train,
validation and test already), or any JSON list of {instruction, input, output} records, which is
split 85/5/10 with --seed. The loss counts the response only (--no-mask-prompt counts the prompt
too), averaged within each example and then over the batch (--token-mean: one mean over all tokens). Written to --out:
  ckpt.pt            the fine-tuned model (LoRA merged in), a buildgpt checkpoint for `chat`
  state.pt           what --resume needs: trainable weights, optimizer, step, options
  history.json       train and validation loss at every evaluation, minutes, the machine's load
  test-answers.json  the model's answers to the test split, each checked (buildgpt.tasks.check_answer)

  python -m buildgpt finetune --ckpt datasets/instruct-base.pt --out runs/instruct-sft
  python -m buildgpt finetune --ckpt datasets/instruct-base.pt --lora-rank 16 --out runs/instruct-lora
  python -m buildgpt finetune --ckpt gpt2 --lora-rank 16 --steps 240 --data datasets/instruction-data.json --out runs/gpt2-lora

The tokenizer must have an end-of-text token, so the model can learn to stop: GPT-2's has one; a
character checkpoint needs "\x03" in its vocabulary (chapter 7 explains why and builds one).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import tempfile
import time
from pathlib import Path

from buildgpt.commands import CommandError, run_state
from buildgpt.impl import add_impl_argument, load_impl
from buildgpt.threads import THREADS_HELP, set_threads

GPT2_NAMES = ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", required=True, help="buildgpt checkpoint (file or run folder), or GPT-2 weights (gpt2, a folder, a .safetensors file)")
    parser.add_argument("--data", default=None, help="instruction JSON file (default: the course's datasets/instruct-tasks.json)")
    parser.add_argument("--out", required=True, help="folder for ckpt.pt, state.pt, history.json, test-answers.json")
    parser.add_argument("--lora-rank", type=int, default=0, help="LoRA rank r; 0 (the default) fine-tunes every weight")
    parser.add_argument("--lora-alpha", type=float, default=None, help="LoRA alpha (default: 2 * rank)")
    parser.add_argument("--lora-targets", default="attn.qkv,attn.proj,mlp.fc,mlp.proj", help="comma-separated layer names to adapt")
    parser.add_argument("--steps", type=int, default=300, help="optimizer steps (default 300)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=None, help="peak learning rate (default 1e-4 full, 1e-3 LoRA; 1e-3 / 3e-3 for small models)")
    parser.add_argument("--eval-every", type=int, default=50, help="validate and save every N steps")
    parser.add_argument("--no-mask-prompt", action="store_true", help="count the prompt tokens in the loss too")
    parser.add_argument("--token-mean", action="store_true",
                        help="one mean over all counted tokens of a batch (long answers weigh more) instead of "
                             "the mean per example (the default: every example weighs the same)")
    parser.add_argument("--seed", type=int, default=123, help="seed of the train/validation/test split and of the batches")
    parser.add_argument("--test-answers", type=int, default=None,
                        help="answer only the first N test examples (default: all; with the course's tasks, all checkable ones)")
    parser.add_argument("--max-new-tokens", type=int, default=None,
                        help="longest answer when testing (default 48 for the checkable tasks, 200 otherwise)")
    parser.add_argument("--export", default=None, help="at the end, also write the fine-tuned checkpoint here (e.g. datasets/instruct-sft.pt)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its state.pt")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (for logs)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    parser.add_argument("--threads", type=int, help=THREADS_HELP)
    add_impl_argument(parser)


def load_any(spec: str, device: str = "cpu", impl=None):
    """(model, tokenizer, tokenizer_meta) from a buildgpt checkpoint or GPT-2 weights, built with
    impl's code (buildgpt's by default; see buildgpt.impl)."""
    impl = impl or load_impl(None)
    path = Path(spec)
    if spec in GPT2_NAMES or path.suffix == ".safetensors" or (path.is_dir() and (path / "model.safetensors").is_file()):
        try:
            load_gpt2 = impl.pretrained.load_gpt2
        except ImportError:
            raise CommandError("loading GPT-2 weights needs buildgpt.pretrained (chapter 6), which this install lacks") from None
        from buildgpt.resources import gpt2_encoding

        return load_gpt2(spec, device=device), gpt2_encoding(), {"kind": "gpt2"}
    if not path.exists():
        raise FileNotFoundError(f"there is no checkpoint at {spec}; pass a .pt file or run folder from "
                                "`python -m buildgpt train`, or a GPT-2 name such as gpt2")
    load_checkpoint, load_model = impl.checkpoint.load_checkpoint, impl.checkpoint.load_model

    state = load_checkpoint(spec)
    model, tokenizer = load_model(spec, device=device)
    return model, tokenizer, state["tokenizer"]


def pick_device(name: str):
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name not in ("cpu", "cuda", "mps") and not name.startswith("cuda:"):
        raise CommandError(f"unknown device {name!r}; use auto, cpu, cuda or mps")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise CommandError("--device cuda was asked for but no CUDA GPU is available; use --device cpu")
    return torch.device(name)


def _atomic_save(obj, path: Path) -> None:
    import torch

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def run(args: argparse.Namespace) -> int:
    import copy

    import torch

    from buildgpt.resources import dataset_path

    impl = load_impl(args)  # buildgpt, or the student's own package (--impl mygpt)
    set_threads(args.threads)
    save_checkpoint = impl.checkpoint.save_checkpoint
    ins, lora = impl.instruct, impl.lora
    encode_example, end_of_text_id, evaluate_loss, evaluate_responses = (
        ins.encode_example, ins.end_of_text_id, ins.evaluate_loss, ins.evaluate_responses)
    finetune, instruction_batches = ins.finetune, ins.instruction_batches
    apply_lora, lora_report, merge_lora = lora.apply_lora, lora.lora_report, lora.merge_lora

    for name in ("steps", "batch_size", "eval_every", "max_new_tokens"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise CommandError(f"--{name.replace('_', '-')} must be at least 1; got {getattr(args, name)}")
    if args.lora_rank < 0:
        raise CommandError(f"--lora-rank must be 0 (full fine-tuning) or a positive rank; got {args.lora_rank}")
    if args.lr is not None and not args.lr > 0:
        raise CommandError(f"--lr must be positive; got {args.lr}")
    device = pick_device(args.device)
    train, val, test = ins.load_splits(args.data if args.data else dataset_path("instruct-tasks.json"), seed=args.seed)
    out = Path(args.out)
    state_path = run_state(out, args.resume)

    model, tokenizer, tokenizer_meta = load_any(args.ckpt, device="cpu", impl=impl)
    end_of_text_id(tokenizer)  # one sentence if the tokenizer cannot end an answer
    longest = max(len(encode_example(e, tokenizer)[0]) + 1 for e in train)
    if longest > model.config.context_length:
        print(f"note: the longest example has {longest} tokens but the model's context holds "
              f"{model.config.context_length}; longer examples are cut at the context length")
    targets = tuple(t.strip() for t in args.lora_targets.split(",") if t.strip())
    alpha = args.lora_alpha if args.lora_alpha is not None else 2.0 * args.lora_rank
    small = model.config.d_model < 512
    lr = args.lr if args.lr is not None else ((3e-3 if small else 1e-3) if args.lora_rank else (1e-3 if small else 1e-4))
    if args.lora_rank:
        apply_lora(model, args.lora_rank, alpha, targets)
    model.to(device)
    print(lora_report(model) if args.lora_rank else f"full fine-tuning of {sum(p.numel() for p in model.parameters()):,} parameters", "on", device)

    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=lr, weight_decay=0.0)
    start_step, history, minutes_before = 0, None, 0.0
    if args.resume:
        try:  # tensors and plain data only: a state.pt that asks to build other objects is refused, never run
            saved = torch.load(state_path, map_location=device, weights_only=True)
        except pickle.UnpicklingError:
            raise CommandError(f"{state_path} holds Python objects besides tensors and plain data, which could run "
                               "code when loaded; it was not loaded: start the run again without --resume") from None
        if saved["options"]["lora_rank"] != args.lora_rank or saved["options"]["seed"] != args.seed:
            raise CommandError(f"the run in {out} used --lora-rank {saved['options']['lora_rank']} and --seed "
                               f"{saved['options']['seed']}; resume it with the same options")
        if saved["options"].get("per_example", True) == args.token_mean:
            raise CommandError(f"the run in {out} was made {'without' if args.token_mean else 'with'} --token-mean; "
                               "resume it with the same options")
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        start_step, history = saved["step"], saved["history"]
        minutes_before = saved.get("minutes", 0.0)
        if start_step >= args.steps:
            raise CommandError(f"the run in {out} already did {start_step} steps; pass a larger --steps to continue it")
        print(f"resuming at step {start_step}")
    out.mkdir(parents=True, exist_ok=True)
    val_batches = instruction_batches(val, tokenizer, args.batch_size, mask_prompt=not args.no_mask_prompt,
                                      max_length=model.config.context_length)
    per_example = not args.token_mean
    # passed only when asked for, so a student package written before the option (--impl) still runs
    loss_option = {} if per_example else {"per_example": False}
    if history is None:
        before = evaluate_loss(model, val_batches, **loss_option)
        history = {"step": [0], "train_loss": [None], "val_loss": [before]}
        print(f"validation loss before fine-tuning: {before:.3f}")
    started = time.perf_counter()
    options = {"mask_prompt": not args.no_mask_prompt, "per_example": per_example, "lora_rank": args.lora_rank, "lora_alpha": alpha, "lora_targets": targets, "seed": args.seed, "lr": lr,
               "steps": args.steps, "batch_size": args.batch_size, "ckpt": args.ckpt}

    def save(step, run_history, opt):
        full = {k: history[k] + run_history[k] for k in ("step", "train_loss", "val_loss")}
        minutes = minutes_before + (time.perf_counter() - started) / 60
        full.update(minutes=round(minutes, 2), load_average=_load_average(), threads=torch.get_num_threads())
        _atomic_save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
                      "history": full, "options": options, "minutes": minutes}, state_path)
        deployable = merge_lora(copy.deepcopy(model)) if args.lora_rank else model
        save_checkpoint(out / "ckpt.pt", model=deployable, tokenizer_meta=tokenizer_meta, step=step,
                        extra={"finetune": options, "val_loss": run_history["val_loss"][-1]})
        (out / "history.json").write_text(json.dumps(full, indent=1) + "\n", encoding="utf-8")
        print(f"step {step}: validation loss {run_history['val_loss'][-1]:.3f}; saved {out / 'ckpt.pt'}")

    run_history = finetune(model, train, val, tokenizer, steps=args.steps, batch_size=args.batch_size, lr=lr,
                           mask_prompt=not args.no_mask_prompt, **loss_option, eval_every=args.eval_every, seed=args.seed,
                           optimizer=optimizer, start_step=start_step, on_eval=save, progress=not args.no_progress)
    after = run_history["val_loss"][-1] if run_history["val_loss"] else history["val_loss"][-1]
    print(f"validation loss: {history['val_loss'][0]:.3f} before, {after:.3f} after")
    if args.lora_rank:
        merge_lora(model)
    if args.export:
        run_record = json.loads((out / "history.json").read_text(encoding="utf-8"))
        export = save_checkpoint(args.export, model=model, tokenizer_meta=tokenizer_meta, step=args.steps,
                                 extra={"finetune": options, "val_loss": after, "history": run_record,
                                        "command": "finetune"})
        print(f"wrote the fine-tuned checkpoint {args.export} ({os.path.getsize(export) / 1e6:.1f} MB)")
    from buildgpt.tasks import TASK_FAMILIES

    checkable = [e for e in test if e.get("family") in TASK_FAMILIES]
    answering = checkable or test
    if args.test_answers is not None:
        answering = answering[:max(0, args.test_answers)]
    if answering:
        max_new = args.max_new_tokens or (48 if checkable else 200)
        summary = evaluate_responses(model, tokenizer, answering, out / "test-answers.json", max_new_tokens=max_new,
                                     progress=not args.no_progress)
        print(f"test answers: {summary['n']} saved to {out / 'test-answers.json'}; "
              f"ended with end-of-text {summary['ended']:.0%}"
              + (f", correct {summary['accuracy']:.1%}" if checkable else ""))
        for family, row in summary["by_family"].items():
            print(f"  {family:<11} {row['n']:>4} answers: correct {row['accuracy']:6.1%}, ended {row['ended']:6.1%}")
    return 0


def _load_average() -> float | None:
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
