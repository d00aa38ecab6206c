"""A text built to break tokenizers, shared by tests/test_tokenizer.py and benchmarks/tokenizer.py.

Escapes keep it readable and safe from editors: emoji (with skin tones, zero-width joiners and
flags), CJK, Indic, Arabic and Hebrew scripts, accents both precomposed and combining, long runs of
spaces, newlines and digits, tabs, contractions in capitals (GPT-2's pattern only knows lower-case
ones), odd spaces, control characters, a byte order mark, and <|endoftext|> inside the text.
"""

TORTURE_TEXT = (
    "Hello, world! DON'T, can't, I'LL, WE'D, it's, they've, you're, I'm\n"
    "\tTabs\tand\t\ttabs\n\n\n\n   indented    spaces      \n"
    "\U0001F600\U0001F469\u200d\U0001F4BB\U0001F468\u200d\U0001F469\u200d\U0001F467\U0001F1EB\U0001F1F7"
    " \u2764\ufe0f\U0001F44D\U0001F3FD emoji\n"
    "\u4e2d\u6587\u5206\u8bcd\u6d4b\u8bd5 \u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8 \ud55c\uad6d\uc5b4"
    " \u0939\u093f\u0928\u094d\u0926\u0940 \u0627\u0644\u0639\u0631\u0628\u064a\u0629 \u05e2\u05d1\u05e8\u05d9\u05ea\n"
    "caf\u00e9 cafe\u0301 na\u00efve \u00c5ngstr\u00f6m A\u030angstro\u0308m Z\u0327\u0301\u0300"
    " \u0416\u0443\u0440\u043d\u0430\u043b \u0391\u03b8\u03ae\u03bd\u03b1\n"
    "12345678901234567890123456789 3.14159 1,000,000 $9.99 10e-7 0x1F \u0661\u0662\u0663 \u2460\u2461\n"
    + " " * 40 + "x" + " " * 17 + "\n" * 9 + "0" * 64 + "\n"
    "The end.<|endoftext|>Next document<|endoftext|><|endoftext|>  after\n"
    "\u00a0\u3000\u2003 odd spaces \r\n\r\n\x00\x07\x7f controls \ufffd \ufeffbom\n"
    "code:\n    def f(x):\n        return x ** 2  # squared\n"
    "URL https://example.com/a?b=c&d=e#f and email someone@example.org\n"
    "'s 's 'S '' ''' quotes \u201ccurly\u201d \u2018single\u2019 \u2014 dash \u2026\n"
)
