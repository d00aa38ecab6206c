"""The tokenizer library that chapter 1 exports (buildgpt.tokenizer, buildgpt.text): the same ids as
tiktoken's GPT-2 on real and hostile text, lossless round trips for any Unicode, special tokens that
need permission, save/load, and training that is deterministic and as fast as the chapter says."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tracemalloc
import unicodedata
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from buildgpt.resources import dataset_path, gpt2_encoding
from buildgpt.text import clean_text
from buildgpt.tokenizer import (BPETokenizer, CharTokenizer, apply_merges, get_pair_counts, learn_merges,
                                merge_pair, most_frequent_pair, pretokenize)
from tokenizer_torture import TORTURE_TEXT

EOT = "<|endoftext|>"
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def ours() -> BPETokenizer:
    return BPETokenizer.from_gpt2()


@pytest.fixture(scope="module")
def tiktoken_gpt2():
    return gpt2_encoding()


@pytest.fixture(scope="module")
def shakespeare() -> str:
    return dataset_path("tinyshakespeare.txt").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def small() -> BPETokenizer:
    """A small tokenizer trained on The Verdict: few merges, so most text falls back to bytes."""
    return BPETokenizer.train(dataset_path("the-verdict.txt").read_text(encoding="utf-8"), 600)


# ------------------------------------------------------------------------------------------------
# Exactly GPT-2


def test_every_line_of_tinyshakespeare_matches_tiktoken(ours, tiktoken_gpt2, shakespeare):
    lines = shakespeare.splitlines(keepends=True)
    different = [line for line in lines if ours.encode(line) != tiktoken_gpt2.encode(line)]
    assert not different, f"{len(different)} of {len(lines)} lines differ, the first: {different[0]!r}"
    assert ours.encode(shakespeare) == tiktoken_gpt2.encode(shakespeare)


def test_torture_text_matches_tiktoken(ours, tiktoken_gpt2):
    allowed = {EOT}
    assert ours.encode(TORTURE_TEXT, allowed_special=allowed) == tiktoken_gpt2.encode(TORTURE_TEXT, allowed_special=allowed)
    assert ours.encode_ordinary(TORTURE_TEXT) == tiktoken_gpt2.encode_ordinary(TORTURE_TEXT)
    assert ours.encode(TORTURE_TEXT, allowed_special="all").count(50256) == TORTURE_TEXT.count(EOT) == 3
    for line in TORTURE_TEXT.splitlines(keepends=True):
        assert ours.encode(line, allowed_special="all") == tiktoken_gpt2.encode(line, allowed_special="all"), line
    assert ours.decode(ours.encode(TORTURE_TEXT, allowed_special="all")) == TORTURE_TEXT


def test_other_shipped_texts_match_tiktoken(ours, tiktoken_gpt2):
    verdict = dataset_path("the-verdict.txt").read_text(encoding="utf-8")
    assert ours.encode(verdict) == tiktoken_gpt2.encode(verdict)
    instructions = dataset_path("instruction-data.json").read_text(encoding="utf-8")
    assert ours.encode_ordinary(instructions) == tiktoken_gpt2.encode_ordinary(instructions)


@SETTINGS
@given(st.text())
def test_arbitrary_text_matches_tiktoken(ours, tiktoken_gpt2, text):
    assert ours.encode_ordinary(text) == tiktoken_gpt2.encode_ordinary(text)


@SETTINGS
@given(st.text(alphabet=st.sampled_from(list(" \t\n\r'sStTdDlLmMvVrReE0123456789.,!?-_é\u0301中😀\u200d\u00a0"))))
def test_text_dense_in_regex_edge_cases_matches_tiktoken(ours, tiktoken_gpt2, text):
    """Contractions, runs of spaces and digits, combining marks: where the pattern has corner cases."""
    assert ours.encode_ordinary(text) == tiktoken_gpt2.encode_ordinary(text)


@SETTINGS
@given(st.text(st.characters(exclude_categories=())))
def test_lone_surrogates_are_replaced_like_tiktoken(ours, tiktoken_gpt2, text):
    """A str may hold lone surrogates, which are not valid text; both tokenizers encode them as U+FFFD."""
    assert ours.encode_ordinary(text) == tiktoken_gpt2.encode_ordinary(text)


def test_whole_chunk_shortcut_changes_nothing(ours, shakespeare):
    """encode_ordinary looks a chunk up whole before merging (as tiktoken does); that must be a pure
    shortcut: every token of GPT-2 and of a trained vocabulary encodes to itself by merging alone."""
    trained = BPETokenizer.train(shakespeare, 2048)
    for tok in (ours, trained):
        for token_id in tok.merges.values():
            data = tok.token_bytes(token_id)
            assert apply_merges([tok.byte_ids[b] for b in data], tok.merges) == [token_id], data


def test_gpt2_files_follow_the_rank_convention(ours):
    assert ours.vocab_size == 50257 and len(ours.merges) == 50000
    assert sorted(ours.merges.values()) == list(range(256, 50256)), "merge r makes token 256 + r"
    assert sorted(ours.byte_ids) == list(range(256)) and ours.byte_ids[ord("!")] == 0
    assert ours.encode("Hello, world") == [15496, 11, 995]


# ------------------------------------------------------------------------------------------------
# Lossless


@SETTINGS
@given(st.text())
def test_decode_encode_round_trip_gpt2(ours, text):
    assert ours.decode(ours.encode_ordinary(text)) == text


@SETTINGS
@given(st.text())
def test_decode_encode_round_trip_small_trained_tokenizer(small, text):
    assert small.decode(small.encode_ordinary(text)) == text


@SETTINGS
@given(st.lists(st.integers(min_value=0, max_value=599), max_size=40))
def test_decode_never_raises_on_valid_ids(small, ids):
    text = small.decode(ids)  # any ids, even ones whose bytes are not valid UTF-8
    assert isinstance(text, str)


def test_decode_replaces_partial_characters_and_rejects_unknown_ids(ours, small):
    emoji = ours.encode("\U0001F600")
    assert len(emoji) > 1 and ours.decode(emoji[:1]) == "\ufffd"
    with pytest.raises(ValueError, match="60000"):
        ours.decode([60000])
    with pytest.raises(ValueError, match="600"):
        small.decode([1, 600])


@SETTINGS
@given(st.text(min_size=1))
def test_char_tokenizer_round_trips_its_own_alphabet(text):
    tok = CharTokenizer(text)
    assert tok.decode(tok.encode(text)) == text
    assert tok.vocab_size == len(set(text)) + 1


# ------------------------------------------------------------------------------------------------
# Special tokens


def test_special_token_needs_permission(ours, small):
    for tok in (ours, small):
        with pytest.raises(ValueError) as error:
            tok.encode(f"one document{EOT}the next")
        assert EOT in str(error.value) and "allowed_special" in str(error.value)
    assert ours.encode(f"a{EOT}b", allowed_special={EOT}) == [64, 50256, 65]
    assert ours.encode(f"a{EOT}b", allowed_special="all") == [64, 50256, 65]
    assert ours.encode(f"a{EOT}b", allowed_special=EOT) == [64, 50256, 65]
    assert 50256 not in ours.encode_ordinary(f"a{EOT}b")
    assert small.encode(EOT, allowed_special="all") == [small.special_tokens[EOT]] == [599]


def test_unknown_allowed_special_token_is_one_clear_error(ours):
    with pytest.raises(ValueError, match="not a special token"):
        ours.encode("hi", allowed_special={"<|im_start|>"})


def test_special_tokens_are_not_learned_as_text():
    text = f"hello world{EOT}" * 200
    tok = BPETokenizer.train(text, 300)
    learned = [tok.token_bytes(i) for i in tok.merges.values()]
    assert not any(b"<|" in token or b"|>" in token for token in learned), learned
    assert tok.special_tokens == {EOT: 256 + len(tok.merges)}


OVERLAPPING = {EOT: 50256, EOT + EOT: 50257, "<|end|>": 50258, "<|end|><|pad|>": 50259}


def test_overlapping_special_tokens_longest_match_wins(ours):
    tok = BPETokenizer(ours.merges, ours.byte_ids, OVERLAPPING)
    text = f"a{EOT}{EOT}{EOT}b<|end|><|pad|>c<|end|>"
    expected = [64, 50257, 50256, 65, 50259, 66, 50258]
    assert tok.encode(text, allowed_special="all") == expected
    assert tok.encode(text, allowed_special=list(OVERLAPPING)) == expected
    assert tok.encode(text, allowed_special=list(reversed(OVERLAPPING))) == expected


def test_overlapping_special_tokens_do_not_depend_on_the_hash_seed():
    """allowed_special="all" becomes a set, whose order changes with PYTHONHASHSEED: the ids must not."""
    script = (
        "from buildgpt.tokenizer import BPETokenizer\n"
        f"tok = BPETokenizer({{}}, None, {OVERLAPPING!r})\n"
        f"print(tok.encode({'a' + EOT * 3 + 'b<|end|><|pad|>c<|end|>'!r}, allowed_special='all'))\n"
        f"print(list(tok.encode_iterable(['a<|endof', 'text|><|endoftext|><|endo', 'ftext|>b<|end|><|p', "
        f"'ad|>c<|end|>'], allowed_special='all')))\n")
    outputs = set()
    for seed in range(6):
        env = {**os.environ, "PYTHONHASHSEED": str(seed)}
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        outputs.add(done.stdout)
    expected = "[97, 50257, 50256, 98, 50259, 99, 50258]\n"
    assert outputs == {expected * 2}, outputs


# ------------------------------------------------------------------------------------------------
# Streaming: encode_iterable


def test_encode_iterable_equals_whole_text_at_every_cut(ours):
    text = TORTURE_TEXT
    whole = ours.encode(text, allowed_special="all")
    for cut in range(len(text) + 1):  # two pieces, cut at every position (inside special tokens too)
        assert list(ours.encode_iterable([text[:cut], text[cut:]], allowed_special="all")) == whole, cut
    for size in (1, 2, 3, 5, 13, 64):
        pieces = [text[i:i + size] for i in range(0, len(text), size)]
        assert list(ours.encode_iterable(pieces, allowed_special="all")) == whole, size
    assert list(ours.encode_iterable(text.splitlines(keepends=True), allowed_special="all")) == whole


def test_encode_iterable_fuzzed_boundaries(ours):
    """Pieces made of the fragments where boundaries are hardest: contractions ("'l" + "l"), runs of
    spaces and newlines before a word, combining accents, special tokens cut in two, overlapping ones."""
    tok = BPETokenizer(ours.merges, ours.byte_ids, OVERLAPPING)
    fragments = ["'", "l", "L", "s", "ll", "ve", " ", "  ", "\n", "\n\n", "\t", "x", "1", "23", "e\u0301", "\u0301",
                 "\U0001F600", "\u4e2d", "!", "?", "\u00a0", "<|", "end", "of", "text", "|>", EOT, "<|end|>", "<|pad|>"]
    rng = random.Random(0)
    for _ in range(400):
        text = "".join(rng.choice(fragments) for _ in range(rng.randrange(60)))
        cuts = sorted(rng.sample(range(len(text) + 1), min(len(text) + 1, rng.randrange(8))))
        pieces = [text[i:j] for i, j in zip([0, *cuts], [*cuts, len(text)])]
        assert list(tok.encode_iterable(pieces, allowed_special="all")) == tok.encode(text, allowed_special="all"), text
        assert list(tok.encode_iterable(list(text), allowed_special="all")) == tok.encode(text, allowed_special="all"), text


def test_encode_iterable_reads_a_file(ours, shakespeare, tmp_path):
    path = tmp_path / "shakespeare.txt"
    path.write_text(shakespeare, encoding="utf-8")
    with path.open(encoding="utf-8") as lines:
        assert list(ours.encode_iterable(lines)) == ours.encode(shakespeare)


def test_encode_iterable_memory_stays_bounded(small):
    """Stream a generated text 30 times larger than the memory bound, without ever holding it."""
    words = ["the", "cat", "sat", "on", "a", "mat", "don't", "we'll", "1984", "caf\u00e9", "!", "\U0001F600"]

    def lines(count: int):
        rng = random.Random(1)
        for _ in range(count):
            yield " ".join(rng.choice(words) for _ in range(12)) + rng.choice(["\n", "\n\n", "  \n", ".\n"])

    count = 10_000  # about 480,000 characters
    small.encode_ordinary("".join(lines(200)))  # fill the cache with these few chunks before measuring
    tracemalloc.start()
    try:
        tokens, checksum = 0, 0
        for token_id in small.encode_iterable(lines(count)):
            tokens += 1
            checksum = (checksum * 31 + token_id) % 1_000_000_007
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    text = "".join(lines(count))
    expected = small.encode(text)
    assert len(text) > 30 * 16_000
    assert peak < 16_000, f"streaming {len(text):,} characters peaked at {peak:,} bytes"
    assert tokens == len(expected)
    reference = 0
    for token_id in expected:
        reference = (reference * 31 + token_id) % 1_000_000_007
    assert checksum == reference


def test_encode_iterable_errors_are_clear(ours):
    with pytest.raises(ValueError, match="not a special token"):
        ours.encode_iterable(["hi"], allowed_special={"<|im_start|>"})  # at the call, before any id
    with pytest.raises(ValueError, match="allowed_special"):
        list(ours.encode_iterable(["x" * 100 + "<|endof", "text|>" + "y" * 100]))
    with pytest.raises(TypeError, match="strings"):
        list(ours.encode_iterable([b"bytes, not text"]))
    assert list(ours.encode_iterable([])) == [] and list(ours.encode_iterable(["", ""])) == []


# ------------------------------------------------------------------------------------------------
# Save and load


def test_save_load_round_trip(tmp_path, small, ours, shakespeare):
    for name, tok in (("small", small), ("gpt2", ours)):
        path = tmp_path / f"{name}.json"
        tok.save(path)
        loaded = BPETokenizer.load(path)
        assert loaded.merges == tok.merges and loaded.special_tokens == tok.special_tokens
        assert loaded.byte_ids == tok.byte_ids and loaded.vocab == tok.vocab
        sample = shakespeare[:20_000] + TORTURE_TEXT
        assert loaded.encode(sample, allowed_special="all") == tok.encode(sample, allowed_special="all")


def test_load_errors_are_one_sentence(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        BPETokenizer.load(tmp_path / "missing.json")
    (tmp_path / "other.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(ValueError, match="not a tokenizer file"):
        BPETokenizer.load(tmp_path / "other.json")
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ValueError, match="not a tokenizer file"):
        BPETokenizer.load(tmp_path / "binary.json")


# ------------------------------------------------------------------------------------------------
# Training


def naive_merges(text: str, num_merges: int) -> list[tuple[bytes, bytes]]:
    """The definition, written independently of the library: recount everything, every step."""
    chunks = [[bytes([b]) for b in chunk.encode("utf-8")] for chunk in pretokenize(text)]
    learned = []
    for _ in range(num_merges):
        counts = Counter()
        for chunk in chunks:
            counts.update(zip(chunk, chunk[1:]))
        if not counts:
            break
        best = max(counts.items(), key=lambda item: (item[1], item[0]))[0]
        learned.append(best)
        merged_chunks = []
        for chunk in chunks:
            out, i = [], 0
            while i < len(chunk):
                if i + 1 < len(chunk) and (chunk[i], chunk[i + 1]) == best:
                    out.append(best[0] + best[1])
                    i += 2
                else:
                    out.append(chunk[i])
                    i += 1
            merged_chunks.append(out)
        chunks = merged_chunks
    return learned


def learned_pairs(tok: BPETokenizer) -> list[tuple[bytes, bytes]]:
    return [(tok.token_bytes(a), tok.token_bytes(b)) for (a, b), _ in sorted(tok.merges.items(), key=lambda kv: kv[1])]


def test_fast_training_learns_the_definitions_merges(shakespeare):
    text = shakespeare[:15_000]
    tok = BPETokenizer.train(text, 256 + 80, special_tokens=())
    assert learned_pairs(tok) == naive_merges(text, 80)


def test_tie_break_prefers_the_greater_pair_of_byte_strings():
    # Every pair occurs once: ties everywhere. (c, d) has the greatest bytes, then (a, b), then (' ', cd).
    tok = BPETokenizer.train("ab cd", 256 + 3, special_tokens=())
    assert learned_pairs(tok) == [(b"c", b"d"), (b"a", b"b"), (b" ", b"cd")]
    # Compare the pair, not the concatenation: ('ab', 'c') beats ('a', 'bc').
    vocab = {i: bytes([i]) for i in range(256)} | {256: b"ab", 257: b"bc"}
    assert most_frequent_pair({(97, 257): 2, (256, 99): 2}, vocab) == (256, 99)


def test_training_does_not_depend_on_dictionary_order(shakespeare):
    counts = Counter(chunk.encode("utf-8") for chunk in pretokenize(shakespeare[:100_000]))
    items = list(counts.items())
    random.Random(0).shuffle(items)
    assert list(learn_merges(dict(items), 300)[0].items()) == list(learn_merges(counts, 300)[0].items())
    assert BPETokenizer.train(shakespeare[:50_000], 400).merges == BPETokenizer.train(shakespeare[:50_000], 400).merges


def test_smaller_vocabularies_are_prefixes(shakespeare):
    text = shakespeare[:100_000]
    big = BPETokenizer.train(text, 700)
    for size in (257, 300, 512):
        direct = BPETokenizer.train(text, size)
        assert big.truncated(size).merges == direct.merges
        assert big.truncated(size).special_tokens == direct.special_tokens
    with pytest.raises(ValueError, match="vocab_size"):
        big.truncated(800)


def test_training_reaches_4096_on_tinyshakespeare_in_under_10_seconds(shakespeare):
    import time

    start = time.perf_counter()
    tok = BPETokenizer.train(shakespeare, 4096)
    seconds = time.perf_counter() - start
    assert tok.vocab_size == 4096 and len(tok.merges) == 4095 - 256
    assert seconds < 10, f"training to 4,096 took {seconds:.1f} s"


def test_bad_vocab_size_is_one_clear_error():
    with pytest.raises(ValueError, match="at least 257"):
        BPETokenizer.train("some text", 100)


def test_text_that_runs_out_of_pairs_gives_a_smaller_vocabulary():
    tok = BPETokenizer.train("aaaa", 1000)
    assert tok.vocab_size < 1000 and tok.encode("aaaa") == [tok.vocab_size - 2]


def test_pair_helpers():
    assert get_pair_counts([1, 2, 1, 2], weight=3) == {(1, 2): 6, (2, 1): 3}
    assert merge_pair([1, 1, 1], (1, 1), 9) == [9, 1]


# ------------------------------------------------------------------------------------------------
# Cleaning


@SETTINGS
@given(st.text(st.characters(codec="utf-8")))
def test_clean_text_output_is_tidy(text):
    out = clean_text(text)
    assert unicodedata.is_normalized("NFC", out)
    assert "\r" not in out and "  " not in out and "\n\n\n" not in out and out == out.strip()
    assert all(ch == "\n" or unicodedata.category(ch) != "Cc" for ch in out)
    assert "\u200b" not in out and "\ufeff" not in out
    assert all(line == line.strip(" ") for line in out.split("\n"))


def test_clean_text_keeps_real_text():
    kept = "Caf\u00e9 \U0001F469\u200d\U0001F4BB \u4e2d\u6587 x\u00b2 <|endoftext|> a < b"
    assert clean_text(kept) == kept
