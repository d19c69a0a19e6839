#!/usr/bin/env python3
"""Prints the code point ranges of Unicode letters (\\p{L}) and numbers (\\p{N}) as C++ arrays,
from Python's unicodedata. The tokenizer's pre-tokenizer classifies characters with them; paste the
output between the GENERATED markers in src/models/tokenizer.cpp."""
import sys
import unicodedata


def ranges(pred):
    out, start = [], None
    for cp in range(sys.maxunicode + 1):
        ok = pred(unicodedata.category(chr(cp)))
        if ok and start is None:
            start = cp
        elif not ok and start is not None:
            out.append((start, cp - 1))
            start = None
    if start is not None:
        out.append((start, sys.maxunicode))
    return out


def emit(name, rs):
    print(f"// {len(rs)} ranges, Unicode {unicodedata.unidata_version}")
    print(f"constexpr CodeRange {name}[] = {{")
    line = " "
    for a, b in rs:
        item = f" {{0x{a:X}, 0x{b:X}}},"
        if len(line) + len(item) > 100:
            print(line)
            line = " "
        line += item
    print(line)
    print("};")


emit("kLetterRanges", ranges(lambda c: c.startswith("L")))
emit("kNumberRanges", ranges(lambda c: c.startswith("N")))
