"""Plausible wrong answers to the exercises of chapter 1 (solutions/01-tokens.md).

Each mutant replaces the whole answer cell; the exercise's test cell must reject it.
"""

MUTANTS = {
    "ex-01-clean-text": {
        "entities decoded before tags are removed, so escaped markup vanishes": '''
import html
import re
import unicodedata


def clean_text(text):
    text = re.sub(r"<!--.*?-->", "", text, flags=re.DOTALL)
    text = html.unescape(text)
    text = re.sub(r"<br\\b[^>]*>|</p\\s*>", "\\n", text, flags=re.IGNORECASE)
    text = re.sub(r"</?[A-Za-z][^>]*>", "", text)
    text = unicodedata.normalize("NFC", text)
    text = text.replace("\\r\\n", "\\n").replace("\\r", "\\n")
    text = "".join(" " if ch.isspace() and ch != "\\n" else ch for ch in text)
    text = "".join(ch for ch in text if ch == "\\n" or (unicodedata.category(ch) != "Cc" and ch not in "\\u200b\\ufeff"))
    text = re.sub(r" +", " ", text)
    text = re.sub(r" ?\\n ?", "\\n", text)
    text = re.sub(r"\\n{3,}", "\\n\\n", text)
    return text.strip()
''',
        "NFKC instead of NFC, which changes meaning (x² becomes x2)": '''
import html
import re
import unicodedata


def clean_text(text):
    text = re.sub(r"<!--.*?-->", "", text, flags=re.DOTALL)
    text = re.sub(r"<br\\b[^>]*>|</p\\s*>", "\\n", text, flags=re.IGNORECASE)
    text = re.sub(r"</?[A-Za-z][^>]*>", "", text)
    text = html.unescape(text)
    text = text.replace("\\r\\n", "\\n").replace("\\r", "\\n")
    text = "".join(" " if ch.isspace() and ch != "\\n" else ch for ch in text)
    text = "".join(ch for ch in text if ch == "\\n" or (unicodedata.category(ch) != "Cc" and ch not in "\\u200b\\ufeff"))
    text = unicodedata.normalize("NFKC", text)
    text = re.sub(r" +", " ", text)
    text = re.sub(r" ?\\n ?", "\\n", text)
    text = re.sub(r"\\n{3,}", "\\n\\n", text)
    return text.strip()
''',
        "removes every control character, newlines included": '''
import html
import re
import unicodedata


def clean_text(text):
    text = re.sub(r"<!--.*?-->", "", text, flags=re.DOTALL)
    text = re.sub(r"<br\\b[^>]*>|</p\\s*>", "\\n", text, flags=re.IGNORECASE)
    text = re.sub(r"</?[A-Za-z][^>]*>", "", text)
    text = html.unescape(text)
    text = unicodedata.normalize("NFC", text)
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cc" and ch not in "\\u200b\\ufeff")
    text = "".join(" " if ch.isspace() else ch for ch in text)
    text = re.sub(r" +", " ", text)
    return text.strip()
''',
        "collapses all whitespace with split/join, newlines included": '''
import html
import re
import unicodedata


def clean_text(text):
    text = re.sub(r"<!--.*?-->", "", text, flags=re.DOTALL)
    text = re.sub(r"<br\\b[^>]*>|</p\\s*>", "\\n", text, flags=re.IGNORECASE)
    text = re.sub(r"</?[A-Za-z][^>]*>", "", text)
    text = html.unescape(text)
    text = unicodedata.normalize("NFC", text)
    text = "".join(ch for ch in text if ch.isspace() or (unicodedata.category(ch) != "Cc" and ch not in "\\u200b\\ufeff"))
    return " ".join(text.split())
''',
        "strips anything between < and >, so <|endoftext|> and 'a < b >' vanish": '''
import html
import re
import unicodedata


def clean_text(text):
    text = re.sub(r"<!--.*?-->", "", text, flags=re.DOTALL)
    text = re.sub(r"<br\\b[^>]*>|</p\\s*>", "\\n", text, flags=re.IGNORECASE)
    text = re.sub(r"<[^>]*>", "", text)
    text = html.unescape(text)
    text = unicodedata.normalize("NFC", text)
    text = text.replace("\\r\\n", "\\n").replace("\\r", "\\n")
    text = "".join(" " if ch.isspace() and ch != "\\n" else ch for ch in text)
    text = "".join(ch for ch in text if ch == "\\n" or (unicodedata.category(ch) != "Cc" and ch not in "\\u200b\\ufeff"))
    text = re.sub(r" +", " ", text)
    text = re.sub(r" ?\\n ?", "\\n", text)
    text = re.sub(r"\\n{3,}", "\\n\\n", text)
    return text.strip()
''',
        "no Unicode normalization": '''
import html
import re
import unicodedata


def clean_text(text):
    text = re.sub(r"<!--.*?-->", "", text, flags=re.DOTALL)
    text = re.sub(r"<br\\b[^>]*>|</p\\s*>", "\\n", text, flags=re.IGNORECASE)
    text = re.sub(r"</?[A-Za-z][^>]*>", "", text)
    text = html.unescape(text)
    text = text.replace("\\r\\n", "\\n").replace("\\r", "\\n")
    text = "".join(" " if ch.isspace() and ch != "\\n" else ch for ch in text)
    text = "".join(ch for ch in text if ch == "\\n" or (unicodedata.category(ch) != "Cc" and ch not in "\\u200b\\ufeff"))
    text = re.sub(r" +", " ", text)
    text = re.sub(r" ?\\n ?", "\\n", text)
    text = re.sub(r"\\n{3,}", "\\n\\n", text)
    return text.strip()
''',
        "forgets the zero-width space and the byte order mark (category Cf, not Cc)": '''
import html
import re
import unicodedata


def clean_text(text):
    text = re.sub(r"<!--.*?-->", "", text, flags=re.DOTALL)
    text = re.sub(r"<br\\b[^>]*>|</p\\s*>", "\\n", text, flags=re.IGNORECASE)
    text = re.sub(r"</?[A-Za-z][^>]*>", "", text)
    text = html.unescape(text)
    text = unicodedata.normalize("NFC", text)
    text = text.replace("\\r\\n", "\\n").replace("\\r", "\\n")
    text = "".join(" " if ch.isspace() and ch != "\\n" else ch for ch in text)
    text = "".join(ch for ch in text if ch == "\\n" or unicodedata.category(ch) != "Cc")
    text = re.sub(r" +", " ", text)
    text = re.sub(r" ?\\n ?", "\\n", text)
    text = re.sub(r"\\n{3,}", "\\n\\n", text)
    return text.strip()
''',
        "normalizes before removing invisible characters, so a separated accent stays uncomposed": '''
import html
import re
import unicodedata


def clean_text(text):
    text = re.sub(r"<!--.*?-->", "", text, flags=re.DOTALL)
    text = re.sub(r"<br\\b[^>]*>|</p\\s*>", "\\n", text, flags=re.IGNORECASE)
    text = re.sub(r"</?[A-Za-z][^>]*>", "", text)
    text = html.unescape(text)
    text = unicodedata.normalize("NFC", text)
    text = text.replace("\\r\\n", "\\n").replace("\\r", "\\n")
    text = "".join(" " if ch.isspace() and ch != "\\n" else ch for ch in text)
    text = "".join(ch for ch in text if ch == "\\n" or (unicodedata.category(ch) != "Cc" and ch not in "\\u200b\\ufeff"))
    text = re.sub(r" +", " ", text)
    text = re.sub(r" ?\\n ?", "\\n", text)
    text = re.sub(r"\\n{3,}", "\\n\\n", text)
    return text.strip()
''',
        "greedy comment pattern <!--.*-->, which deletes the text between two comments": '''
import html
import re
import unicodedata


def clean_text(text):
    text = re.sub(r"<!--.*-->", "", text, flags=re.DOTALL)
    text = re.sub(r"<br\\b[^>]*>|</p\\s*>", "\\n", text, flags=re.IGNORECASE)
    text = re.sub(r"</?[A-Za-z][^>]*>", "", text)
    text = html.unescape(text)
    text = text.replace("\\r\\n", "\\n").replace("\\r", "\\n")
    text = "".join(" " if ch.isspace() and ch != "\\n" else ch for ch in text)
    text = "".join(ch for ch in text if ch == "\\n" or (unicodedata.category(ch) != "Cc" and ch not in "\\u200b\\ufeff"))
    text = unicodedata.normalize("NFC", text)
    text = re.sub(r" +", " ", text)
    text = re.sub(r" ?\\n ?", "\\n", text)
    text = re.sub(r"\\n{3,}", "\\n\\n", text)
    return text.strip()
''',
        "only lower-case </p> becomes a newline": '''
import html
import re
import unicodedata


def clean_text(text):
    text = re.sub(r"<!--.*?-->", "", text, flags=re.DOTALL)
    text = re.sub(r"<br\\b[^>]*>", "\\n", text, flags=re.IGNORECASE)
    text = text.replace("</p>", "\\n")
    text = re.sub(r"</?[A-Za-z][^>]*>", "", text)
    text = html.unescape(text)
    text = text.replace("\\r\\n", "\\n").replace("\\r", "\\n")
    text = "".join(" " if ch.isspace() and ch != "\\n" else ch for ch in text)
    text = "".join(ch for ch in text if ch == "\\n" or (unicodedata.category(ch) != "Cc" and ch not in "\\u200b\\ufeff"))
    text = unicodedata.normalize("NFC", text)
    text = re.sub(r" +", " ", text)
    text = re.sub(r" ?\\n ?", "\\n", text)
    text = re.sub(r"\\n{3,}", "\\n\\n", text)
    return text.strip()
''',
        "spaces at the start and end of lines are left (only the whole text is stripped)": '''
import html
import re
import unicodedata


def clean_text(text):
    text = re.sub(r"<!--.*?-->", "", text, flags=re.DOTALL)
    text = re.sub(r"<br\\b[^>]*>|</p\\s*>", "\\n", text, flags=re.IGNORECASE)
    text = re.sub(r"</?[A-Za-z][^>]*>", "", text)
    text = html.unescape(text)
    text = text.replace("\\r\\n", "\\n").replace("\\r", "\\n")
    text = "".join(" " if ch.isspace() and ch != "\\n" else ch for ch in text)
    text = "".join(ch for ch in text if ch == "\\n" or (unicodedata.category(ch) != "Cc" and ch not in "\\u200b\\ufeff"))
    text = unicodedata.normalize("NFC", text)
    text = re.sub(r" +", " ", text)
    text = re.sub(r"\\n{3,}", "\\n\\n", text)
    return text.strip()
''',
    },
    "ex-01-char-tokenizer": {
        "ids start at 0, so the first character collides with the unknown id": '''
class CharTokenizer:
    UNKNOWN_ID = 0
    UNKNOWN_CHAR = "\\ufffd"

    def __init__(self, text):
        self.chars = sorted(set(text))
        self.stoi = {ch: i for i, ch in enumerate(self.chars)}
        self.itos = {i: ch for ch, i in self.stoi.items()}

    @property
    def vocab_size(self):
        return len(self.stoi) + 1

    def encode(self, text):
        return [self.stoi.get(ch, self.UNKNOWN_ID) for ch in text]

    def decode(self, ids):
        if any(not 0 <= i < self.vocab_size for i in ids):
            raise ValueError("id outside the vocabulary")
        return "".join(self.itos.get(i, self.UNKNOWN_CHAR) for i in ids)
''',
        "vocabulary in order of first appearance, not sorted": '''
class CharTokenizer:
    UNKNOWN_ID = 0
    UNKNOWN_CHAR = "\\ufffd"

    def __init__(self, text):
        self.chars = list(dict.fromkeys(text))
        self.stoi = {ch: i for i, ch in enumerate(self.chars, start=1)}
        self.itos = {i: ch for ch, i in self.stoi.items()}
        self.itos[0] = self.UNKNOWN_CHAR

    @property
    def vocab_size(self):
        return len(self.stoi) + 1

    def encode(self, text):
        return [self.stoi.get(ch, self.UNKNOWN_ID) for ch in text]

    def decode(self, ids):
        if any(not 0 <= i < self.vocab_size for i in ids):
            raise ValueError("id outside the vocabulary")
        return "".join(self.itos[i] for i in ids)
''',
        "unknown characters are dropped instead of mapped to id 0": '''
class CharTokenizer:
    UNKNOWN_ID = 0
    UNKNOWN_CHAR = "\\ufffd"

    def __init__(self, text):
        self.chars = sorted(set(text))
        self.stoi = {ch: i for i, ch in enumerate(self.chars, start=1)}
        self.itos = {i: ch for ch, i in self.stoi.items()}
        self.itos[0] = self.UNKNOWN_CHAR

    @property
    def vocab_size(self):
        return len(self.stoi) + 1

    def encode(self, text):
        return [self.stoi[ch] for ch in text if ch in self.stoi]

    def decode(self, ids):
        if any(not 0 <= i < self.vocab_size for i in ids):
            raise ValueError("id outside the vocabulary")
        return "".join(self.itos[i] for i in ids)
''',
        "vocab_size forgets the unknown id": '''
class CharTokenizer:
    UNKNOWN_ID = 0
    UNKNOWN_CHAR = "\\ufffd"

    def __init__(self, text):
        self.chars = sorted(set(text))
        self.stoi = {ch: i for i, ch in enumerate(self.chars, start=1)}
        self.itos = {i: ch for ch, i in self.stoi.items()}
        self.itos[0] = self.UNKNOWN_CHAR

    @property
    def vocab_size(self):
        return len(self.stoi)

    def encode(self, text):
        return [self.stoi.get(ch, self.UNKNOWN_ID) for ch in text]

    def decode(self, ids):
        if any(not 0 <= i <= self.vocab_size for i in ids):
            raise ValueError("id outside the vocabulary")
        return "".join(self.itos[i] for i in ids)
''',
        "decode silently skips ids outside the vocabulary": '''
class CharTokenizer:
    UNKNOWN_ID = 0
    UNKNOWN_CHAR = "\\ufffd"

    def __init__(self, text):
        self.chars = sorted(set(text))
        self.stoi = {ch: i for i, ch in enumerate(self.chars, start=1)}
        self.itos = {i: ch for ch, i in self.stoi.items()}
        self.itos[0] = self.UNKNOWN_CHAR

    @property
    def vocab_size(self):
        return len(self.stoi) + 1

    def encode(self, text):
        return [self.stoi.get(ch, self.UNKNOWN_ID) for ch in text]

    def decode(self, ids):
        return "".join(self.itos.get(i, "") for i in ids)
''',
        "decode turns the unknown id into '?' instead of the replacement character": '''
class CharTokenizer:
    UNKNOWN_ID = 0
    UNKNOWN_CHAR = "\\ufffd"

    def __init__(self, text):
        self.chars = sorted(set(text))
        self.stoi = {ch: i for i, ch in enumerate(self.chars, start=1)}
        self.itos = {i: ch for ch, i in self.stoi.items()}
        self.itos[0] = "?"

    @property
    def vocab_size(self):
        return len(self.stoi) + 1

    def encode(self, text):
        return [self.stoi.get(ch, self.UNKNOWN_ID) for ch in text]

    def decode(self, ids):
        if any(not 0 <= i < self.vocab_size for i in ids):
            raise ValueError("id outside the vocabulary")
        return "".join(self.itos[i] for i in ids)
''',
        "no chars attribute: the vocabulary lives only in the dictionaries": '''
class CharTokenizer:
    UNKNOWN_ID = 0
    UNKNOWN_CHAR = "\\ufffd"

    def __init__(self, text):
        self.stoi = {ch: i for i, ch in enumerate(sorted(set(text)), start=1)}
        self.itos = {i: ch for ch, i in self.stoi.items()}

    @property
    def vocab_size(self):
        return len(self.stoi) + 1

    def encode(self, text):
        return [self.stoi.get(ch, self.UNKNOWN_ID) for ch in text]

    def decode(self, ids):
        if any(not 0 <= i < self.vocab_size for i in ids):
            raise ValueError("id outside the vocabulary")
        return "".join(self.itos.get(i, self.UNKNOWN_CHAR) for i in ids)
''',
    },
    "ex-01-merge-pair": {
        "does not skip after a match, so overlapping pairs are merged and ids duplicated": '''
def merge_pair(ids, pair, new_id):
    merged = []
    for i in range(len(ids)):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            merged.append(new_id)
        else:
            merged.append(ids[i])
    return merged
''',
        "loop stops one early and drops the last id": '''
def merge_pair(ids, pair, new_id):
    merged, i = [], 0
    while i < len(ids) - 1:
        if (ids[i], ids[i + 1]) == pair:
            merged.append(new_id)
            i += 2
        else:
            merged.append(ids[i])
            i += 1
    return merged
''',
        "scans from right to left, so aaa becomes a Z": '''
def merge_pair(ids, pair, new_id):
    merged, i = [], len(ids) - 1
    while i >= 0:
        if i >= 1 and (ids[i - 1], ids[i]) == pair:
            merged.append(new_id)
            i -= 2
        else:
            merged.append(ids[i])
            i -= 1
    return merged[::-1]
''',
        "changes the input list in place": '''
def merge_pair(ids, pair, new_id):
    i = 0
    while i < len(ids) - 1:
        if (ids[i], ids[i + 1]) == pair:
            ids[i : i + 2] = [new_id]
        i += 1
    return ids
''',
        "merges the pair in either order": '''
def merge_pair(ids, pair, new_id):
    merged, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and sorted(ids[i : i + 2]) == sorted(pair):
            merged.append(new_id)
            i += 2
        else:
            merged.append(ids[i])
            i += 1
    return merged
''',
    },
    "ex-01-most-frequent-pair": {
        "no tie-break: the first pair in dictionary order wins": '''
def most_frequent_pair(counts, vocab):
    return max(counts, key=counts.get)
''',
        "ties broken by the ids instead of the bytes": '''
def most_frequent_pair(counts, vocab):
    return max(counts, key=lambda pair: (counts[pair], pair))
''',
        "ties go to the smaller bytes": '''
def most_frequent_pair(counts, vocab):
    return min(counts, key=lambda pair: (-counts[pair], vocab[pair[0]], vocab[pair[1]]))
''',
        "ties broken by the concatenated bytes, which cannot tell a + bc from ab + c": '''
def most_frequent_pair(counts, vocab):
    return max(counts, key=lambda pair: (counts[pair], vocab[pair[0]] + vocab[pair[1]]))
''',
        "ties broken by the decoded text, which sorts differently and fails on partial characters": '''
def most_frequent_pair(counts, vocab):
    return max(counts, key=lambda pair: (counts[pair], vocab[pair[0]].decode("latin-1").lower(),
                                         vocab[pair[1]].decode("latin-1").lower()))
''',
    },
    "ex-01-apply-merges": {
        "merges the most frequent pair of the chunk first (frequency order, not rank order)": '''
def apply_merges(ids, merges):
    ids = list(ids)
    while True:
        counts = {}
        for pair in zip(ids, ids[1:]):
            if pair in merges:
                counts[pair] = counts.get(pair, 0) + 1
        if not counts:
            return ids
        pair = max(counts, key=counts.get)
        ids = merge_pair(ids, pair, merges[pair])
''',
        "merges the leftmost pair that has a merge": '''
def apply_merges(ids, merges):
    ids = list(ids)
    while True:
        for pair in zip(ids, ids[1:]):
            if pair in merges:
                ids = merge_pair(ids, pair, merges[pair])
                break
        else:
            return ids
''',
        "one pass over the merges in dictionary order": '''
def apply_merges(ids, merges):
    ids = list(ids)
    for pair, new_id in merges.items():
        ids = merge_pair(ids, pair, new_id)
    return ids
''',
        "the largest new id first (the latest merge)": '''
def apply_merges(ids, merges):
    ids = list(ids)
    while len(ids) >= 2:
        candidates = [pair for pair in zip(ids, ids[1:]) if pair in merges]
        if not candidates:
            break
        pair = max(candidates, key=lambda p: merges[p])
        ids = merge_pair(ids, pair, merges[pair])
    return ids
''',
        "stops after one round of merging": '''
def apply_merges(ids, merges):
    ids = list(ids)
    candidates = [pair for pair in zip(ids, ids[1:]) if pair in merges]
    for pair in sorted(set(candidates), key=lambda p: merges[p]):
        ids = merge_pair(ids, pair, merges[pair])
    return ids
''',
    },
    "ex-01-decode-bytes": {
        "strict decoding raises on invalid UTF-8": '''
def decode_bytes(ids, vocab):
    return b"".join(vocab[i] for i in ids).decode("utf-8")
''',
        "decodes each token on its own, breaking characters split over tokens": '''
def decode_bytes(ids, vocab):
    return "".join(vocab[i].decode("utf-8", errors="replace") for i in ids)
''',
        "drops invalid bytes instead of replacing them": '''
def decode_bytes(ids, vocab):
    return b"".join(vocab[i] for i in ids).decode("utf-8", errors="ignore")
''',
        "decodes as Latin-1, so every multi-byte character turns into mojibake": '''
def decode_bytes(ids, vocab):
    return b"".join(vocab[i] for i in ids).decode("latin-1")
''',
    },
    "ex-01-split-special": {
        "special tokens not escaped, so | is read as 'or'": '''
import re


def split_special(text, special_tokens, allowed):
    for token in special_tokens:
        if token not in allowed and token in text:
            raise ValueError(f"special token {token!r} is not allowed; pass it in allowed_special")
    if not allowed:
        return [text] if text else []
    return [piece for piece in re.split("(" + "|".join(allowed) + ")", text) if piece]
''',
        "split without a capturing group, so the special tokens are dropped": '''
import re


def split_special(text, special_tokens, allowed):
    for token in special_tokens:
        if token not in allowed and token in text:
            raise ValueError(f"special token {token!r} is not allowed; pass it in allowed_special")
    if not allowed:
        return [text] if text else []
    return [piece for piece in re.split("|".join(map(re.escape, allowed)), text) if piece]
''',
        "ignores allowed: every special token is split off, never an error": '''
import re


def split_special(text, special_tokens, allowed):
    special_tokens = list(special_tokens)
    if not special_tokens:
        return [text] if text else []
    pattern = "(" + "|".join(map(re.escape, special_tokens)) + ")"
    return [piece for piece in re.split(pattern, text) if piece]
''',
        "never raises: a special token that is not allowed passes as ordinary text": '''
import re


def split_special(text, special_tokens, allowed):
    if not allowed:
        return [text] if text else []
    pattern = "(" + "|".join(map(re.escape, allowed)) + ")"
    return [piece for piece in re.split(pattern, text) if piece]
''',
        "no special case for nothing allowed, so the empty group '()' splits every character": '''
import re


def split_special(text, special_tokens, allowed):
    for token in special_tokens:
        if token not in allowed and token in text:
            raise ValueError(f"special token {token!r} is not allowed; pass it in allowed_special")
    pattern = "(" + "|".join(re.escape(token) for token in allowed) + ")"
    return [piece for piece in re.split(pattern, text) if piece]
''',
        "alternatives in the order given, so a shorter token that is a prefix of a longer one wins": '''
import re


def split_special(text, special_tokens, allowed):
    for token in special_tokens:
        if token not in allowed and token in text:
            raise ValueError(f"special token {token!r} is not allowed; pass it in allowed_special")
    if not allowed:
        return [text] if text else []
    pattern = "(" + "|".join(re.escape(token) for token in allowed) + ")"
    return [piece for piece in re.split(pattern, text) if piece]
''',
        "keeps empty pieces": '''
import re


def split_special(text, special_tokens, allowed):
    for token in special_tokens:
        if token not in allowed and token in text:
            raise ValueError(f"special token {token!r} is not allowed; pass it in allowed_special")
    if not allowed:
        return [text]
    return re.split("(" + "|".join(map(re.escape, allowed)) + ")", text)
''',
    },
}
