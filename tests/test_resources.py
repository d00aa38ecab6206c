"""The shipped files: checksums as documented, and GPT-2's tokenizer with no network."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys

import pytest

from buildgpt.resources import dataset_path, gpt2_encoding
from notebooks import ROOT


def documented_checksums() -> dict[str, str]:
    table = (ROOT / "datasets" / "README.md").read_text()
    return dict(re.findall(r"^\| (\S+) \| [\d,]+ \| ([0-9a-f]{64}) \|", table, flags=re.M))


def test_every_shipped_file_matches_its_documented_checksum():
    checksums = documented_checksums()
    shipped = {str(p.relative_to(ROOT / "datasets")) for p in (ROOT / "datasets").rglob("*")
               if p.is_file() and p.name not in ("README.md", "__init__.py") and "__pycache__" not in p.parts}
    assert shipped == set(checksums), f"datasets/README.md's checksum table and the shipped files differ: {shipped ^ set(checksums)}"
    for name, sha in checksums.items():
        assert hashlib.sha256(dataset_path(name).read_bytes()).hexdigest() == sha, name


def test_unknown_dataset_is_one_clear_sentence():
    with pytest.raises(FileNotFoundError, match="ships no data file named 'nope.txt'"):
        dataset_path("nope.txt")


def test_gpt2_encoding_offline():
    enc = gpt2_encoding()
    assert enc.encode("Hello, world") == [15496, 11, 995]
    assert enc.n_vocab == 50257
    assert enc.encode("<|endoftext|>", allowed_special="all") == [50256]
    text = "Héllo wörld 🤖 — 12345   spaces\n\tand 東京"
    assert enc.decode(enc.encode(text)) == text


def test_gpt2_encoding_is_tiktokens_own(tmp_path):
    """tiktoken.get_encoding("gpt2"), fed the same files through its cache, encodes identically."""
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "6d1cbeee0f20b3d9449abfede4726ed8212e3aee").write_bytes(dataset_path("gpt2/vocab.bpe").read_bytes())
    (cache / "6c7ea1a7e38e3a7f062df639a5b80947f075ffe6").write_bytes(dataset_path("gpt2/encoder.json").read_bytes())
    text = dataset_path("the-verdict.txt").read_text(encoding="utf-8")
    code = ("import sys, tiktoken; e = tiktoken.get_encoding('gpt2'); "
            "print(e.encode(sys.stdin.read(), allowed_special='all'))")
    env = dict(os.environ, TIKTOKEN_CACHE_DIR=str(cache))
    out = subprocess.run([sys.executable, "-c", code], input=text, env=env, capture_output=True, text=True, check=True)
    assert eval(out.stdout) == gpt2_encoding().encode(text, allowed_special="all")


def test_gpt2_encoding_leaves_the_users_cache_setting_alone(monkeypatch, tmp_path):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    gpt2_encoding.cache_clear()
    gpt2_encoding()
    assert os.environ["TIKTOKEN_CACHE_DIR"] == str(tmp_path)
