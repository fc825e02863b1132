"""Cutting text into the tokens the search index holds, the same way for a message and a query.

FTS5's `unicode61` tokenizer makes one token of a whole run of Han characters, and `trigram`
needs three characters per term (`微信` finds nothing). So text is segmented here, in Python,
and handed to a `unicode61` table as space-separated tokens, into two columns:

- `words`: Latin (any non-CJK) words as they are, and each CJK run as its overlapping
  bigrams (`撤回了` → `撤回 回了`; a one-character run stays one token). A query run of two or
  more characters is the phrase of its bigrams: it matches exactly where the text holds that
  run, inside one run, and each bigram's posting list is short, so lookups stay fast.
- `chars`: the same with one token per CJK character, for the queries `words` can't answer:
  a single character (`撤`), or a term mixing a one-character run with Latin (`a好`).

Why bigrams and not a dictionary segmenter (jieba): a dictionary cuts the same word
differently by context (`微信支付` may be one word in a message and `微信` two characters in a
query), so a word can miss; bigrams find every substring of two characters or more, need no
dictionary (jieba loads ~1 s and tens of MB at start), and cost only a larger index.

Where a CJK run meets other text across a gap (space or punctuation), a separator token sits
between them, so a query term like `微信pay` doesn't match `…微信。Pay…` across a sentence
boundary. The separator is a private-use character: the scanner never makes a token of one,
so no query can name it, yet `unicode61` keeps it as a token.
"""

from __future__ import annotations

import re
import unicodedata

# Han (with extension A, compatibility ideographs and the supplementary planes), kana.
CJK = "\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003ffff"
SCAN = re.compile(f"([{CJK}]+)|([^\\W_{CJK}]+)")
SEPARATOR = "\ue000"
TOKENIZER = "unicode61 remove_diacritics 2"  # what the FTS5 table must use for these tokens


def pieces(text: str) -> list[tuple[str, bool]]:
    """(piece, is_cjk) for each CJK run and word, with (SEPARATOR, False) at gaps beside a CJK run."""
    out: list[tuple[str, bool]] = []
    end, last_cjk = None, False
    for match in SCAN.finditer(unicodedata.normalize("NFKC", text)):
        cjk = match.group(1) is not None
        if end is not None and match.start() != end and (cjk or last_cjk):
            out.append((SEPARATOR, False))
        out.append((match.group(), cjk))
        end, last_cjk = match.end(), cjk
    return out


def _bigrams(run: str) -> str:
    return run if len(run) == 1 else " ".join(run[i:i + 2] for i in range(len(run) - 1))


def index_columns(text: str) -> tuple[str, str]:
    """The (words, chars) column values for a message's text."""
    parts = pieces(text)
    words = " ".join(_bigrams(p) if cjk else p for p, cjk in parts)
    chars = " ".join(" ".join(p) if cjk else p for p, cjk in parts)
    return words, chars


def fts_query(query: str) -> str | None:
    """An FTS5 MATCH expression for what a user typed, or None when it holds nothing to search.

    The user's text is never FTS5 syntax: it is cut into whitespace-separated terms (all must
    match), each term segmented as messages are and passed as quoted phrases, so `"`, `*`,
    `NEAR(` or `OR` are only characters (punctuation drops out; `or` is a word like any other).
    """
    clauses = []
    for term in query.split():
        parts = pieces(term)
        if not any(p != SEPARATOR for p, _ in parts):
            continue
        while parts and parts[0][0] == SEPARATOR:
            parts.pop(0)
        while parts and parts[-1][0] == SEPARATOR:
            parts.pop()
        single = any(cjk and len(p) == 1 for p, cjk in parts)
        if single:
            column, tokens = "chars", " ".join(" ".join(p) if cjk else p for p, cjk in parts)
        else:
            column, tokens = "words", " ".join(_bigrams(p) if cjk else p for p, cjk in parts)
        clauses.append(f'{column} : "{tokens}"')  # tokens hold only word characters: no quote to escape
    return " AND ".join(clauses) or None


def hit_spans(text: str, query: str) -> list[tuple[int, int]]:
    """Where the query's words and CJK runs occur in `text` (start, end), merged, for marking hits."""
    spans = []
    for term in query.split():
        for part, cjk in pieces(term):
            if part == SEPARATOR:
                continue
            pattern = re.escape(part) if cjk else rf"(?<![^\W_{CJK}]){re.escape(part)}(?![^\W_{CJK}])"
            spans.extend(m.span() for m in re.finditer(pattern, text, re.IGNORECASE))
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged
