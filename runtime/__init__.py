"""In-process inference. Importing this package is cheap: torch is imported only by the modules that run models."""

from .errors import BadModelFile, ContextOverflow, MissingTokenizer, ModelNotFound, RuntimeModelError

__all__ = ["BadModelFile", "ContextOverflow", "MissingTokenizer", "ModelNotFound", "RuntimeModelError"]
