"""Plausible wrong answers to the exercises of chapter 10 (solutions/10-data-eval-scaling.md).

Each mutant replaces the whole answer cell; the exercise's test cell must reject it.
"""

MUTANTS = {
    "ex-10-exact-dedup": {
        "hashes the raw text, so case and spacing make copies look different": '''
def find_exact_duplicates(docs):
    first_seen, duplicates = {}, {}
    for index, doc in enumerate(docs):
        digest = hashlib.sha1(doc.encode("utf-8")).digest()
        if digest in first_seen:
            duplicates[index] = first_seen[digest]
        else:
            first_seen[digest] = index
    return duplicates
''',
        "maps a copy to the latest earlier copy instead of the first document": '''
def find_exact_duplicates(docs):
    last_seen, duplicates = {}, {}
    for index, doc in enumerate(docs):
        digest = hashlib.sha1(normalize_text(doc).encode("utf-8")).digest()
        if digest in last_seen:
            duplicates[index] = last_seen[digest]
        last_seen[digest] = index
    return duplicates
''',
        "only lower-cases, so spacing and punctuation still differ": '''
def find_exact_duplicates(docs):
    first_seen, duplicates = {}, {}
    for index, doc in enumerate(docs):
        digest = hashlib.sha1(doc.lower().encode("utf-8")).digest()
        if digest in first_seen:
            duplicates[index] = first_seen[digest]
        else:
            first_seen[digest] = index
    return duplicates
''',
    },
    "ex-10-minhash": {
        "the maximum instead of the minimum": '''
def minhash_signature(hashes, a, b):
    if hashes.numel() == 0:
        return torch.full_like(a, PRIME)
    return ((a[:, None] * hashes[None, :] + b[:, None]) % PRIME).amax(dim=1)
''',
        "forgets the modulus": '''
def minhash_signature(hashes, a, b):
    if hashes.numel() == 0:
        return torch.full_like(a, PRIME)
    return (a[:, None] * hashes[None, :] + b[:, None]).amin(dim=1)
''',
        "one hash function for every entry (a[0], b[0])": '''
def minhash_signature(hashes, a, b):
    if hashes.numel() == 0:
        return torch.full_like(a, PRIME)
    value = ((a[0] * hashes + b[0]) % PRIME).min()
    return value.repeat(a.shape[0])
''',
        "an empty document gets zeros": '''
def minhash_signature(hashes, a, b):
    if hashes.numel() == 0:
        return torch.zeros_like(a)
    return ((a[:, None] * hashes[None, :] + b[:, None]) % PRIME).amin(dim=1)
''',
    },
    "ex-10-lsh": {
        "requires every band to agree (AND instead of OR)": '''
def lsh_candidate_pairs(signatures, bands):
    n, num_perm = signatures.shape
    if num_perm % bands:
        raise ValueError("bands must divide the signature length")
    pairs = set()
    for i in range(n):
        for j in range(i + 1, n):
            if torch.equal(signatures[i], signatures[j]):
                pairs.add((i, j))
    return pairs
''',
        "bands of `bands` entries instead of `bands` bands": '''
def lsh_candidate_pairs(signatures, bands):
    n, num_perm = signatures.shape
    if num_perm % bands:
        raise ValueError("bands must divide the signature length")
    rows = bands
    pairs = set()
    for j in range(num_perm // rows):
        buckets = {}
        for i, key in enumerate(signatures[:, j * rows:(j + 1) * rows].tolist()):
            buckets.setdefault(tuple(key), []).append(i)
        for members in buckets.values():
            pairs.update((p, q) for k, p in enumerate(members) for q in members[k + 1:])
    return pairs
''',
        "compares only neighbouring documents": '''
def lsh_candidate_pairs(signatures, bands):
    n, num_perm = signatures.shape
    if num_perm % bands:
        raise ValueError("bands must divide the signature length")
    rows = num_perm // bands
    pairs = set()
    for i in range(n - 1):
        for j in range(bands):
            if torch.equal(signatures[i, j * rows:(j + 1) * rows], signatures[i + 1, j * rows:(j + 1) * rows]):
                pairs.add((i, i + 1))
    return pairs
''',
        "reports each pair in both orders": '''
def lsh_candidate_pairs(signatures, bands):
    n, num_perm = signatures.shape
    if num_perm % bands:
        raise ValueError("bands must divide the signature length")
    rows = num_perm // bands
    pairs = set()
    for j in range(bands):
        buckets = {}
        for i, key in enumerate(signatures[:, j * rows:(j + 1) * rows].tolist()):
            buckets.setdefault(tuple(key), []).append(i)
        for members in buckets.values():
            pairs.update((p, q) for p in members for q in members if p != q)
    return pairs
''',
    },
    "ex-10-quality": {
        "counts stop-word occurrences, not distinct stop words": '''
def quality_problems(text, min_words=50, max_symbol_fraction=0.2, max_repeated_lines=0.3, min_stop_words=2):
    problems = []
    words = text.split()
    if len(words) < min_words:
        problems.append("too-short")
    if words and sum(not any(c.isalpha() for c in w) for w in words) / len(words) > max_symbol_fraction:
        problems.append("symbols")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if lines and (len(lines) - len(set(lines))) / len(lines) > max_repeated_lines:
        problems.append("repeated-lines")
    if sum(w.lower().strip(string.punctuation) in STOP_WORDS for w in words) < min_stop_words:
        problems.append("no-stop-words")
    if MARKUP.search(text):
        problems.append("markup")
    return problems
''',
        "stop words matched without lower-casing or stripping punctuation": '''
def quality_problems(text, min_words=50, max_symbol_fraction=0.2, max_repeated_lines=0.3, min_stop_words=2):
    problems = []
    words = text.split()
    if len(words) < min_words:
        problems.append("too-short")
    if words and sum(not any(c.isalpha() for c in w) for w in words) / len(words) > max_symbol_fraction:
        problems.append("symbols")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if lines and (len(lines) - len(set(lines))) / len(lines) > max_repeated_lines:
        problems.append("repeated-lines")
    if len(set(words) & set(STOP_WORDS)) < min_stop_words:
        problems.append("no-stop-words")
    if MARKUP.search(text):
        problems.append("markup")
    return problems
''',
        "symbols: counts words that are not all letters (punctuation counts as a symbol)": '''
def quality_problems(text, min_words=50, max_symbol_fraction=0.2, max_repeated_lines=0.3, min_stop_words=2):
    problems = []
    words = text.split()
    if len(words) < min_words:
        problems.append("too-short")
    if words and sum(not w.isalpha() for w in words) / len(words) > max_symbol_fraction:
        problems.append("symbols")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if lines and (len(lines) - len(set(lines))) / len(lines) > max_repeated_lines:
        problems.append("repeated-lines")
    if len({w.lower().strip(string.punctuation) for w in words} & set(STOP_WORDS)) < min_stop_words:
        problems.append("no-stop-words")
    if MARKUP.search(text):
        problems.append("markup")
    return problems
''',
        "repeated lines compared with >= instead of >": '''
def quality_problems(text, min_words=50, max_symbol_fraction=0.2, max_repeated_lines=0.3, min_stop_words=2):
    problems = []
    words = text.split()
    if len(words) < min_words:
        problems.append("too-short")
    if words and sum(not any(c.isalpha() for c in w) for w in words) / len(words) > max_symbol_fraction:
        problems.append("symbols")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if lines and (len(lines) - len(set(lines))) / len(lines) >= max_repeated_lines:
        problems.append("repeated-lines")
    if len({w.lower().strip(string.punctuation) for w in words} & set(STOP_WORDS)) < min_stop_words:
        problems.append("no-stop-words")
    if MARKUP.search(text):
        problems.append("markup")
    return problems
''',
    },
    "ex-10-bpb": {
        "bits per byte from the mean per token (divides by tokens, not bytes)": '''
def lm_metrics(token_nll, n_bytes):
    loss = token_nll.double().mean().item()
    return {"loss": loss, "perplexity": math.exp(loss), "bits_per_byte": loss / math.log(2)}
''',
        "nats per byte: forgot to convert to bits": '''
def lm_metrics(token_nll, n_bytes):
    total = token_nll.double().sum().item()
    loss = total / token_nll.numel()
    return {"loss": loss, "perplexity": math.exp(loss), "bits_per_byte": total / n_bytes}
''',
        "perplexity from the sum, not the mean": '''
def lm_metrics(token_nll, n_bytes):
    total = token_nll.double().sum().item()
    loss = total / token_nll.numel()
    return {"loss": loss, "perplexity": math.exp(total), "bits_per_byte": total / (math.log(2) * n_bytes)}
''',
    },
    "ex-10-choice": {
        "mean over tokens even when lengths are given": '''
def score_options(option_logprobs, lengths=None):
    sums = torch.stack([lp.float().sum() for lp in option_logprobs])
    if lengths is None:
        return sums
    return torch.stack([lp.float().mean() for lp in option_logprobs])
''',
        "always normalises by the number of tokens": '''
def score_options(option_logprobs, lengths=None):
    return torch.stack([lp.float().mean() for lp in option_logprobs])
''',
        "multiplies by the length instead of dividing": '''
def score_options(option_logprobs, lengths=None):
    sums = torch.stack([lp.float().sum() for lp in option_logprobs])
    if lengths is None:
        return sums
    return sums * torch.tensor(lengths, dtype=torch.float32)
''',
    },
    "ex-10-power-law": {
        "returns ln a instead of a": '''
def fit_power_law(x, y):
    lx, ly = torch.log(x.double()), torch.log(y.double())
    k = ((lx - lx.mean()) * (ly - ly.mean())).sum() / ((lx - lx.mean()) ** 2).sum()
    return (ly.mean() - k * lx.mean()).item(), k.item()
''',
        "fits in float32 (the logs of 1e12 lose precision)": '''
def fit_power_law(x, y):
    lx, ly = torch.log(x.float()), torch.log(y.float())
    k = ((lx - lx.mean()) * (ly - ly.mean())).sum() / ((lx - lx.mean()) ** 2).sum()
    return math.exp((ly.mean() - k * lx.mean()).item()), k.item()
''',
        "a line through the first and last points only": '''
def fit_power_law(x, y):
    lx, ly = torch.log(x.double()), torch.log(y.double())
    k = (ly[-1] - ly[0]) / (lx[-1] - lx[0])
    return math.exp((ly[0] - k * lx[0]).item()), k.item()
''',
    },
}
