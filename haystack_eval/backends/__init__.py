"""Model backends, found through one explicit, lazy name -> "module:Class" map."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from haystack_eval.backends.base import Backend, Capabilities, Reply, Request, Settings, Usage
from haystack_eval.config import ModelConfig
from haystack_eval.errors import ConfigError

__all__ = ["BACKENDS", "Backend", "Capabilities", "Reply", "Request", "Settings", "Usage", "create_backend"]

# provider -> (module:Class, the module its SDK is imported as, how to install it)
BACKENDS: dict[str, tuple[str, str | None, str | None]] = {
    "openai": ("haystack_eval.backends.openai_chat:OpenAIBackend", "openai", "pip install openai"),
    "openai-compatible": ("haystack_eval.backends.openai_chat:OpenAIBackend", "openai", "pip install openai"),
    "anthropic": ("haystack_eval.backends.anthropic_messages:AnthropicBackend", "anthropic", "pip install anthropic"),
    "llamacpp": ("haystack_eval.backends.llamacpp:LlamaCppBackend", "llama_cpp",
                 "pip install 'haystack-eval[local]'"),
    "scripted": ("haystack_eval.backends.scripted:ScriptedBackend", None, None),
}


def create_backend(model: ModelConfig, *, timeout_s: float, http_client: Any = None,
                   base_dir: Path | None = None) -> Backend:
    """The backend for ``model.provider``; ``http_client`` lets tests fake the transport; local model
    paths start at ``base_dir`` (the config's directory)."""
    target, sdk, hint = BACKENDS[model.provider]
    module_name, _, class_name = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
        if model.provider == "scripted":
            backend: Backend = cls(model)
        elif model.provider == "llamacpp":
            backend = cls(model, timeout_s=timeout_s, base_dir=base_dir)
        else:
            backend = cls(model, timeout_s=timeout_s, http_client=http_client)
    except ModuleNotFoundError as exc:
        if sdk is None or exc.name != sdk:
            raise
        raise ConfigError(f"the {model.provider} backend needs the {sdk} package", where="model.provider",
                          fix=hint) from None
    return backend
