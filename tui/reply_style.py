"""The colours of a drawn reply, taken from the app's Textual theme.

Rich's Markdown colours a reply by style name (`markdown.code`, `markdown.h2`, ...) and its code blocks by a syntax
theme. Both are built here from the Textual theme's variables ($text-primary, $markdown-h1-color, ...), the way
Textual's own Markdown widget and highlighter colour them, so a reply matches the rest of the screen; a theme switch
gives another ReplyStyle, and AssistantMessage draws its lines again with it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from rich.color import Color as RichColor
from rich.style import Style as RichStyle
from rich.syntax import SyntaxTheme, TokenType
from rich.theme import Theme as RichTheme
from textual.color import Color
from textual.highlight import HighlightTheme
from textual.markup import parse_style

# Rich's Markdown style names -> Textual style text; $names are the theme's variables.
MARKDOWN_STYLES = {
    "markdown.code": "$text-warning 95% on $warning 10%",  # inline code, as Textual's Markdown draws it
    "markdown.code_block": "$foreground on $surface",
    "markdown.block_quote": "$text-secondary",
    "markdown.list": "$text-primary",
    "markdown.item.bullet": "bold $text-primary",
    "markdown.item.number": "$text-primary",
    "markdown.hr": "$foreground 40%",
    "markdown.link": "$text-primary",
    "markdown.link_url": "underline $text-primary 80%",
    "markdown.table.border": "$primary",
    "markdown.table.header": "bold $text-primary",
    "markdown.kbd": "bold $text-accent",
}
LIGHT_STYLES = {"markdown.code": "$text-error 95% on $error 5%"}  # Textual's inline code on a light theme
HEADING_LEVELS = range(1, 7)
CODE_BACKGROUND = "surface"  # the variable code blocks sit on: a little off the transcript's $background in every theme


@dataclass(frozen=True)
class ReplyStyle:
    markdown: RichTheme  # pushed on the console while a reply renders
    code: SyntaxTheme  # the code blocks' colours (rich.markdown.CodeBlock hands it to Syntax)


class ThemeSyntax(SyntaxTheme):
    """Pygments tokens coloured by Textual's highlight palette (textual.highlight.HighlightTheme)."""

    def __init__(self, tokens: dict[TokenType, RichStyle], background: RichStyle) -> None:
        self._tokens = tokens
        self._background = background

    def get_style_for_token(self, token_type: TokenType) -> RichStyle:
        while token_type not in self._tokens and token_type.parent is not None:
            token_type = token_type.parent  # Token.Name.Function.Magic falls back to Token.Name.Function, ...
        return self._tokens.get(token_type, RichStyle.null())

    def get_background_style(self) -> RichStyle:
        return self._background


def reply_style(variables: dict[str, str], dark: bool, background: Color) -> ReplyStyle:
    """The reply colours for a theme's `variables` (App.theme_variables), drawn over `background`."""
    return _reply_style(tuple(sorted(variables.items())), dark, background)


@functools.lru_cache(maxsize=8)  # one per theme in use: every reply of the transcript renders with the same one
def _reply_style(variable_items: tuple[tuple[str, str], ...], dark: bool, background: Color) -> ReplyStyle:
    variables = dict(variable_items)
    styles = {**MARKDOWN_STYLES, **({} if dark else LIGHT_STYLES)}
    for level in HEADING_LEVELS:
        text_style = variables.get(f"markdown-h{level}-text-style", "bold")
        styles[f"markdown.h{level}"] = f"{'' if text_style == 'none' else text_style} $markdown-h{level}-color"
    markdown = {name: resolve(text, variables, background) for name, text in styles.items()}
    code_background = background + Color.parse(variables[CODE_BACKGROUND])
    # Plain text (a token without a style) takes the reply's own colour, drawn under it (AssistantMessage.render_line).
    tokens = {token: resolve(text, variables, code_background) for token, text in HighlightTheme.STYLES.items() if text}
    syntax = ThemeSyntax(tokens, RichStyle(bgcolor=code_background.rich_color))
    return ReplyStyle(RichTheme(markdown, inherit=False), syntax)


def resolve(text: str, variables: dict[str, str], background: Color) -> RichStyle:
    """A Textual style (`bold $text-success 80% on $error-muted`) as a Rich style, its translucent colours blended
    over `background` (Rich draws opaque colours only)."""
    style = parse_style(text, variables)
    return RichStyle(color=_over(style.foreground, background), bgcolor=_over(style.background, background),
                     bold=style.bold, dim=style.dim, italic=style.italic, underline=style.underline,
                     strike=style.strike)


def _over(colour: Color | None, background: Color) -> RichColor | None:
    return None if colour is None else (background + colour).rich_color  # `+` also resolves `auto` colours
