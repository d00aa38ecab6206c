"""Benchmark of the course's tokenizer (buildgpt.tokenizer, chapter 1) beside its peers.

    python benchmarks/tokenizer.py           # about half a minute
    python benchmarks/tokenizer.py --naive   # also runs the naive trainer to 512 (minutes)

Every figure is printed beside its peer, measured in the same run:
- exact match with tiktoken's GPT-2 encoding, on every line of TinyShakespeare and on a torture text;
- training time to vocabularies of 512 and 4,096 on TinyShakespeare, beside HuggingFace `tokenizers`'
  BPE trainer (and beside the naive "recount everything" trainer of the chapter);
- encoding throughput on TinyShakespeare in MB/s, beside tiktoken and `tokenizers`.
If `tokenizers` is not installed, its figures are skipped and the rest is printed.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from buildgpt.resources import dataset_path, gpt2_encoding  # noqa: E402
from buildgpt.tokenizer import (BPETokenizer, get_pair_counts, merge_pair, most_frequent_pair,  # noqa: E402
                                pretokenize)
from tokenizer_torture import TORTURE_TEXT  # noqa: E402

try:
    import tokenizers as hf
except ImportError:
    hf = None

EOT = "<|endoftext|>"


def best_time(function: Callable[[], object], repeat: int = 3) -> float:
    """The fastest of `repeat` runs, in seconds (the least disturbed by other work on the machine)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def percent(same: int, total: int) -> str:
    return f"{100 * same / total:.2f}% ({same:,} / {total:,})"


# ------------------------------------------------------------------------------------------------
# HuggingFace tokenizers


def hf_gpt2():
    """GPT-2's tokenizer in HuggingFace `tokenizers`, from the same two files."""
    model = hf.models.BPE.from_file(vocab=str(dataset_path("gpt2/encoder.json")),
                                    merges=str(dataset_path("gpt2/vocab.bpe")))
    tok = hf.Tokenizer(model)
    tok.pre_tokenizer = hf.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = hf.decoders.ByteLevel()
    return tok


def hf_train(text: str, vocab_size: int):
    tok = hf.Tokenizer(hf.models.BPE())
    tok.pre_tokenizer = hf.pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = hf.trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOT], show_progress=False,
                                     initial_alphabet=hf.pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(text.splitlines(keepends=True), trainer)  # its usual input: many short texts
    return tok


# ------------------------------------------------------------------------------------------------
# The naive trainer: the chapter's first version, recounting every pair of every chunk each step


def naive_train(text: str, num_merges: int) -> None:
    vocab = {i: bytes([i]) for i in range(256)}
    chunks = [list(chunk.encode("utf-8")) for chunk in pretokenize(text)]
    for new_id in range(256, 256 + num_merges):
        counts: dict = {}
        for ids in chunks:
            get_pair_counts(ids, counts)
        pair = most_frequent_pair(counts, vocab)
        chunks = [merge_pair(ids, pair, new_id) for ids in chunks]
        vocab[new_id] = vocab[pair[0]] + vocab[pair[1]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--naive", action="store_true", help="run the naive trainer all the way to 512 (minutes)")
    args = parser.parse_args()

    text = dataset_path("tinyshakespeare.txt").read_text(encoding="utf-8")
    n_bytes = len(text.encode("utf-8"))
    enc = gpt2_encoding()
    ours = BPETokenizer.from_gpt2()
    hf_tok = hf_gpt2() if hf else None
    print(f"Tokenizer benchmark: TinyShakespeare ({n_bytes:,} bytes), Python {platform.python_version()}, "
          f"{os.cpu_count()} CPU cores, {platform.machine()}")
    if hf is None:
        print("HuggingFace tokenizers is not installed (pip install tokenizers): its figures are skipped.")
    else:
        print(f"peers: tiktoken (OpenAI's GPT-2 encoding), tokenizers {hf.__version__}")

    # Exact match -------------------------------------------------------------------------------
    print("exact match with tiktoken's gpt2")
    lines = text.splitlines(keepends=True)
    reference = [enc.encode_ordinary(line) for line in lines]
    same = sum(ours.encode_ordinary(line) == ids for line, ids in zip(lines, reference))
    figures = [f"buildgpt {percent(same, len(lines))}"]
    if hf_tok:
        hf_same = sum(hf_tok.encode(line).ids == ids for line, ids in zip(lines, reference))
        figures.append(f"tokenizers {percent(hf_same, len(lines))}")
    row("TinyShakespeare, every line", *figures)
    torture_lines = TORTURE_TEXT.splitlines(keepends=True)
    same = sum(ours.encode(line, allowed_special="all") == enc.encode(line, allowed_special="all") for line in torture_lines)
    whole = ours.encode(TORTURE_TEXT, allowed_special={EOT}) == enc.encode(TORTURE_TEXT, allowed_special={EOT})
    row("torture text, every line", f"buildgpt {percent(same, len(torture_lines))}; "
        f"whole text {'identical' if whole else 'DIFFERENT'}")

    # Training ----------------------------------------------------------------------------------
    print("training on TinyShakespeare")
    for vocab_size in (512, 4096):
        seconds = best_time(lambda: BPETokenizer.train(text, vocab_size), repeat=2)
        figures = [f"buildgpt {seconds:.2f} s"]
        if hf:
            figures.append(f"tokenizers {best_time(lambda: hf_train(text, vocab_size)):.2f} s")
        if vocab_size == 512:
            if args.naive:
                start = time.perf_counter()
                naive_train(text, 512 - 256 - 1)
                figures.append(f"naive (recount everything) {time.perf_counter() - start:.0f} s")
            else:
                steps = 5
                per_merge = best_time(lambda: naive_train(text, steps), repeat=1) / steps
                figures.append(f"naive (recount everything) about {per_merge * 255:.0f} s, from {steps} merges")
        else:
            figures.append(f"(goal: buildgpt under 10 s: {'met' if seconds < 10 else 'NOT MET'})")
        row(f"to vocab {vocab_size:,}", *figures)

    # Throughput --------------------------------------------------------------------------------
    print("encoding TinyShakespeare")
    cold_times = []  # a fresh tokenizer each time, so the cache starts empty; loading is not timed
    for _ in range(3):
        fresh = BPETokenizer.from_gpt2()
        start = time.perf_counter()
        fresh.encode_ordinary(text)
        cold_times.append(time.perf_counter() - start)
    cold = n_bytes / min(cold_times) / 1e6
    warm = n_bytes / best_time(lambda: fresh.encode_ordinary(text)) / 1e6
    figures = [f"buildgpt {cold:.1f} MB/s (empty cache), {warm:.1f} MB/s (warm cache)",
               f"tiktoken {n_bytes / best_time(lambda: enc.encode_ordinary(text)) / 1e6:.1f} MB/s"]
    if hf_tok:
        figures.append(f"tokenizers {n_bytes / best_time(lambda: hf_tok.encode(text)) / 1e6:.1f} MB/s")
    row("throughput", *figures)
    row("", f"(goal: buildgpt at least 2 MB/s with an empty cache: {'met' if cold >= 2 else 'NOT MET'})")


def row(label: str, *figures: str) -> None:
    """One measurement: a label, then each figure beside its peers."""
    print(f"  {label + ':' if label else '':30s}" + "   ".join(figures))

if __name__ == "__main__":
    main()
