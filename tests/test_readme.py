"""The README opens with the two commands, and CI runs the second one."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _commands() -> list[str]:
    return re.findall(r"```bash\n(.+?)\n```", (REPO / "README.md").read_text("utf-8"))


def test_the_readme_opens_with_the_main_job_and_the_tests() -> None:
    main_job, tests = _commands()[:2]
    assert "pip install ." in main_job and "haystack-eval" in main_job
    assert 'pip install -e ".[test]"' in tests and tests.endswith("pytest")


def test_ci_runs_the_readme_test_command() -> None:
    assert _commands()[1] in (REPO / ".ci" / "run").read_text("utf-8")


def test_the_readme_commands_use_real_files() -> None:
    for path in re.findall(r"configs/[\w.-]+\.yaml", (REPO / "README.md").read_text("utf-8")):
        assert (REPO / path).is_file(), path
