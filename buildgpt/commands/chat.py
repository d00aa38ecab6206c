"""Talk to an instruction-tuned model (chapter 7).

Type an instruction and press Enter; the model answers in the Alpaca format it was tuned on. To give
an input as well, write the instruction, then " || ", then the input. Ctrl-D (end of input) or
Ctrl-C leaves. --ckpt takes a buildgpt checkpoint or run folder (from `python -m buildgpt finetune`)
or GPT-2 weights (gpt2, a folder, a .safetensors file).

  python -m buildgpt chat --ckpt runs/instruct
  echo "Name three primary colors." | python -m buildgpt chat --ckpt runs/instruct
"""

from __future__ import annotations

import argparse
import sys

from buildgpt.impl import add_impl_argument, load_impl
from buildgpt.threads import THREADS_HELP, set_threads


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", required=True, help="buildgpt checkpoint (file or run folder) or GPT-2 weights")
    parser.add_argument("--temperature", type=float, default=0.0, help="0 (the default) answers greedily")
    parser.add_argument("--max-new-tokens", type=int, default=200)
    parser.add_argument("--seed", type=int, default=None, help="seed for sampling when --temperature > 0")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    parser.add_argument("--threads", type=int, help=THREADS_HELP)
    add_impl_argument(parser)


def run(args: argparse.Namespace) -> int:
    import torch

    from buildgpt.commands import CommandError
    from buildgpt.commands.finetune import load_any, pick_device
    impl = load_impl(args)  # buildgpt, or the student's own package (--impl mygpt)
    set_threads(args.threads)
    end_of_text_id, generate_response = impl.instruct.end_of_text_id, impl.instruct.generate_response

    if args.temperature < 0:
        raise CommandError(f"--temperature must be 0 or more; got {args.temperature}")
    if args.max_new_tokens < 1:
        raise CommandError(f"--max-new-tokens must be at least 1; got {args.max_new_tokens}")
    device = pick_device(args.device)
    model, tokenizer, _ = load_any(args.ckpt, device="cpu", impl=impl)
    end_of_text_id(tokenizer)
    model.to(device).eval()
    generator = None
    if args.seed is not None:
        generator = torch.Generator(device=device).manual_seed(args.seed)
    interactive = sys.stdin.isatty()
    if interactive:
        print("Type an instruction (add ' || ' and an input if it needs one); Ctrl-D leaves.")
    try:
        while True:
            try:
                line = input("> " if interactive else "")
            except EOFError:
                if interactive:
                    print()
                return 0
            if not line.strip():
                continue
            instruction, _, given = line.partition(" || ")
            entry = {"instruction": instruction.strip(), "input": given.strip()}
            response, ended = generate_response(model, tokenizer, entry, max_new_tokens=args.max_new_tokens,
                                                temperature=args.temperature, generator=generator)
            print(response.strip() + ("" if ended else " [...]"), flush=True)
    except KeyboardInterrupt:
        print()
        return 0
