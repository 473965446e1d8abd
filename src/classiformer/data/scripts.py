"""Scripts written without spaces between words (Chinese, Japanese, Thai, Lao, Khmer, Myanmar).

What splits text into words must treat each of their characters as a word, as BERT's basic
tokenizer does for CJK ideographs (Devlin et al., 2019; ``_tokenize_chinese_chars`` in
google-research/bert's ``tokenization.py``): the word-level tokenizer, the recipe's length
statistics and the distillation augmenter's word edits all read words through here.
"""

from __future__ import annotations

import re

# Unicode blocks: Thai and Lao, Myanmar, Khmer, hiragana and katakana, katakana extensions, CJK
# extension A, CJK unified ideographs, CJK compatibility ideographs, half-width katakana, and the
# supplementary planes' CJK extensions.
UNSPACED = (
    (0x0E00, 0x0EFF), (0x1000, 0x109F), (0x1780, 0x17FF), (0x3040, 0x30FF), (0x31F0, 0x31FF),
    (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0xFF66, 0xFF9F), (0x20000, 0x323AF),
)
_UNSPACED_CHAR = re.compile("[" + "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in UNSPACED) + "]")


def unspaced(code: int) -> bool:
    """Whether code point ``code`` belongs to a script written without spaces between words."""
    return any(lo <= code <= hi for lo, hi in UNSPACED)


def spaced(text: str) -> str:
    """``text`` with a space either side of each character of such a script (nothing else
    changed), so that whitespace separates its words for counting or editing them."""
    if text.isascii():
        return text
    return _UNSPACED_CHAR.sub(r" \g<0> ", text)
