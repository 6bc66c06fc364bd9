"""A logits processor that leaves free text alone until a trigger string, then masks by an llguidance grammar.

The free text is never masked (no cost, no change to what the model would write); the trigger (the format's
opening tag) is found in the decoded text, whatever tokens spell it. From there an `LLMatcher` for the call
grammar sees every token and computes the mask over the whole vocabulary; when the grammar is complete (the
closing tag) the text is free again, so a turn may hold several calls.
"""

from __future__ import annotations

import json
import threading
import weakref

import llguidance
import numpy as np
import torch
from tokenizers.decoders import DecodeStream

from ..errors import RuntimeModelError
from ..tokenizer import Tokenizer

MAX_GRAMMARS_PER_TOKENIZER = 16  # compiled call grammars kept per tokenizer (one per distinct tool set)


class GrammarError(RuntimeModelError):
    """The tool schemas could not be turned into a grammar."""


class _Compiled:
    """The llguidance tokenizer built once per runtime tokenizer (about 0.3 s), and the compiled grammars."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.vocab_size = tokenizer.vocab_size
        self.ll = llguidance.LLTokenizer(tokenizer.backend.to_str(), n_vocab=self.vocab_size,
                                         eos_token=sorted(tokenizer.stop_token_ids) or None)
        self.grammars: dict[str, llguidance.LLMatcher] = {}
        self.lock = threading.Lock()

    def fresh_matcher(self, grammar: str) -> llguidance.LLMatcher:
        with self.lock:
            template = self.grammars.get(grammar)
            if template is None:
                template = llguidance.LLMatcher(self.ll, grammar, log_level=0)
                if template.is_error():
                    raise GrammarError(f"the tool schemas do not compile to a grammar: {template.get_error()}")
                if len(self.grammars) >= MAX_GRAMMARS_PER_TOKENIZER:
                    self.grammars.pop(next(iter(self.grammars)))
                self.grammars[grammar] = template
            return template.deep_copy()

    def release(self, grammar: str, matcher: llguidance.LLMatcher) -> None:
        """A matcher that completed a call, reset, becomes the template: its copies start with the lexer states
        it has built (a cold matcher spends ~10 ms on the first tokens of a string; a warm one ~10 us)."""
        if matcher.reset() and not matcher.is_error():
            with self.lock:
                if grammar in self.grammars:
                    self.grammars[grammar] = matcher


_COMPILED: weakref.WeakKeyDictionary[Tokenizer, _Compiled] = weakref.WeakKeyDictionary()
_COMPILED_LOCK = threading.Lock()


def compiled_for(tokenizer: Tokenizer) -> _Compiled:
    with _COMPILED_LOCK:
        found = _COMPILED.get(tokenizer)
        if found is None:
            found = _COMPILED[tokenizer] = _Compiled(tokenizer)
        return found


def lark_string(text: str) -> str:
    """`text` as a Lark string literal (JSON escapes are Lark's)."""
    return json.dumps(text, ensure_ascii=False)


class TriggeredGrammar:
    """A `LogitsProcessor` (`(logits (V,), generated ids) -> logits`): free text until `trigger`, then `grammar`.

    `inside`: the prompt already ends with the trigger (a forced call), so the grammar applies from the first token."""

    def __init__(self, tokenizer: Tokenizer, trigger: str, grammar: str, *, inside: bool = False) -> None:
        self.tokenizer, self.trigger, self.grammar = tokenizer, trigger, grammar
        self.compiled = compiled_for(tokenizer)
        self.compiled.fresh_matcher(grammar)  # compile now: a schema error is raised here, before any generation
        self.matcher: llguidance.LLMatcher | None = self.compiled.fresh_matcher(grammar) if inside else None
        self.bitmask = torch.zeros((self.compiled.vocab_size + 31) // 32, dtype=torch.int32)
        self.tail, self.n_seen = "", 0
        self.stream = DecodeStream(skip_special_tokens=False)
        self.calls_opened = int(inside)  # how many calls the grammar has guided (for tests and evals)

    @property
    def in_call(self) -> bool:
        return self.matcher is not None

    def __call__(self, logits: torch.Tensor, generated: list[int]) -> torch.Tensor:
        for token in generated[self.n_seen :]:
            self._absorb(token)
        self.n_seen = len(generated)
        if self.matcher is None:
            return logits
        allowed = self.allowed_tokens(logits.shape[-1])
        if allowed is None:
            return logits
        return logits.masked_fill(~allowed, float("-inf"))

    def allowed_tokens(self, n_logits: int) -> torch.Tensor | None:
        """The mask (bool, n_logits) of tokens that keep the call valid; None when the grammar cannot go on."""
        assert self.matcher is not None
        self.matcher.unsafe_compute_mask_ptr(self.bitmask.data_ptr(), self.bitmask.numel() * 4)
        bits = np.unpackbits(self.bitmask.numpy().view(np.uint8), count=self.compiled.vocab_size, bitorder="little")
        allowed = torch.zeros(n_logits, dtype=torch.bool)
        n = min(n_logits, bits.shape[0])
        allowed[:n] = torch.from_numpy(bits[:n].astype(np.bool_))
        if not bool(allowed.any()):  # a dead grammar (its limits hit): better free text than an unsampleable step
            self.matcher = None
            return None
        return allowed

    def _absorb(self, token: int) -> None:
        text = self.stream.step(self.tokenizer.backend, token) or ""
        if self.matcher is not None:
            # a token that was not offered (the engine sampled unmasked logits) puts the matcher in its error state
            if not self.matcher.consume_token(token):
                self.matcher = None
            elif self.matcher.is_stopped():  # the closing tag: free text again
                self.compiled.release(self.grammar, self.matcher)
                self.matcher = None
            return
        self.tail = (self.tail + text)[-(len(self.trigger) + 64) :]
        at = self.tail.find(self.trigger)
        if at < 0:
            return
        rest, self.tail = self.tail[at + len(self.trigger) :], ""
        self.matcher, self.calls_opened = self.compiled.fresh_matcher(self.grammar), self.calls_opened + 1
        if rest:  # the token that closed the trigger also began the call
            if not self.matcher.consume_tokens(self.compiled.ll.tokenize_str(rest)):
                self.matcher = None
