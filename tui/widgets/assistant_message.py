from __future__ import annotations

from textual.geometry import Size
from textual.selection import Selection
from textual.strip import Strip
from textual.theme import Theme
from textual.widget import Widget

from ..markdown_blocks import finished_prefix
from ..markdown_render import blank_line, render_markdown
from ..reply_style import ReplyStyle, reply_style


class AssistantMessage(Widget):
    """An assistant reply rendered as Markdown, streamed into a live tail.

    One widget whatever the reply's length: finished blocks are cut off the tail (tui/markdown_blocks.py) and
    rendered once into lines; each streamed chunk re-renders only the tail. So a chunk costs the same at the end
    of a long reply as at its start, and the reply adds one widget to the screen's layout, not one per block.
    The lines carry the colours of the theme they were drawn in, so a theme switch draws them again.
    """

    DEFAULT_CSS = """
    AssistantMessage { height: auto; margin: 1 0 0 0; padding: 0 1; background: transparent; }
    """

    def __init__(self, text: str = "") -> None:
        super().__init__()
        self.text = text
        self.parts: list[str] = []  # the finished Markdown parts, in order; the tail follows them
        self._tail = text
        self._width = 0
        self._part_lines: list[list[Strip]] = []  # the parts rendered at self._width
        self._part_styles: list[ReplyStyle] = []  # the colours each part was rendered in
        self._tail_lines: list[Strip] | None = None
        self._tail_style: ReplyStyle | None = None
        self._style: ReplyStyle | None = None  # the colours of the app's theme, taken when first drawn

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, self._theme_changed)

    def _theme_changed(self, theme: Theme) -> None:
        # The signal comes after the new theme's CSS is applied, so the colours taken on the next draw are its own.
        # Colours do not move a line break: the height stays, and a part (or the tail) is rendered again only when
        # a line of it is drawn (render_line), so a switch costs what is on screen, not the whole transcript.
        self._style = None
        self.refresh()

    @property
    def colours(self) -> ReplyStyle:
        if self._style is None:
            app = self.app
            self._style = reply_style(app.theme_variables, app.current_theme.dark, self.background_colors[1])
        return self._style

    def append_delta(self, delta: str) -> None:
        self.text += delta
        self._tail += delta
        if cut := finished_prefix(self._tail):
            finished, self._tail = self._tail[:cut], self._tail[cut:]
            self.parts.append(finished)
            if self._width:
                self._part_lines.append(self._render(finished, self._width))
                self._part_styles.append(self.colours)
        self._tail_lines = None
        self.refresh(layout=True)

    def lines(self, width: int) -> list[Strip]:
        """The reply as drawn at this content width: the parts, then the tail, one blank line between them. After a
        theme switch, blocks not drawn since keep their old colours here (render_line recolours what it draws)."""
        if width != self._width:
            self._width = width
            self._part_lines = [self._render(part, width) for part in self.parts]
            self._part_styles = [self.colours] * len(self.parts)
            self._tail_lines = None
        if self._tail_lines is None:
            self._tail_lines, self._tail_style = self._render(self._tail, width), self.colours
        drawn: list[Strip] = []
        for block in (*self._part_lines, self._tail_lines):
            if block:
                if drawn:
                    drawn.append(blank_line(width))
                drawn.extend(block)
        return drawn

    def _line(self, y: int, width: int) -> Strip:
        """Line `y` as lines(width) has it, its part rendered again first if it has the colours of another theme."""
        self.lines(width)
        row = 0
        for index, block in enumerate((*self._part_lines, self._tail_lines or [])):
            if not block:
                continue
            if row:
                if y == row:
                    return blank_line(width)
                row += 1  # the blank line between two blocks
            if y < row + len(block):
                return self._in_colours(index, width)[y - row]
            row += len(block)
        return blank_line(width)

    def _in_colours(self, index: int, width: int) -> list[Strip]:
        """Block `index` (a part; len(parts): the tail) in the current theme's colours, rendered again if need be."""
        if index == len(self.parts):
            if self._tail_style is not self.colours:
                self._tail_lines, self._tail_style = self._render(self._tail, width), self.colours
            return self._tail_lines or []
        if self._part_styles[index] is not self.colours:
            self._part_lines[index], self._part_styles[index] = self._render(self.parts[index], width), self.colours
        return self._part_lines[index]

    def _render(self, text: str, width: int) -> list[Strip]:
        return render_markdown(self.app.console, text, width, self.colours)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(self.lines(width))

    def render_line(self, y: int) -> Strip:
        width = self.content_size.width
        line = self._line(y, width)
        if (selection := self.text_selection) is not None and (span := selection.get_span(y)) is not None:
            start, end = span
            before, chosen, after = line.divide([start, width if end == -1 else end, width])
            chosen = chosen.apply_style(self.screen.get_component_rich_style("screen--selection"))
            line = Strip.join([before, chosen, after])
        return line.apply_style(self.rich_style).apply_offsets(0, y)  # offsets: where a mouse selection starts

    def get_selection(self, selection: Selection) -> tuple[str, str] | None:
        """The selected part of the reply as drawn (mouse selection and copy)."""
        text = "\n".join(line.text.rstrip() for line in self.lines(self.content_size.width))
        return selection.extract(text), "\n"

    def selection_updated(self, selection: Selection | None) -> None:
        self.refresh()
