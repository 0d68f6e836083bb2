"""The README opens with the two commands, and CI runs the second one."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _commands() -> list[str]:
    return re.findall(r"```bash\n(.+?)\n```", (REPO / "README.md").read_text("utf-8"))


def test_the_readme_opens_with_the_main_job_and_the_tests() -> None:
    main_job, tests = _commands()[:2]
    assert 'pip install ".[local]"' in main_job and main_job.endswith("haystack-eval run configs/quickstart.yaml --out runs/quickstart")
    assert 'pip install -e ".[local,test]"' in tests and tests.endswith("pytest")


def test_ci_runs_the_readme_test_command() -> None:
    assert _commands()[1] in (REPO / ".ci" / "run").read_text("utf-8")


def test_the_readme_commands_use_real_files() -> None:
    for path in re.findall(r"configs/[\w.-]+\.yaml", (REPO / "README.md").read_text("utf-8")):
        assert (REPO / path).is_file(), path


def test_the_ci_workflow_example_runs(tmp_path: Path, capsys: object) -> None:
    """The README's GitHub Actions steps, in order: run, then check (on the scripted config, in seconds)."""
    import pytest

    from haystack_eval.cli import main

    text = (REPO / "README.md").read_text("utf-8")
    steps = re.findall(r"- run: haystack-eval (.+?)(?:\n|$)", text)
    assert [s.split()[0] for s in steps] == ["run", "check"]
    out = str(tmp_path / "runs" / "quickstart")
    for step in steps:
        args = step.split("   #")[0].replace("runs/quickstart", out).replace('"$GITHUB_STEP_SUMMARY"',
                                                                            str(tmp_path / "summary.md"))
        args = args.replace("check.xml", str(tmp_path / "check.xml"))
        # The same steps on the scripted stand-in: the quickstart's real model would take minutes here.
        args = args.replace("configs/quickstart.yaml", str(REPO / "configs" / "scripted.yaml"))
        with pytest.raises(SystemExit) as info:
            main(args.split())
        assert info.value.code in (0, None), (step, capsys.readouterr())  # type: ignore[attr-defined]
    assert (tmp_path / "check.xml").is_file() and "### Check: passed" in (tmp_path / "summary.md").read_text()


def test_the_task_kinds_example_validates() -> None:
    import yaml

    from haystack_eval.config import Config

    text = (REPO / "README.md").read_text("utf-8")
    section = text.split("## Task kinds and scoring", 1)[1].split("\n## ", 1)[0]
    block = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    config = Config.model_validate({"name": "t", "model": {"provider": "scripted", "name": "oracle"},
                                    "haystack": {"lengths": [1000]}, **yaml.safe_load(block)})
    assert config.task.kind == "multikey" and config.scoring.judge is not None
    kinds = set(re.findall(r"^\| `(\w+)` \|", section, re.MULTILINE))
    assert {"single", "latent", "multi", "multikey", "multivalue", "multiquery", "distractor", "absent"} <= kinds


def test_the_tests_the_readme_cites_exist() -> None:
    text = (REPO / "README.md").read_text("utf-8")
    cited = re.findall(r"`(tests/[\w/]+\.py)(?:::(\w+))?", text)
    assert len(cited) >= 10
    for path, name in cited:
        source = (REPO / path).read_text("utf-8")
        assert not name or f"def {name}(" in source, f"{path}::{name}"
    for name in re.findall(r"`::(\w+)`", text):
        assert any(f"def {name}(" in p.read_text("utf-8") for p in (REPO / "tests").rglob("*.py")), name
