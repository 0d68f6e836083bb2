"""haystack-eval: needle-in-a-haystack sweeps with token-exact contexts and honest heatmaps."""

from haystack_eval.config import Config, load_config
from haystack_eval.contexts import Context, ContextBuilder, build_context, builder_for
from haystack_eval.errors import BackendError, ConfigError, ContextError, HaystackError, StoreError
from haystack_eval.sweep import Run, arun, load_run, run

__version__ = "0.1.0"

__all__ = [
    "BackendError",
    "Config",
    "ConfigError",
    "Context",
    "ContextBuilder",
    "ContextError",
    "HaystackError",
    "Run",
    "StoreError",
    "__version__",
    "arun",
    "build_context",
    "builder_for",
    "load_config",
    "load_run",
    "run",
]
