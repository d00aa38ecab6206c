"""Pretrain a GPT on a text file (chapter 5).

Examples:
  python -m buildgpt train --data datasets/tinyshakespeare.txt --out runs/shakespeare   # the book's char-book preset
  python -m buildgpt train --out runs/shakespeare --resume          # continue where it stopped
  python -m buildgpt train --data datasets/tinyshakespeare.txt --preset char-tiny --max-steps 200 --out runs/quick

--data is a UTF-8 text file (tokenized once into OUT/corpus/, with --tokenizer char, bpe or gpt2)
or a folder prepared by buildgpt.data.prepare_corpus. Every --eval-interval steps the run
evaluates on the validation split and writes OUT/ckpt.pt (model, optimizer, step, RNG states,
config, tokenizer) and OUT/metrics.json. Ctrl-C finishes the current step, saves, and exits;
--resume continues it with identical results (options that change the learning-rate schedule,
such as a new --max-steps, need --reschedule). A NaN or infinite loss, in training or in an
evaluation, stops the run and keeps the last good checkpoint. --time-limit plans the schedule to
end within the time: after warmup, the measured wall time per step (evaluations included, measured
again at every evaluation) says how many steps fit; the cosine reaches --min-lr there and the run
stops. --threads defaults to 1 when the load average shows the CPU cores already busy, otherwise to
one thread per physical core. Training uses PyTorch's fused kernels (the same math as the
chapters' code, up to float rounding); --taught-kernels runs the chapters' own code.

On several processes (chapter 9), with the global batch split between them:
  torchrun --standalone --nproc_per_node=2 -m buildgpt train --data datasets/tinyshakespeare.txt --out runs/ddp --strategy ddp
--strategy fsdp shards the weights, gradients and optimizer state (ZeRO-3); only rank 0 prints and
writes, and the checkpoint is a full one that any number of processes can --resume.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import fields
from pathlib import Path

from buildgpt.commands import CommandError
from buildgpt.impl import add_impl_argument, load_impl
from buildgpt.threads import THREADS_HELP, set_threads

# Options whose change on --resume would silently bend the learning-rate schedule of the run.
SCHEDULE_OPTIONS = ("max_steps", "warmup_steps", "lr", "min_lr", "time_limit_s")

BOOK_PRESET = "char-book"
# The book's default training settings for the char presets (benchmarks/pretrain.py measures them).
BOOK_TRAINING = dict(max_steps=3000, batch_size=16, grad_accum=1, lr=2e-3, min_lr=2e-4, warmup_steps=100,
                     weight_decay=0.1, beta1=0.9, beta2=0.99, grad_clip=1.0, eval_interval=200, eval_iters=10)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, help="a text file, or a prepared corpus folder (not needed with --resume)")
    parser.add_argument("--out", type=Path, required=True, help="the run folder: ckpt.pt, metrics.json, corpus/")
    parser.add_argument("--preset", default=BOOK_PRESET, help=f"model shape from buildgpt.model.PRESETS (default {BOOK_PRESET})")
    parser.add_argument("--tokenizer", choices=["char", "bpe", "gpt2"], default="char",
                        help="how to tokenize a text file (default char)")
    parser.add_argument("--vocab-size", type=int, help="vocabulary size for --tokenizer bpe (default 1024)")
    parser.add_argument("--context-length", type=int, help="override the preset's context length")
    parser.add_argument("--dropout", type=float, help="override the preset's dropout")
    parser.add_argument("--sinusoidal-init", action="store_true",
                        help="start the learned position table at the sinusoids of Vaswani et al. (2017), "
                             "each row scaled to length 0.5, instead of random numbers (chapter 7's base model)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its ckpt.pt")
    parser.add_argument("--device", default="auto", help="cpu, cuda, mps or auto (the fastest here; default)")
    parser.add_argument("--threads", type=int, help=THREADS_HELP)
    parser.add_argument("--export", type=Path, help="at the end, also write a weights-only checkpoint here (no optimizer)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    parser.add_argument("--strategy", choices=["ddp", "fsdp"],
                        help="how the processes torchrun starts share the run (chapter 9); --batch-size is the global batch")
    parser.add_argument("--time-limit", type=float, metavar="SECONDS", dest="time_limit_s",
                        help="end the run within this much wall time: the schedule is re-planned from the measured "
                             "time per step so that the learning rate reaches --min-lr when the time is up")
    parser.add_argument("--reschedule", action="store_true",
                        help="with --resume: accept a new --max-steps, --warmup-steps, --lr, --min-lr or --time-limit, "
                             "which changes the learning-rate schedule of the run")
    parser.add_argument("--taught-kernels", dest="fast", action="store_false", default=None,
                        help="train with the chapters' own LayerNorm, GELU, attention and AdamW loop instead of "
                             "PyTorch's fused kernels (slower; the same math)")
    group = parser.add_argument_group("training (defaults: the book's run)")
    for name, default in BOOK_TRAINING.items():
        group.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=None,
                           help=f"default {default}")
    group.add_argument("--seed", type=int, default=None, help="default 1337")
    group.add_argument("--compile", action="store_true", default=None, help="torch.compile the model")
    add_impl_argument(parser)


def _prepare(data: Path, out: Path, tokenizer: str, vocab_size: int | None, impl=None) -> Path:
    prepare_corpus = (impl or load_impl(None)).data.prepare_corpus

    if data.is_dir():
        if not (data / "meta.json").is_file():
            raise CommandError(f"{data} is a folder without meta.json; pass a text file or a folder made by prepare_corpus")
        return data
    if not data.is_file():
        raise CommandError(f"{data} does not exist; pass a UTF-8 text file such as datasets/tinyshakespeare.txt")
    corpus = out / "corpus"
    meta_path = corpus / "meta.json"
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("source") == data.name and meta.get("tokenizer") == tokenizer:
            return corpus
    try:
        prepare_corpus(data, corpus, tokenizer, vocab_size)
    except UnicodeDecodeError:
        raise CommandError(f"{data} is not UTF-8 text; pass a text file") from None
    return corpus


def tokenizer_meta(corpus: Path, meta: dict) -> dict:
    """What a checkpoint stores to rebuild the corpus's tokenizer (buildgpt.checkpoint.tokenizer_from_meta)."""
    if meta["tokenizer"] == "char":
        return {"kind": "char", "vocab": meta["vocab"]}
    if meta["tokenizer"] == "bpe":
        return {"kind": "bpe", "data": json.loads((corpus / meta["tokenizer_file"]).read_text(encoding="utf-8"))}
    return {"kind": "gpt2"}


def _print_eval(history: dict) -> None:
    last = history["evals"][-1]
    print(f"step {last['step']}: train loss {last['train_loss']:.4f}, val loss {last['val_loss']:.4f} "
          f"({last['wall_s']:.0f} s)", flush=True)


def _sinusoidal_init(model, impl) -> None:
    """Overwrite model.pos_emb's random start with chapter 2's sinusoidal table, rows scaled to length 0.5.

    Neighbouring positions then start with similar vectors and distant ones with different vectors,
    a structure a random table has to learn; the table still trains like any other weight.
    """
    import math

    import torch

    table = getattr(model, "pos_emb", None)
    if not isinstance(table, torch.nn.Embedding):
        raise CommandError("--sinusoidal-init needs a GPT with a learned position table model.pos_emb (chapter 4)")
    try:
        sinusoidal_positions = impl.embeddings.sinusoidal_positions
    except (AttributeError, ImportError):
        raise CommandError("--sinusoidal-init needs sinusoidal_positions from chapter 2 (buildgpt.embeddings)") from None
    context_length, d_model = table.weight.shape
    pe = sinusoidal_positions(context_length, d_model)  # rows of length sqrt(d_model / 2)
    with torch.no_grad():
        table.weight.copy_(pe.to(table.weight) * (0.5 / math.sqrt(d_model / 2)))
    print("position table started at the sinusoids of Vaswani et al. (2017), rows of length 0.5")


def run(args: argparse.Namespace) -> int:
    import torch

    impl = load_impl(args)  # buildgpt, or the student's own package (--impl mygpt)
    CHECKPOINT_FILE, load_checkpoint, save_checkpoint = (
        impl.checkpoint.CHECKPOINT_FILE, impl.checkpoint.load_checkpoint, impl.checkpoint.save_checkpoint)
    load_corpus, resolve_device = impl.data.load_corpus, impl.data.resolve_device
    GPT, GPTConfig = impl.model.GPT, impl.model.GPTConfig
    NonFiniteLoss, TrainConfig, train = impl.trainer.NonFiniteLoss, impl.trainer.TrainConfig, impl.trainer.train

    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise CommandError(f"--out {out} is a file; give a folder for the run (e.g. runs/NAME)")
    set_threads(args.threads)
    device = resolve_device("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else resolve_device(args.device)
    parallel = impl.distributed.parallel_from_environment(args.strategy, device)  # None for one process
    if parallel is not None:
        device = parallel.device  # each rank its own GPU
        if not parallel.is_main:
            sys.stdout = open(os.devnull, "w")  # only rank 0 prints (errors still reach stderr)

    overrides = {f.name: getattr(args, f.name) for f in fields(TrainConfig)
                 if getattr(args, f.name, None) is not None}
    if not impl.is_reference and args.fast is None:  # your own package: run your code as you wrote it, since
        overrides["fast"] = False  # the fused kernels would stand in for your LayerNorm, GELU, attention and AdamW
    if args.resume:
        if not (out / CHECKPOINT_FILE).is_file():
            raise CommandError(f"there is nothing to resume in {out} (no {CHECKPOINT_FILE}); start the run without --resume")
        state = load_checkpoint(out / CHECKPOINT_FILE)
        run_info = state["extra"].get("run")
        if not run_info:
            raise CommandError(f"{out / CHECKPOINT_FILE} was not written by the train command, so it cannot be resumed")
        corpus = Path(run_info["corpus"])
        model_config = GPTConfig(**state["config"])
        planned = state["extra"]["history"]["config"]
        changed = [name for name in SCHEDULE_OPTIONS if name in overrides and overrides[name] != planned.get(name)]
        if changed and not args.reschedule:
            name = changed[0]
            flag = "--time-limit" if name == "time_limit_s" else "--" + name.replace("_", "-")
            raise CommandError(f"{flag} {overrides[name]} would change the learning-rate schedule of this run "
                               f"(it has {planned.get(name)}); add --reschedule to accept that, or leave {flag} out")
        train_settings = {**planned, **overrides}
    else:
        if args.data is None:
            raise CommandError("--data is required for a new run; pass a text file such as datasets/tinyshakespeare.txt")
        if (out / CHECKPOINT_FILE).is_file():
            raise CommandError(f"{out} already holds a run; pass --resume to continue it, or choose another --out")
        PRESETS = impl.model.PRESETS

        if args.preset not in PRESETS:  # before the corpus is tokenized, not after
            raise CommandError(f"unknown preset {args.preset!r}; choose one of {', '.join(PRESETS)}")
        shape = {}
        if args.context_length is not None:
            shape["context_length"] = args.context_length
        if args.dropout is not None:
            shape["dropout"] = args.dropout
        train_settings = {**BOOK_TRAINING, **overrides}
        GPTConfig.from_preset(args.preset, **shape)  # every option is checked before anything is written
        TrainConfig(**train_settings)
        if parallel is None or parallel.is_main:
            corpus = _prepare(args.data, out, args.tokenizer, args.vocab_size, impl)
        if parallel is not None:
            parallel.barrier()  # rank 0 tokenizes the corpus once; the others then find it ready
            corpus = _prepare(args.data, out, args.tokenizer, args.vocab_size, impl)
        _, _, meta = load_corpus(corpus)
        model_config = GPTConfig.from_preset(args.preset, **shape, vocab_size=meta["vocab_size"])
    train_ids, val_ids, meta = load_corpus(corpus)
    if model_config.vocab_size < meta["vocab_size"]:
        raise CommandError(f"the model's vocabulary ({model_config.vocab_size}) is smaller than the corpus's "
                           f"({meta['vocab_size']}); use the corpus the run was started with")
    config = TrainConfig(**train_settings)
    if parallel is not None and config.batch_size % parallel.world_size:
        raise CommandError(f"--batch-size {config.batch_size} is the global batch and must be a multiple of the "
                           f"{parallel.world_size} processes; try --batch-size {parallel.world_size * max(1, config.batch_size // parallel.world_size)}")
    tok_meta = tokenizer_meta(corpus, meta)
    torch.manual_seed(config.seed)
    model = GPT(model_config)
    if args.sinusoidal_init and not args.resume:
        _sinusoidal_init(model, impl)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{'resuming' if args.resume else 'training'} a {n_params / 1e6:.2f}M-parameter GPT "
          f"({model_config.n_layers} layers, d_model {model_config.d_model}, context {model_config.context_length}) "
          f"on {meta['train_tokens']:,} {meta['tokenizer']} tokens, device {device}, into {out}")
    if not args.resume:  # the check every run makes: a fresh model's loss is close to ln(vocab_size)
        import math

        get_batch, cross_entropy = impl.data.get_batch, impl.losses.cross_entropy

        x, y = get_batch(train_ids, config.batch_size, model_config.context_length, device,
                         generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            first = cross_entropy(model.to(device).eval()(x), y).item()
        print(f"loss at initialization {first:.3f}; a fresh model should be near ln(vocab_size) = "
              f"ln({model_config.vocab_size}) = {math.log(model_config.vocab_size):.3f}")
    exported = model
    try:
        history = train(model, train_ids, val_ids, config, out_dir=out, tokenizer_meta=tok_meta, resume=args.resume,
                        device=device, progress=not args.no_progress, on_eval=_print_eval if args.no_progress else None,
                        run_info={"corpus": str(corpus.resolve()), "command": "train"},
                        **({"parallel": parallel} if parallel is not None else {}))
        if parallel is not None:
            peaks = parallel.peak_memory_mb()
            print(f"{parallel.world_size} processes ({args.strategy}); peak memory per rank: "
                  + ", ".join(f"{mb:.0f} MB" for mb in peaks))
            if args.export is not None:
                exported = parallel.checkpoint_views(model, None)[0]  # FSDP: gathered from every rank
            if not parallel.is_main:
                return 130 if history["stopped"] == "interrupted" else 0
    except NonFiniteLoss as exc:
        raise CommandError(str(exc)) from None
    finally:
        if parallel is not None:
            parallel.close()
    last = history["evals"][-1]
    print(f"step {last['step']}: train loss {last['train_loss']:.4f}, val loss {last['val_loss']:.4f}; "
          f"{history['tokens_per_s']:,.0f} tokens/s; checkpoint {out / CHECKPOINT_FILE}")
    if history["stopped"] == "interrupted":
        again = ("python -m buildgpt train" if parallel is None else
                 f"torchrun --standalone --nproc_per_node={parallel.world_size} -m buildgpt train --strategy {args.strategy}")
        print(f"stopped by Ctrl-C at step {last['step']}; continue with: {again} --out {out} --resume")
        return 130
    if args.export is not None:
        export = save_checkpoint(args.export, model=exported, tokenizer_meta=tok_meta, step=last["step"],
                                 extra={"history": history, "command": "train"})
        print(f"wrote the weights-only checkpoint {export} ({os.path.getsize(export) / 1e6:.1f} MB)")
    return 0
