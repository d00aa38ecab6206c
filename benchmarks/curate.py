"""Dedup throughput for chapter 10: buildgpt.curate against datasketch, on a generated corpus of >= 100 MB.

    nice python benchmarks/curate.py [--mb 100] [--out datasets/curate-benchmark.json]

The corpus: documents of 150 to 600 words drawn at random from TinyShakespeare's vocabulary (with its
word frequencies), so unrelated documents share almost no 5-word shingle; 10% of the documents are
near duplicates of an earlier one (2 to 5 words changed) and 5% exact duplicates (case changed). It
is written to a temporary .jsonl file and every method streams it from disk.

Measured, one thread, in one process and on the same file:
  exact     buildgpt.curate's exact pass (SHA-1 of normalize_text), documents per second
  minhash   buildgpt.curate.NearDuplicateIndex (128 hash functions, 32 bands of 4, threshold 0.5)
  datasketch  datasketch.MinHash(num_perm=128) + MinHashLSH(params=(32, 4)) on the same shingles,
            the same rule (a document is a duplicate of the kept candidate whose estimate >= 0.5)
For each: documents per second, and the growth of the process's resident memory during the pass
(the index; the corpus itself is never held). The two MinHash methods use different hash functions,
so the pairs they find can differ near the threshold; the script reports both sets and their overlap.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import psutil
import torch

from machine import load_average  # benchmarks/machine.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from buildgpt.curate import NearDuplicateIndex, normalize_text, read_documents, shingles  # noqa: E402
from buildgpt.resources import dataset_path  # noqa: E402


def make_corpus(path: Path, megabytes: float, seed: int = 0) -> dict:
    rng = random.Random(seed)
    words = dataset_path("tinyshakespeare.txt").read_text(encoding="utf-8").split()
    kept: list[str] = []  # a reservoir of earlier documents to copy from
    n_docs = n_near = n_exact = 0
    size = 0
    with open(path, "w", encoding="utf-8") as f:
        while size < megabytes * 1e6:
            r = rng.random()
            if kept and r < 0.10:
                doc = kept[rng.randrange(len(kept))].split(" ")
                for _ in range(rng.randint(2, 5)):
                    doc[rng.randrange(len(doc))] = rng.choice(words)
                text = " ".join(doc)
                n_near += 1
            elif kept and r < 0.15:
                text = kept[rng.randrange(len(kept))].upper()
                n_exact += 1
            else:
                text = " ".join(rng.choices(words, k=rng.randint(150, 600)))
                if len(kept) < 2000:
                    kept.append(text)
                else:
                    kept[rng.randrange(2000)] = text
            line = json.dumps({"text": text}) + "\n"
            f.write(line)
            size += len(line.encode("utf-8"))
            n_docs += 1
    return {"documents": n_docs, "bytes": size, "near_injected": n_near, "exact_injected": n_exact}


def rss() -> int:
    return psutil.Process().memory_info().rss


def run_exact(path: Path) -> dict:
    import hashlib

    before, start = rss(), time.perf_counter()
    seen, dups, n = set(), 0, 0
    for _, text in read_documents(path):
        digest = hashlib.sha1(normalize_text(text).encode("utf-8")).digest()
        dups += digest in seen
        seen.add(digest)
        n += 1
    seconds = time.perf_counter() - start
    return {"documents": n, "duplicates": dups, "seconds": round(seconds, 2), "docs_per_s": round(n / seconds),
            "rss_growth_mb": round((rss() - before) / 1e6, 1)}


def run_ours(path: Path) -> tuple[dict, set]:
    before, start = rss(), time.perf_counter()
    index = NearDuplicateIndex(num_perm=128, bands=32, threshold=0.5)
    pairs, n = set(), 0
    for _, text in read_documents(path):
        sig = index.signature(text)
        hit = index.query(sig)
        if hit is None:
            index.add(sig, str(n))
        else:
            pairs.add((n, int(index.names[hit[0]])))
        n += 1
    seconds = time.perf_counter() - start
    return {"documents": n, "duplicates": len(pairs), "seconds": round(seconds, 2), "docs_per_s": round(n / seconds),
            "rss_growth_mb": round((rss() - before) / 1e6, 1)}, pairs


def run_datasketch(path: Path) -> tuple[dict, set]:
    from datasketch import MinHash, MinHashLSH

    before, start = rss(), time.perf_counter()
    lsh = MinHashLSH(num_perm=128, params=(32, 4))
    sketches: dict[int, MinHash] = {}
    pairs, n = set(), 0
    for _, text in read_documents(path):
        m = MinHash(num_perm=128, seed=1)
        m.update_batch([s.encode("utf-8") for s in shingles(text)])
        best = None
        for key in lsh.query(m):
            est = m.jaccard(sketches[key])
            if est >= 0.5 and (best is None or est > best[1]):
                best = (key, est)
        if best is None:
            lsh.insert(n, m, check_duplication=False)
            sketches[n] = m
        else:
            pairs.add((n, best[0]))
        n += 1
    seconds = time.perf_counter() - start
    return {"documents": n, "duplicates": len(pairs), "seconds": round(seconds, 2), "docs_per_s": round(n / seconds),
            "rss_growth_mb": round((rss() - before) / 1e6, 1)}, pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=100.0, help="size of the generated corpus in MB (default 100)")
    parser.add_argument("--out", type=Path, default=ROOT / "datasets" / "curate-benchmark.json")  # chapter 10 reads it
    args = parser.parse_args()
    torch.set_num_threads(1)
    import datasketch

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "corpus.jsonl"
        corpus = make_corpus(path, args.mb)
        print(f"corpus: {corpus['documents']:,} documents, {corpus['bytes'] / 1e6:.1f} MB "
              f"({corpus['near_injected']:,} near and {corpus['exact_injected']:,} exact duplicates injected); "
              f"load {load_average()}", flush=True)
        exact = run_exact(path)
        print(f"exact dedup:  {exact['docs_per_s']:,} docs/s, {exact['duplicates']:,} duplicates, "
              f"+{exact['rss_growth_mb']} MB; load {load_average()}", flush=True)
        ours, our_pairs = run_ours(path)
        print(f"buildgpt MinHash: {ours['docs_per_s']:,} docs/s, {ours['duplicates']:,} duplicates, "
              f"+{ours['rss_growth_mb']} MB; load {load_average()}", flush=True)
        theirs, their_pairs = run_datasketch(path)
        print(f"datasketch {datasketch.__version__} MinHash: {theirs['docs_per_s']:,} docs/s, {theirs['duplicates']:,} "
              f"duplicates, +{theirs['rss_growth_mb']} MB; load {load_average()}", flush=True)
    same = our_pairs & their_pairs
    ours_docs, theirs_docs = {p[0] for p in our_pairs}, {p[0] for p in their_pairs}
    result = {"corpus": corpus, "exact": exact, "buildgpt_minhash": ours, "datasketch": theirs,
              "datasketch_version": datasketch.__version__, "same_pairs": len(same),
              "only_buildgpt": len(our_pairs - their_pairs), "only_datasketch": len(their_pairs - our_pairs),
              "same_documents_flagged": len(ours_docs & theirs_docs),
              "time_ratio_datasketch_over_buildgpt": round(theirs["seconds"] / ours["seconds"], 2),
              "load_end": load_average(), "cpu_count": os.cpu_count(), "torch": torch.__version__}
    print(f"pairs found by both: {len(same):,}; only buildgpt: {result['only_buildgpt']}; only datasketch: "
          f"{result['only_datasketch']}; time datasketch / buildgpt = {result['time_ratio_datasketch_over_buildgpt']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")


if __name__ == "__main__":
    main()
