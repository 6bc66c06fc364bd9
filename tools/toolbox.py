"""The set of tools the agent offers the model, and the one place tool calls are validated and run."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ValidationError

from .base import Tool, ToolError, ToolResult, openai_schema
from .bash import Bash
from .call_checks import BadArguments, check_arguments, decode_arguments
from .apply_patch import ApplyPatch
from .edit_file import EditFile
from .git import Git
from .list_files import ListFiles
from .multi_edit import MultiEdit
from .read_file import ReadFile
from .run_tests import RunTests
from .search import Search
from .todo import Todo
from .workspace import PathEscape, Workspace, describe_os_error
from .write_file import WriteFile

DEFAULT_TOOLS: tuple[type, ...] = (ReadFile, ListFiles, Search, EditFile, MultiEdit, WriteFile, ApplyPatch, RunTests,
                                   Bash, Git, Todo)


class Toolbox:
    def __init__(self, workspace: Workspace, tools: tuple[type, ...] = DEFAULT_TOOLS, extra: Iterable[Tool] = ()) -> None:
        """`extra`: tool instances made at run time (an MCP server's tools); a built-in name always wins."""
        self.workspace = workspace
        self.tools: dict[str, Tool] = {cls.name: cls() for cls in tools}
        for tool in extra:
            self.tools.setdefault(tool.name, tool)

    def schemas(self) -> list[dict[str, Any]]:
        return [openai_schema(tool) for tool in self.tools.values()]

    def prepare(self, name: str, raw_arguments: str) -> tuple[Tool, BaseModel]:
        """The tool and its validated args, or a ToolError that says what was wrong with the call."""
        tool = self.tools.get(name)
        if tool is None:
            raise ToolError(f"unknown tool {name!r}; available tools: {', '.join(self.tools)}")
        try:
            arguments = decode_arguments(raw_arguments)
        except json.JSONDecodeError as exc:
            raise ToolError(f"arguments for {name} are not valid JSON ({exc.msg} at position {exc.pos}); "
                            "send a JSON object") from None
        except BadArguments as exc:
            raise ToolError(f"invalid arguments for {name}: {exc}") from None
        if not isinstance(arguments, dict):
            raise ToolError(f"arguments for {name} must be a JSON object")
        try:
            check_arguments(arguments)
        except BadArguments as exc:
            raise ToolError(f"invalid arguments for {name}: {exc}") from None
        try:
            return tool, tool.Args.model_validate(arguments)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}" for e in exc.errors())
            raise ToolError(f"invalid arguments for {name}: {problems}") from None

    def execute(self, tool: Tool, args: BaseModel) -> ToolResult:
        """Run the tool; its result carries every file it wrote (even when it then failed), taken from the workspace."""
        result = self._run(tool, args)
        return result.model_copy(update={"file_changes": self.workspace.take_changes(),
                                         "files_read": self.workspace.take_reads()})

    def _run(self, tool: Tool, args: BaseModel) -> ToolResult:
        try:
            return tool.run(args, self.workspace)
        except ToolError as exc:
            return ToolResult(text=f"error: {exc}", is_error=True, data=exc.data)
        except PathEscape as exc:
            return ToolResult(text=f"error: {exc}", is_error=True)
        except OSError as exc:  # the filesystem said no (a file where a folder must be, a full disk, ...)
            return ToolResult(text=f"error: {describe_os_error(exc, self.workspace)}", is_error=True,
                              data={"errno": exc.errno})
        except Exception as exc:  # a bug in a tool: the model hears of it, the run goes on; the fuzz test finds it
            return ToolResult(text=f"error: internal error in {tool.name}: {type(exc).__name__}: {exc}",
                              is_error=True, data={"internal_error": type(exc).__name__})
