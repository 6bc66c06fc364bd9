"""Tokenizers: HF `tokenizers` from `tokenizer.json`, or rebuilt from a GGUF file's vocabulary and merges.

The chat template, special tokens and stop tokens come from the same metadata. BOS is handled here,
never by the backend's post-processor, so that chat prompts (whose templates write BOS themselves)
and raw prompts are both tokenized the way the model was trained.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tokenizers import AddedToken, Regex, decoders, models, normalizers, pre_tokenizers
from tokenizers import Tokenizer as Backend

from .errors import MissingTokenizer

# Pre-tokenizer splits named by llama.cpp's `tokenizer.ggml.pre`, for byte-level vocabularies.
_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_SPLITS = {name: _LLAMA3_SPLIT for name in ("llama3", "llama-v3", "llama-bpe", "falcon3", "smaug-bpe", "dbrx")}
_SPLITS.update({name: _QWEN2_SPLIT for name in ("qwen2", "deepseek-r1-qwen", "megrez")})
# These vocabularies were trained on the GPT-2 split after cutting every digit apart (llama.cpp: `\p{N}` first).
_DIGIT_SPLIT = {"smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva"}

# Strings that end a turn in common chat formats; used as stop tokens when the vocabulary marks them special.
_END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<|end_of_text|>", "<|endoftext|>", "<end_of_turn>", "<|end|>", "</s>")

_CONTROL, _USER_DEFINED = 3, 4  # llama.cpp token types


class Tokenizer:
    def __init__(
        self,
        backend: Backend,
        *,
        bos_token: str | None,
        eos_token: str | None,
        add_bos: bool,
        chat_template: str | None,
        stop_token_ids: Iterable[int],
        source: str,
    ) -> None:
        self.backend = backend
        self.bos_token = bos_token
        self.eos_token = eos_token
        self.add_bos = add_bos
        self.chat_template = chat_template
        self.stop_token_ids = frozenset(stop_token_ids)
        self.source = source
        self.bos_token_id = backend.token_to_id(bos_token) if bos_token else None
        self._pieces: list[str] | None = None

    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str, *, add_bos: bool = False) -> list[int]:
        """Token ids of `text`; special tokens written in the text (like `<|im_start|>`) become their ids."""
        ids = self.backend.encode(text, add_special_tokens=False).ids
        if add_bos and self.bos_token_id is not None and (not ids or ids[0] != self.bos_token_id):
            ids = [self.bos_token_id, *ids]
        return ids

    def decode(self, ids: Sequence[int], *, skip_special_tokens: bool = False) -> str:
        return self.backend.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def token_to_id(self, token: str) -> int | None:
        return self.backend.token_to_id(token)

    def special_tokens_map(self) -> dict[str, str]:
        """What chat templates may reference as variables (`bos_token`, `eos_token`)."""
        return {k: v for k, v in (("bos_token", self.bos_token), ("eos_token", self.eos_token)) if v}

    def pieces(self) -> list[str]:
        """The text each token id decodes to on its own (built once, on first use, in one batched call)."""
        if self._pieces is None:
            self._pieces = self.backend.decode_batch([[i] for i in range(self.vocab_size)], skip_special_tokens=False)
        return self._pieces

    # --- construction -----------------------------------------------------------------------------

    @classmethod
    def from_hf_dir(cls, folder: Path) -> Tokenizer:
        path = folder / "tokenizer.json"
        if not path.is_file():
            raise MissingTokenizer(
                f"{folder}: no tokenizer.json (the in-process runtime needs the fast-tokenizer file next to "
                "config.json; save it with `AutoTokenizer.from_pretrained(...).save_pretrained(folder)`)"
            )
        backend = Backend.from_file(str(path))
        tok_cfg = _read_json(folder / "tokenizer_config.json")
        template = tok_cfg.get("chat_template")
        if (folder / "chat_template.jinja").is_file():
            template = (folder / "chat_template.jinja").read_text()
        if isinstance(template, list):  # a list of named templates: take the default one
            template = next((t["template"] for t in template if t.get("name") == "default"), template[0]["template"])
        bos, eos = _token_str(tok_cfg.get("bos_token")), _token_str(tok_cfg.get("eos_token"))
        gen_eos = _read_json(folder / "generation_config.json").get("eos_token_id")
        stops = set(gen_eos if isinstance(gen_eos, list) else [gen_eos] if gen_eos is not None else [])
        if eos and backend.token_to_id(eos) is not None:
            stops.add(backend.token_to_id(eos))
        stops |= _end_of_turn_ids(backend)
        return cls(
            backend,
            bos_token=bos,
            eos_token=eos,
            add_bos=bool(tok_cfg.get("add_bos_token", False)),
            chat_template=template,
            stop_token_ids=stops,
            source=str(path),
        )

    @classmethod
    def from_gguf_metadata(cls, meta: Mapping[str, Any], source: str) -> Tokenizer:
        tokens: list[str] | None = meta.get("tokenizer.ggml.tokens")
        kind = meta.get("tokenizer.ggml.model")
        if not tokens or not kind:
            raise MissingTokenizer(f"{source}: the GGUF file has no tokenizer (tokenizer.ggml.tokens/model missing)")
        types: list[int] = meta.get("tokenizer.ggml.token_type") or [1] * len(tokens)
        if kind == "gpt2":
            backend = _byte_level_bpe(tokens, meta.get("tokenizer.ggml.merges") or [], meta.get("tokenizer.ggml.pre"))
        elif kind == "llama":
            backend = _sentencepiece_bpe(tokens, meta.get("tokenizer.ggml.scores"), meta.get("tokenizer.ggml.merges"))
        else:
            raise MissingTokenizer(f"{source}: GGUF tokenizer model {kind!r} is not supported (gpt2, llama)")
        byte_alphabet = set(_bytes_to_unicode().values()) if kind == "gpt2" else None
        special = [
            AddedToken(t, normalized=False, special=True)
            for t, ty in zip(tokens, types)
            # llama.cpp sometimes marks a non-byte-level string as control; adding it would grow the vocab
            if ty == _CONTROL and (byte_alphabet is None or set(t) <= byte_alphabet)
        ]
        backend.add_special_tokens(special)
        backend.add_tokens([AddedToken(t, normalized=False, special=False) for t, ty in zip(tokens, types) if ty == _USER_DEFINED])

        def tok(key: str) -> str | None:
            index = meta.get(f"tokenizer.ggml.{key}")
            return tokens[index] if index is not None and 0 <= index < len(tokens) else None

        stops = {meta[f"tokenizer.ggml.{k}"] for k in ("eos_token_id", "eot_token_id", "eom_token_id") if f"tokenizer.ggml.{k}" in meta}
        stops |= _end_of_turn_ids(backend)
        return cls(
            backend,
            bos_token=tok("bos_token_id"),
            eos_token=tok("eos_token_id"),
            add_bos=bool(meta.get("tokenizer.ggml.add_bos_token", kind == "llama")),
            chat_template=meta.get("tokenizer.chat_template"),
            stop_token_ids=stops,
            source=source,
        )


def _byte_level_bpe(tokens: list[str], merges: list[str], pre: str | None) -> Backend:
    backend = Backend(
        models.BPE(
            vocab={t: i for i, t in enumerate(tokens)},
            merges=[tuple(m.split(" ", 1)) for m in merges],
            continuing_subword_prefix="",
            end_of_word_suffix="",
            fuse_unk=False,
        )
    )
    if pre in _SPLITS:
        backend.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Split(Regex(_SPLITS[pre]), behavior="isolated"), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
        )
    elif pre in _DIGIT_SPLIT:
        backend.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
        )
    else:
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    return backend


def _sentencepiece_bpe(tokens: list[str], scores: list[float] | None, merges: list[str] | None) -> Backend:
    vocab = {t: i for i, t in enumerate(tokens)}
    if merges:
        pairs = [tuple(m.split(" ", 1)) for m in merges]
    else:
        pairs = _merges_from_scores(vocab, dict(zip(tokens, scores or [0.0] * len(tokens))))
    backend = Backend(models.BPE(vocab=vocab, merges=pairs, fuse_unk=True, byte_fallback=True, unk_token=tokens[0]))
    backend.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    backend.decoder = decoders.Sequence(
        [decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    return backend


def _merges_from_scores(vocab: dict[str, int], scores: dict[str, float]) -> list[tuple[str, str]]:
    # A sentencepiece vocabulary lists pieces, not merges: every split of a piece into two known pieces
    # is a merge, ranked by the merged piece's score (higher merges first), as sentencepiece does.
    found = []
    for piece, score in scores.items():
        local = [(piece[:i], piece[i:], score) for i in range(1, len(piece)) if piece[:i] in vocab and piece[i:] in vocab]
        found.extend(sorted(local, key=lambda m: (vocab[m[0]], vocab[m[1]])))
    found.sort(key=lambda m: (m[2], len(m[0]), len(m[1])), reverse=True)
    return [(a, b) for a, b, _ in found]


def _end_of_turn_ids(backend: Backend) -> set[int]:
    added = {t.content for t in backend.get_added_tokens_decoder().values() if t.special}
    return {backend.token_to_id(t) for t in _END_OF_TURN if t in added}


def _bytes_to_unicode() -> dict[int, str]:
    # GPT-2's printable spelling of bytes, as in every byte-level BPE vocabulary
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def _token_str(value: Any) -> str | None:
    if isinstance(value, dict):  # AddedToken serialised as {"content": ...}
        return value.get("content")
    return value
