"""Grammar-constrained tool calls through llguidance (the engine vLLM, SGLang and llama.cpp use).

Free text is left alone; once the model opens a call (Hermes `<tool_call>`, DeepSeek-V4 `<｜DSML｜tool_calls>`),
every token is checked against a grammar derived from the tool schemas, over the whole vocabulary, and the
ones that would break it are masked out. Each chat format names its constraint (`PromptFormat.tool_constraint`).
"""

from .dsml import DSMLToolCallConstraint, dsml_grammar
from .hermes import ToolCallConstraint, hermes_grammar
from .matcher import GrammarError, TriggeredGrammar

__all__ = ["DSMLToolCallConstraint", "GrammarError", "ToolCallConstraint", "TriggeredGrammar", "dsml_grammar", "hermes_grammar"]
