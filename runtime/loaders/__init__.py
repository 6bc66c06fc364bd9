"""Checkpoint readers. Each yields (HF-style name, float32 tensor) pairs and carries a config and a tokenizer."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import BadModelFile, ModelNotFound

if TYPE_CHECKING:
    from .gguf_checkpoint import GGUFCheckpoint
    from .hf_checkpoint import HFCheckpoint


def open_checkpoint(path: str | Path) -> GGUFCheckpoint | HFCheckpoint:
    """Open and validate a checkpoint (header, config, tokenizer, file sizes) without reading its weights."""
    path = Path(path).expanduser()
    if path.is_dir():
        from .hf_checkpoint import HFCheckpoint

        ggufs = sorted(path.glob("*.gguf"))
        if not (path / "config.json").is_file() and len(ggufs) == 1:
            path = ggufs[0]
        else:
            return HFCheckpoint(path)
    if not path.is_file():
        raise ModelNotFound(f"{path}: no such file or folder")
    with path.open("rb") as fh:
        magic = fh.read(4)
    if magic != b"GGUF":
        raise BadModelFile(f"{path}: not a GGUF file (starts with {magic!r}) and not a checkpoint folder")
    from .gguf_checkpoint import GGUFCheckpoint

    return GGUFCheckpoint(path)
