"""Files the course ships: datasets and GPT-2's tokenizer, usable with no network."""

from __future__ import annotations

import functools
import importlib.resources
from pathlib import Path

GPT2_VOCAB_BPE_SHA256 = "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"
GPT2_ENCODER_JSON_SHA256 = "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"


def dataset_path(name: str) -> Path:
    """Path of a shipped data file, e.g. dataset_path("tinyshakespeare.txt").

    Works in a checkout (the repository's datasets/ folder) and in an installed package
    (the same files, packaged as buildgpt.datasets).
    """
    path = Path(str(importlib.resources.files("buildgpt.datasets").joinpath(name)))
    if not path.is_file():
        shipped = sorted(p.name for p in path.parent.iterdir() if p.is_file() and p.suffix in {".txt", ".json", ".pt"})
        raise FileNotFoundError(
            f"The course ships no data file named {name!r}; the shipped ones are {', '.join(shipped)}."
        )
    return path


@functools.lru_cache(maxsize=None)
def gpt2_encoding():
    """tiktoken's GPT-2 encoding, built from the shipped files: no download, no cache touched.

    It is the same tiktoken.Encoding that tiktoken.get_encoding("gpt2") returns (same pattern,
    merges and special token), so it encodes "Hello, world" as [15496, 11, 995].
    """
    import tiktoken
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks
    from tiktoken_ext import openai_public

    ranks = data_gym_to_mergeable_bpe_ranks(
        vocab_bpe_file=str(dataset_path("gpt2/vocab.bpe")),
        encoder_json_file=str(dataset_path("gpt2/encoder.json")),
        vocab_bpe_hash=GPT2_VOCAB_BPE_SHA256,
        encoder_json_hash=GPT2_ENCODER_JSON_SHA256,
    )
    return tiktoken.Encoding(
        name="gpt2",
        pat_str=openai_public.r50k_pat_str,
        mergeable_ranks=ranks,
        special_tokens={"<|endoftext|>": 50256},
        explicit_n_vocab=50257,
    )
