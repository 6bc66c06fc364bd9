"""What an edit must keep about a file's text: line endings, indentation style, final newline.

Matching works on LF text split into lines; `Lines` remembers how to turn the result back into the
file's own form. `Reindent` maps the indentation the model wrote onto the indentation the file uses,
learned from the lines that matched (so a block sent four spaces too deep, or with spaces where the
file has tabs, lands at the right depth in the file's style).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(frozen=True)
class IndentStyle:
    tabs: bool
    width: int  # columns per level: spaces per level, or the tab width


DEFAULT_STYLE = IndentStyle(tabs=False, width=4)


def leading_ws(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def columns(indent: str, tab_width: int) -> int:
    col = 0
    for ch in indent:
        col = (col // tab_width + 1) * tab_width if ch == "\t" else col + 1
    return col


def render_indent(cols: int, style: IndentStyle) -> str:
    if style.tabs:
        return "\t" * (cols // style.width) + " " * (cols % style.width)
    return " " * cols


def detect_indent(lines: list[str]) -> IndentStyle | None:
    """The dominant indentation of some lines, or None when no line is indented."""
    tab_lines = sum(1 for line in lines if line.startswith("\t") and line.strip())
    space_indents = [len(leading_ws(line)) for line in lines
                     if line.startswith(" ") and line.strip() and "\t" not in leading_ws(line)]
    if not tab_lines and not space_indents:
        return None
    if tab_lines > len(space_indents):
        return IndentStyle(tabs=True, width=4)
    # The most common step between consecutive indented lines is the unit; continuation lines that
    # align to an opening bracket make the raw gcd useless.
    steps: Counter[int] = Counter()
    previous = 0
    for line in lines:
        if not line.strip() or "\t" in leading_ws(line):
            continue
        depth = len(leading_ws(line))
        if depth != previous:
            steps[abs(depth - previous)] += 1
        previous = depth
    width = next((step for step, _ in steps.most_common() if step in (2, 3, 4, 8)), 4)
    return IndentStyle(tabs=False, width=width)


def split_text(text: str) -> tuple[list[str], bool]:
    """LF text as lines without terminators, and whether it ended with a newline."""
    if text == "":
        return [], False
    ends = text.endswith("\n")
    return (text[:-1] if ends else text).split("\n"), ends


def block_lines(text: str) -> list[str]:
    """An old/new string as lines: a single trailing newline ends the last line, it is not a line."""
    lines, _ = split_text(text)
    return lines


# Delimiters of strings that may span lines, per file suffix: lines inside such a string are content,
# and re-indenting them would change the program.
_FENCES: dict[str, tuple[str, ...]] = {
    ".py": ('"""', "'''"), ".pyi": ('"""', "'''"), ".js": ("`",), ".mjs": ("`",), ".cjs": ("`",),
    ".jsx": ("`",), ".ts": ("`",), ".tsx": ("`",), ".go": ("`",), ".kt": ('"""',), ".java": ('"""',),
    ".swift": ('"""',), ".scala": ('"""',),
}


def fences_for(path: str) -> tuple[str, ...]:
    dot = path.rfind(".")
    return _FENCES.get(path[dot:].lower(), ()) if dot != -1 else ()


def string_scan(lines: list[str], fences: tuple[str, ...], inside: str | None = None) -> tuple[set[int], str | None]:
    """Indexes of lines that start inside a multi-line string, and the string still open after the last
    line (a naive scan: escapes are ignored). `inside` is the string open before the first line."""
    found: set[int] = set()
    for index, line in enumerate(lines):
        if inside is not None:
            found.add(index)
        at = 0
        while True:
            if inside is None:
                hits = [(line.find(f, at), f) for f in fences if line.find(f, at) != -1]
                if not hits:
                    break
                pos, inside = min(hits)
                at = pos + len(inside)
            else:
                pos = line.find(inside, at)
                if pos == -1:
                    break
                at, inside = pos + len(inside), None
    return found, inside


def inside_strings(lines: list[str], fences: tuple[str, ...], inside: str | None = None) -> set[int]:
    return string_scan(lines, fences, inside)[0]


@dataclass
class Lines:
    """A file's text as LF lines plus what is needed to write it back in its own form."""

    lines: list[str]
    final_newline: bool
    eol: str  # "\n" or "\r\n": the file's own endings (only when every line used it)
    style: IndentStyle | None
    fences: tuple[str, ...] = ()  # multi-line string delimiters of the file's language

    def string_rows(self) -> set[int]:
        """Lines of the file that start inside a multi-line string (content, not indentation evidence)."""
        return string_scan(self.lines, self.fences)[0] if self.fences else set()

    def open_string_at(self, index: int) -> str | None:
        """The multi-line string open at the start of line `index`, if any."""
        return string_scan(self.lines[:index], self.fences)[1] if self.fences else None

    @classmethod
    def parse(cls, text: str, path: str = "") -> Lines:
        crlf = text.count("\r\n")
        uniform_crlf = crlf > 0 and crlf == text.count("\n")
        lf_text = text.replace("\r\n", "\n") if uniform_crlf else text
        lines, final = split_text(lf_text)
        fences = fences_for(path)
        content = string_scan(lines, fences)[0] if fences else set()
        code = [line for k, line in enumerate(lines) if k not in content]  # docstrings say nothing of style
        return cls(lines, final, "\r\n" if uniform_crlf else "\n", detect_indent(code), fences)

    def render(self) -> str:
        text = "\n".join(self.lines) + ("\n" if self.final_newline and self.lines else "")
        return text.replace("\n", self.eol) if self.eol != "\n" else text


def lf(text: str) -> str:
    return text.replace("\r\n", "\n")


@dataclass
class Reindent:
    """Maps indentation written by the model to the file's: exact pairs first, then a linear fit in columns."""

    source: IndentStyle
    target: IndentStyle
    pairs: dict[str, str] = field(default_factory=dict)
    offset: float = 0.0
    scale: float = 1.0

    @classmethod
    def learn(cls, written: list[str], found: list[str], source: IndentStyle | None,
              target: IndentStyle | None) -> Reindent:
        src = source or DEFAULT_STYLE
        tgt = target or src
        pairs: dict[str, str] = {}
        points: dict[int, int] = {}
        for w, f in zip(written, found):
            if not w.strip() or not f.strip():
                continue
            wi, fi = leading_ws(w), leading_ws(f)
            pairs.setdefault(wi, fi)
            points.setdefault(columns(wi, src.width), columns(fi, tgt.width))
        scale = tgt.width / src.width
        if len(points) >= 2:
            lo, hi = min(points), max(points)
            scale = (points[hi] - points[lo]) / (hi - lo)
            if scale <= 0:
                scale = tgt.width / src.width
        if points:
            lo = min(points)
            offset = points[lo] - scale * lo
        else:
            offset = 0.0
        return cls(src, tgt, pairs, offset, scale)

    @classmethod
    def style_only(cls, source: IndentStyle | None, target: IndentStyle | None) -> Reindent | None:
        """Only convert tabs<->spaces when the model's text uses the other style than the file."""
        if source is None or target is None or source.tabs == target.tabs:
            return None
        return cls(source, target, {}, 0.0, target.width / source.width)

    def is_identity(self) -> bool:
        return (all(k == v for k, v in self.pairs.items()) and self.offset == 0 and self.scale == 1
                and self.source.tabs == self.target.tabs)

    def apply(self, line: str) -> str:
        if not line.strip():
            return "" if not self.is_identity() else line
        indent = leading_ws(line)
        if indent in self.pairs:
            return self.pairs[indent] + line[len(indent):]
        # Whole levels are scaled (2-space levels to tabs, say); the alignment remainder of a continuation
        # line is kept as it is, as an editor converting indentation would.
        levels, remainder = divmod(columns(indent, self.source.width), self.source.width)
        cols = max(0, round(self.offset + self.scale * levels * self.source.width) + remainder)
        return render_indent(cols, self.target) + line[len(indent):]

    def apply_all(self, lines: list[str], fences: tuple[str, ...] = (), inside: str | None = None) -> list[str]:
        """Re-indent lines; lines inside multi-line strings (`inside`: one is open before the first line) stay."""
        if self.is_identity():
            return lines
        verbatim = inside_strings(lines, fences, inside)
        return [line if k in verbatim else self.apply(line) for k, line in enumerate(lines)]
