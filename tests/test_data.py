"""buildgpt.data and buildgpt.embeddings (exported from chapter 2): the prepared-corpus format that
chapter 5's trainer reads, random batches from a memmap, and the errors a person can run into."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from buildgpt.data import (TokenWindowDataset, corpus_tokenizer, get_batch, load_corpus, prepare_corpus,
                           resolve_device, shifted_windows)
from buildgpt.embeddings import TokenPositionEmbedding, sinusoidal_positions

TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
        "All:\nSpeak, speak.\n\nFirst Citizen:\nYou are all resolved rather to die than to famish?\n") * 6


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "small.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def split_text(val_fraction=0.1):
    cut = int(len(TEXT) * (1 - val_fraction))
    return TEXT[:cut], TEXT[cut:]


def check_files(folder, meta):
    """meta.json matches the returned metadata, and each .bin holds 2 bytes per token."""
    assert json.loads((folder / "meta.json").read_text(encoding="utf-8")) == meta
    for split in ("train", "val"):
        assert (folder / f"{split}.bin").stat().st_size == 2 * meta[f"{split}_tokens"]
    for key, kind in [("format", int), ("tokenizer", str), ("vocab_size", int), ("dtype", str), ("train_tokens", int),
                      ("val_tokens", int), ("val_fraction", float), ("source", str)]:
        assert isinstance(meta[key], kind), key
    assert meta["format"] == 1 and meta["dtype"] == "uint16" and meta["source"] == "small.txt"


@pytest.mark.parametrize("val_fraction", [0.1, 0.25])
def test_char_corpus_round_trip(text_file, tmp_path, val_fraction):
    folder = tmp_path / "char"
    meta = prepare_corpus(text_file, folder, tokenizer="char", val_fraction=val_fraction)
    check_files(folder, meta)
    assert meta["tokenizer"] == "char" and meta["val_fraction"] == val_fraction
    assert meta["vocab"] == "".join(sorted(set(TEXT))) and meta["vocab_size"] == len(set(TEXT)) + 1  # id 0: unknown
    train, val, loaded = load_corpus(folder)
    assert loaded == meta
    assert isinstance(train, np.memmap) and train.dtype == np.uint16 and len(train) == meta["train_tokens"]
    tok = corpus_tokenizer(folder)
    train_text, val_text = split_text(val_fraction)
    assert tok.decode(train.tolist()) == train_text and tok.decode(val.tolist()) == val_text
    raw = np.fromfile(folder / "train.bin", dtype="<u2")  # the format is little-endian whatever the machine
    assert np.array_equal(raw, train)


def test_gpt2_corpus_round_trip(text_file, tmp_path):
    folder = tmp_path / "gpt2"
    meta = prepare_corpus(text_file, folder)  # GPT-2 is the default
    check_files(folder, meta)
    assert meta["tokenizer"] == "gpt2" and meta["vocab_size"] == 50257
    train, val, _ = load_corpus(folder)
    tok = corpus_tokenizer(folder)
    assert tok.decode(train.tolist()) + tok.decode(val.tolist()) == TEXT
    assert train[:3].tolist() == tok.encode("First Citizen:")[:3]


def test_gpt2_special_token_text_is_plain_text(tmp_path):
    path = tmp_path / "small.txt"
    path.write_text("a story<|endoftext|>another story, and more text after it " * 5, encoding="utf-8")
    meta = prepare_corpus(path, tmp_path / "eot", "gpt2", val_fraction=0.2)
    train, _, _ = load_corpus(tmp_path / "eot")
    assert 50256 not in train.tolist() and meta["train_tokens"] > 0


def test_bpe_corpus_round_trip(text_file, tmp_path):
    pytest.importorskip("buildgpt.tokenizer")
    folder = tmp_path / "bpe"
    meta = prepare_corpus(text_file, folder, tokenizer="bpe", vocab_size=300)
    check_files(folder, meta)
    assert meta["tokenizer"] == "bpe" and meta["tokenizer_file"] == "tokenizer.json"
    assert (folder / "tokenizer.json").is_file() and meta["vocab_size"] <= 300
    train, val, _ = load_corpus(folder)
    assert int(max(train.max(), val.max())) < meta["vocab_size"]
    tok = corpus_tokenizer(folder)
    train_text, val_text = split_text()
    assert tok.decode(train.tolist()) == train_text and tok.decode(val.tolist()) == val_text


def test_vocabularies_that_do_not_fit_uint16_are_refused(text_file, tmp_path):
    with pytest.raises(ValueError, match="65,535"):
        prepare_corpus(text_file, tmp_path / "big", tokenizer="bpe", vocab_size=70_000)
    assert not (tmp_path / "big").exists(), "nothing is written before the check"
    wide = tmp_path / "wide.txt"
    wide.write_text("".join(chr(c) for c in range(0x10000, 0x10000 + 66_000)), encoding="utf-8")  # 66,000 characters
    with pytest.raises(ValueError, match="65,535"):
        prepare_corpus(wide, tmp_path / "wide", tokenizer="char")


@pytest.mark.parametrize("kwargs, message", [
    ({"tokenizer": "words"}, "tokenizer must be"),
    ({"val_fraction": 0.0}, "val_fraction"),
    ({"val_fraction": 1.5}, "val_fraction"),
    ({"tokenizer": "gpt2", "vocab_size": 1000}, "only for"),
])
def test_bad_arguments_get_one_sentence(text_file, tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        prepare_corpus(text_file, tmp_path / "out", **kwargs)


def test_missing_text_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        prepare_corpus(tmp_path / "nope.txt", tmp_path / "out", "char")


def test_load_corpus_errors(text_file, tmp_path):
    with pytest.raises(FileNotFoundError, match="no prepared corpus .* prepare_corpus"):
        load_corpus(tmp_path / "nowhere")
    folder = tmp_path / "corpus"
    prepare_corpus(text_file, folder, "char")
    (folder / "val.bin").unlink()
    with pytest.raises(FileNotFoundError, match="has no val.bin"):
        load_corpus(folder)
    prepare_corpus(text_file, folder, "char")
    with open(folder / "train.bin", "ab") as f:
        f.write(b"\x00\x00")  # one id more than meta.json says
    with pytest.raises(ValueError, match="do not belong together"):
        load_corpus(folder)
    prepare_corpus(text_file, folder, "char")
    (folder / "meta.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_corpus(folder)
    (folder / "meta.json").write_text(json.dumps({"format": 99}), encoding="utf-8")
    with pytest.raises(ValueError, match="format-1"):
        load_corpus(folder)


def test_get_batch_from_a_memmap(tmp_path):
    ids = (np.arange(3000) * 7919 % 60000).astype(np.uint16)
    ids.tofile(tmp_path / "train.bin")
    data = np.memmap(tmp_path / "train.bin", dtype=np.uint16, mode="r")
    x, y = get_batch(data, 8, 64, "cpu", torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (8, 64) and x.dtype == y.dtype == torch.int64
    assert x.is_contiguous() and y.is_contiguous()
    reference = torch.from_numpy(ids.astype(np.int64))
    for row_x, row_y in zip(x, y):
        start = int(np.flatnonzero(ids == row_x[0].item())[0])
        assert torch.equal(row_x, reference[start : start + 64]) and torch.equal(row_y, reference[start + 1 : start + 65])


def test_get_batch_reaches_every_valid_start_and_no_other():
    data, T = torch.arange(30), 10
    x, _ = get_batch(data, 20_000, T, generator=torch.Generator().manual_seed(0))
    counts = torch.bincount(x[:, 0], minlength=30)
    assert counts[: 30 - T].min() > 0.7 * 20_000 / (30 - T), counts.tolist()  # starts 0 .. N - T - 1, about uniform
    assert counts[30 - T :].sum() == 0, counts.tolist()


def test_get_batch_repeats_with_a_seed():
    a = get_batch(torch.arange(500), 4, 16, generator=torch.Generator().manual_seed(3))
    b = get_batch(torch.arange(500), 4, 16, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


@pytest.mark.parametrize("device", ["gpu", "cuda:99", "tpu", 3.5])
def test_unknown_or_missing_devices_are_one_sentence(device):
    if device == "cuda:99" and torch.cuda.device_count() > 99:
        pytest.skip("a machine with 100 GPUs")
    with pytest.raises(ValueError, match="pass \"cpu\"") as info:
        get_batch(torch.arange(100), 2, 8, device=device)
    assert "\n" not in str(info.value)


def test_cuda_is_refused_only_without_a_gpu():
    if torch.cuda.is_available():
        x, _ = get_batch(torch.arange(100), 2, 8, device="cuda")
        assert x.device.type == "cuda"
    else:
        with pytest.raises(ValueError, match="not available on this machine"):
            resolve_device("cuda")


def test_context_longer_than_the_data():
    with pytest.raises(ValueError, match="holds 12"):
        get_batch(np.arange(12, dtype=np.uint16), 2, 12)
    x, y = get_batch(np.arange(12, dtype=np.uint16), 2, 11)
    assert x[0].tolist() == list(range(11)) and y[0].tolist() == list(range(1, 12))


def test_dataset_over_a_memmap_in_a_dataloader(tmp_path):
    np.arange(101, dtype=np.uint16).tofile(tmp_path / "ids.bin")
    data = np.memmap(tmp_path / "ids.bin", dtype=np.uint16, mode="r")
    ds = TokenWindowDataset(data, context_length=10)
    assert len(ds) == 10
    loader = torch.utils.data.DataLoader(ds, batch_size=4, shuffle=True, drop_last=True,
                                         generator=torch.Generator().manual_seed(0))
    batches = list(loader)
    assert len(batches) == 2 and all(x.shape == (4, 10) and x.dtype == torch.int64 for x, _ in batches)
    assert all(torch.equal(y, x + 1) for x, y in batches)
    with pytest.raises(ValueError, match="only 5"):
        TokenWindowDataset(torch.arange(5), context_length=5)
    X, Y = shifted_windows(torch.arange(101), 10, 10)
    assert torch.equal(X, torch.stack([ds[k][0] for k in range(len(ds))]))


def test_embeddings():
    pe = sinusoidal_positions(100, 16)
    assert pe.shape == (100, 16) and pe.dtype == torch.float32
    assert torch.allclose(pe[7, 0::2], torch.sin(7 / 10000 ** (torch.arange(0, 16, 2) / 16)), atol=1e-6)
    with pytest.raises(ValueError, match="even"):
        sinusoidal_positions(4, 7)
    emb = TokenPositionEmbedding(50, context_length=8, d_model=4)
    idx = torch.randint(0, 50, (3, 8))
    assert torch.allclose(emb(idx), emb.token.weight[idx] + emb.position.weight)
    with pytest.raises(ValueError, match="only 8"):
        emb(torch.zeros(1, 9, dtype=torch.long))


def test_batch_viewer_switches_rows_without_a_kernel(monkeypatch):
    import ipywidgets as widgets

    from buildgpt import viz

    links = []
    jslink = widgets.jslink
    monkeypatch.setattr(viz.widgets, "jslink", lambda a, b: links.append((a, b)) or jslink(a, b))
    x = torch.arange(24).view(3, 8) % 5
    y = torch.roll(x, -1, dims=1)
    viewer = viz.batch_viewer(x, y, lambda ids: "".join("abcde"[i] for i in ids))
    selector, stack = viewer.children
    assert isinstance(stack, widgets.Stack) and len(stack.children) == 3
    assert all(isinstance(page, widgets.HTML) and "target id" in page.value for page in stack.children)
    assert links == [((selector, "index"), (stack, "selected_index"))], (
        "the selector is linked to the stack in the browser (jslink), not by a Python callback")
    assert "<table>" in viewer.fallback_html
    assert len(viz.batch_viewer(torch.zeros(20, 4, dtype=torch.long), torch.zeros(20, 4, dtype=torch.long),
                            lambda ids: "x" * len(ids)).children[1].children) == 8  # max_rows
    with pytest.raises(ValueError, match="same shape"):
        viz.batch_viewer(x, y[:, :5], str)
