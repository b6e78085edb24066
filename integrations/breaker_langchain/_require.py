"""Import LangChain only when a plugin is used, and say how to install it when it is missing."""

from __future__ import annotations

import importlib

__all__ = ["require"]

INSTALL = "pip install 'agent-cost-breaker[langchain]'"


def require(module: str, why: str) -> None:
    """Import ``module`` or raise an ``ImportError`` that says what to install."""
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"{why}, which is not installed ({exc.name or module} is missing): {INSTALL}") from exc
