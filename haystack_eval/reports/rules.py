"""Where a check's thresholds and baseline come from: ``--config``, else the config recorded in the run."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from haystack_eval.config import CheckConfig, load_config
from haystack_eval.errors import ConfigError
from haystack_eval.sweep import Run

__all__ = ["check_rules"]


def check_rules(run: Run, config: Path | None, baseline: Path | None) -> tuple[CheckConfig, Path | None]:
    """The check: section to apply and the baseline path (``--baseline`` wins over ``check.baseline``)."""
    if config is not None:
        cfg = load_config(config)
        if cfg.check is None:
            raise cfg.error(("check",), "the config has no check: section",
                            "add one, e.g. check: {min_accuracy: 0.9}")
        rules, base_dir, where = cfg.check, cfg.base_dir, str(config)
    else:
        recorded = (run.manifest.get("config") or {}).get("check")
        if not recorded:
            raise ConfigError("the run records no check: section", where=str(run.path),
                              fix="pass --config CONFIG with a check: section")
        try:
            rules = CheckConfig.model_validate(recorded)
        except ValidationError as exc:
            raise ConfigError(f"the recorded check: section is not valid ({exc.error_count()} problem(s))",
                              where=str(run.path), fix="pass --config CONFIG with a valid check: section") from None
        config_path = run.manifest.get("config_path")
        base_dir = Path(config_path).parent if config_path else Path.cwd()
        where = f"{run.path} (recorded config)"
    if baseline is not None:
        return rules, baseline
    if rules.baseline is None:
        return rules, None
    path = Path(rules.baseline)
    path = path if path.is_absolute() else base_dir / path
    if not path.exists():
        raise ConfigError(f"check.baseline {rules.baseline!r} does not exist (looked at {path})", where=where,
                          fix="commit the baseline run there, or pass --baseline RUN_DIR")
    return rules, path
