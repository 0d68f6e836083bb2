"""Model backends, found through one explicit, lazy name -> "module:Class" map."""

from __future__ import annotations

import importlib
from typing import Any

from haystack_eval.backends.base import Backend, Capabilities, Reply, Request, Settings, Usage
from haystack_eval.config import ModelConfig
from haystack_eval.errors import ConfigError

__all__ = ["BACKENDS", "Backend", "Capabilities", "Reply", "Request", "Settings", "Usage", "create_backend"]

# provider -> (module:Class, the pip package its SDK comes from)
BACKENDS: dict[str, tuple[str, str | None]] = {
    "openai": ("haystack_eval.backends.openai_chat:OpenAIBackend", "openai"),
    "openai-compatible": ("haystack_eval.backends.openai_chat:OpenAIBackend", "openai"),
    "anthropic": ("haystack_eval.backends.anthropic_messages:AnthropicBackend", "anthropic"),
    "scripted": ("haystack_eval.backends.scripted:ScriptedBackend", None),
}


def create_backend(model: ModelConfig, *, timeout_s: float, http_client: Any = None) -> Backend:
    """The backend for ``model.provider``; ``http_client`` lets tests fake the transport."""
    entry = BACKENDS.get(model.provider)
    if entry is None:
        raise ConfigError(f"the {model.provider} backend is not available in this version", where="model.provider",
                          fix="use openai, anthropic, openai-compatible or scripted")
    target, package = entry
    module_name, _, class_name = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
        if model.provider == "scripted":
            backend: Backend = cls(model)
        else:
            backend = cls(model, timeout_s=timeout_s, http_client=http_client)
    except ModuleNotFoundError as exc:
        if package is None or exc.name != package:
            raise
        raise ConfigError(f"the {model.provider} backend needs the {package} package", where="model.provider",
                          fix=f"pip install {package}") from None
    return backend
