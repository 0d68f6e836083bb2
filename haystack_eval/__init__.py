"""haystack-eval: needle-in-a-haystack sweeps with token-exact contexts and honest heatmaps."""

from haystack_eval.config import Config, load_config
from haystack_eval.contexts import Context, ContextBuilder, build_context, builder_for
from haystack_eval.errors import ConfigError, ContextError, HaystackError

__version__ = "0.1.0"

__all__ = [
    "Config",
    "ConfigError",
    "Context",
    "ContextBuilder",
    "ContextError",
    "HaystackError",
    "__version__",
    "build_context",
    "builder_for",
    "load_config",
]
