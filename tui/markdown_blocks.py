"""Where a streamed Markdown reply can be cut into a finished part and a live tail.

A reply is drawn as its finished parts, each rendered once, and a tail that is re-rendered as deltas arrive
(tui/widgets/assistant_message.py), so a chunk costs the same at the end of a long reply as at its start.

A cut is made only where the parts, rendered on their own and joined with one blank line, are drawn exactly as
the whole text would be (tests/tui/test_markdown_stream.py checks this on every prefix of several replies):
- before a top-level block that is followed by another one: the blocks before it are finished (nothing that
  comes later can change them: a fence left open runs to the end of the text, so it is always the last block),
  and its own type is settled too (a later `===` could still make the last paragraph a heading);
- before a paragraph, heading or fenced code block: rendered alone these start on their first line, and in the
  whole text Rich puts exactly one blank line before them, unless the block before is a rule (which brings its
  own blank line), so a cut right after a rule is not made. Lists and tables start with blank lines of their
  own that depend on what precedes them, so no cut is made before them.
"""

from __future__ import annotations

import re

from markdown_it import MarkdownIt

LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n|$)")  # a line as markdown-it counts them (it normalises \r\n and \r)
STARTS_ON_FIRST_LINE = frozenset({"paragraph_open", "heading_open", "fence"})

_parser = MarkdownIt().enable("strikethrough").enable("table")  # as rich.markdown parses


def finished_prefix(text: str) -> int:
    """The length of the longest prefix of `text` that can be cut off and rendered on its own (0: none)."""
    blocks = [token for token in _parser.parse(text) if token.level == 0 and token.map is not None
              and not token.type.endswith("_close")]
    for index in range(len(blocks) - 2, 0, -1):  # a block with a block before it and one after it
        if blocks[index].type in STARTS_ON_FIRST_LINE and blocks[index - 1].type != "hr":
            start_line = blocks[index].map[0]
            return sum(len(line) for line in LINE.findall(text)[:start_line])
    return 0
