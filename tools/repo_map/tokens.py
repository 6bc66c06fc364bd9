"""Token counting without a tokenizer, for when the caller has none in process.

`approx_tokens` assumes 3.5 UTF-8 bytes a token. BPE tokenizers of current code models average about
3.5 to 4.5 bytes a token on source code (more on prose, less on dense symbols), so this tends to
overcount slightly: a budget filled with it stays under the real context window. Replace it with the
active model's tokenizer (`count_tokens=` on every entry point) as soon as one is available.
"""

from __future__ import annotations

BYTES_PER_TOKEN = 3.5


def approx_tokens(text: str) -> int:
    size = len(text) if text.isascii() else len(text.encode("utf-8"))
    return int(-(-size // BYTES_PER_TOKEN))
