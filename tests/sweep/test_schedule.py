"""Cache-aware scheduling against the fake server's simulated prompt cache (OpenAI automatic, Anthropic breakpoints).

What is checked: the scheduler's cached share is close to the sweep's ideal and a shuffled order gets less;
the first cell of each (length, trial) group has finished before the rest of the group starts; Anthropic
requests carry at most 4 breakpoints, only at needle boundaries and never below the minimum length; and
scheduling never changes a prompt.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from haystack_eval.config import Config
from haystack_eval.contexts import Context, builder_for
from haystack_eval.reports.markdown import render_summary
from haystack_eval.sweep import load_run, plan_run
from haystack_eval.sweep.estimate import cache_rule, estimate
from haystack_eval.sweep.pricing import pricer_for
from haystack_eval.sweep.schedule import first_hidden
from tests.fakes.cache_sweep import Swept, config_for, sweep
from tests.fakes.provider_server import FakeProvider, RecordedRequest

MODELS = {"openai": "gpt-4o", "anthropic": "claude-sonnet-5"}
Key = tuple[int, float, int]


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_PROVIDER_KEY", "sk-fake")


@pytest.fixture
def server() -> Iterator[FakeProvider]:
    with FakeProvider(prompt_cache=True, latency_s=0.02) as fake:  # latency: requests in flight overlap
        yield fake


def config(server: FakeProvider, provider: str, tmp_path: Path, *, concurrency: int = 4) -> Config:
    return config_for(server, provider, MODELS[provider], tmp_path / "configs", lengths=[3000, 6000], depths=6,
                      trials=2, concurrency=concurrency)


def contexts(cfg: Config) -> dict[Key, Context]:
    builder = builder_for(cfg)
    return {c.key: builder.build(c.length, c.depth, c.trial) for c in plan_run(cfg, resume=False).cells}


def user_text(request: RecordedRequest) -> str:
    content = request.body["messages"][-1]["content"]
    return content if isinstance(content, str) else "".join(block["text"] for block in content)


def cells_of(server: FakeProvider, built: dict[Key, Context]) -> list[tuple[Key, RecordedRequest]]:
    """Each generation request with the cell whose prompt it carried."""
    by_text = {ctx.prompt.user: key for key, ctx in built.items()}
    return [(by_text[user_text(r)], r) for r in server.requests if r.body and "messages" in r.body]


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_the_scheduler_gets_close_to_the_ideal_and_a_shuffled_order_gets_less(
        provider: str, server: FakeProvider, tmp_path: Path) -> None:
    cfg = config(server, provider, tmp_path)
    scheduled = sweep(cfg, tmp_path / "scheduled")
    with FakeProvider(prompt_cache=True, latency_s=0.02) as cold:  # a fresh cache for the naive order
        naive = sweep(config(cold, provider, tmp_path), tmp_path / "naive", shuffle=3, cache_aware=False)
    ideal = scheduled.cache.ideal_share
    assert ideal > 0.3  # six depths: the bound is large enough to tell orders apart
    # The fake counts 4 characters a token and the bound is in o200k tokens: close, not equal.
    assert scheduled.cache.share == pytest.approx(ideal, abs=0.03)
    # The fake's cache never forgets, which flatters a shuffled order (a real one expires in minutes): still less.
    assert naive.cache.share < scheduled.cache.share - 0.01
    assert naive.cache.ideal_share == pytest.approx(ideal)  # the same sweep, the same bound
    assert all(r["status"] == "ok" for r in scheduled.records + naive.records)


def test_the_ideal_is_the_estimates_warm_bound(server: FakeProvider, tmp_path: Path) -> None:
    cfg = config(server, "openai", tmp_path)
    swept = sweep(cfg, tmp_path / "run")
    warm = estimate(cfg, builder_for(cfg), plan_run(cfg, resume=False), pricer_for(cfg.model)).scenarios["cached_warm"]
    assert sum(r["cacheable_tokens"] for r in swept.records) == warm.cached_input_tokens
    assert swept.cache.ideal_share == pytest.approx(warm.cached_share)


def groups(keys: list[Key]) -> dict[tuple[int, int], list[Key]]:
    out: dict[tuple[int, int], list[Key]] = {}
    for key in keys:
        out.setdefault((key[0], key[2]), []).append(key)
    return out


def test_openai_warms_each_group_with_its_deepest_cell_then_fans_out(server: FakeProvider, tmp_path: Path) -> None:
    cfg = config(server, "openai", tmp_path)
    sweep(cfg, tmp_path / "run")
    sent = cells_of(server, contexts(cfg))
    when = {key: request for key, request in sent}
    assert len(when) == len(sent) == 24  # one request a cell
    for members in groups([key for key, _ in sent]).values():
        warm = max(members, key=lambda k: k[1])
        first = when[warm]
        assert first.finished is not None
        assert all(when[k].started >= first.finished for k in members if k != warm), "fanned out before warm"
    assert server.max_in_flight > 1  # the rest of a group went out together


def test_anthropic_sends_a_group_by_rising_depth_one_after_the_other(server: FakeProvider, tmp_path: Path) -> None:
    cfg = config(server, "anthropic", tmp_path)
    sweep(cfg, tmp_path / "run")
    sent = cells_of(server, contexts(cfg))
    when = {key: request for key, request in sent}
    for members in groups([key for key, _ in sent]).values():
        chain = sorted(members, key=lambda k: k[1])
        for before, after in itertools.pairwise(chain):
            finished = when[before].finished
            assert finished is not None and when[after].started >= finished
    assert server.max_in_flight > 1  # groups go side by side


def test_anthropic_breakpoints_sit_on_needle_boundaries_above_the_minimum(server: FakeProvider, tmp_path: Path) -> None:
    cfg = config(server, "anthropic", tmp_path)
    sweep(cfg, tmp_path / "run")
    built = contexts(cfg)
    minimum = cache_rule(cfg.model).minimum
    boundaries: dict[tuple[int, int], dict[int, int]] = {}  # group -> needle char offset -> prompt tokens before
    for key, ctx in built.items():
        hidden = first_hidden(ctx)
        assert hidden is not None
        boundaries.setdefault((key[0], key[2]), {})[hidden.char_offset] = hidden.token_offset
    marked = 0
    for key, request in cells_of(server, built):
        content = request.body["messages"][-1]["content"]
        if isinstance(content, str):
            continue
        ends, at = [], 0
        for block in content:
            at += len(block["text"])
            if "cache_control" in block:
                assert block["cache_control"] == {"type": "ephemeral"}
                ends.append(at)
        assert 1 <= len(ends) <= 4
        own = boundaries[(key[0], key[2])]
        assert all(end in own and own[end] >= minimum for end in ends), "a breakpoint off a needle boundary"
        marked += len(ends)
    assert marked >= 12  # most cells read their predecessor's prefix and write their own


def test_short_prefixes_get_no_breakpoint(tmp_path: Path) -> None:
    with FakeProvider(prompt_cache=True) as server:
        cfg = config_for(server, "anthropic", MODELS["anthropic"], tmp_path / "c", lengths=[1500], depths=3, trials=1,
                         concurrency=2)
        swept = sweep(cfg, tmp_path / "run")
        built = contexts(cfg)
        for key, request in cells_of(server, built):
            hidden = first_hidden(built[key])
            assert hidden is not None
            if hidden.token_offset < 1024:  # below Claude Sonnet's minimum cacheable prefix
                assert isinstance(request.body["messages"][-1]["content"], str)
    assert swept.cache.cache_write_tokens == 0 or swept.cache.share > 0


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_scheduling_never_changes_a_prompt(provider: str, server: FakeProvider, tmp_path: Path) -> None:
    cfg = config(server, provider, tmp_path)
    built = contexts(cfg)
    sweep(cfg, tmp_path / "scheduled")
    scheduled = {key: request.body for key, request in cells_of(server, built)}
    server.requests.clear()
    sweep(cfg, tmp_path / "plain", cache_aware=False)
    plain = {key: request.body for key, request in cells_of(server, built)}
    assert scheduled.keys() == plain.keys() == built.keys()
    for key, ctx in built.items():
        for body in (scheduled[key], plain[key]):
            text = body["messages"][-1]["content"]
            sent = text if isinstance(text, str) else "".join(block["text"] for block in text)
            assert sent == ctx.prompt.user  # the text, split into blocks or not, is the cell's own
            system = body.get("system") or body["messages"][0]["content"]
            assert system == ctx.prompt.messages[0].content


def test_records_and_the_summary_report_the_cached_share(server: FakeProvider, tmp_path: Path) -> None:
    cfg = config(server, "anthropic", tmp_path)
    swept: Swept = sweep(cfg, tmp_path / "run")
    records: list[dict[str, Any]] = swept.records
    assert all(r["cacheable_tokens"] >= 0 for r in records)
    written = sum(r["usage"]["cache_write_tokens"] for r in records)
    assert written == swept.cache.cache_write_tokens > 0
    summary = render_summary([load_run(tmp_path / "run")])
    assert f"Prompt cache: {100 * swept.cache.share:.1f}% of input tokens read from the prompt cache" in summary
    assert f"(ideal for this sweep {100 * swept.cache.ideal_share:.1f}%), {written:,} written" in summary


def test_a_cost_limit_under_fanout_stops_instead_of_waiting(
        server: FakeProvider, tmp_path: Path, write_config: Callable[..., Path]) -> None:
    import asyncio

    from haystack_eval.config import load_config
    from haystack_eval.sweep import arun

    text = config(server, "openai", tmp_path).model_dump_json()  # only to prove the config loads
    assert text
    path = write_config(f"""\
name: capped
model: {{provider: openai, name: gpt-4o, base_url: '{server.openai_base_url}', tokenizer: tiktoken:o200k_base,
        api_key_env: FAKE_PROVIDER_KEY, params: {{max_output_tokens: 16}}}}
haystack: {{filler: essays, lengths: [3000, 6000], depths: {{min: 0, max: 100, steps: 6}}}}
task: {{trials: 2}}
run: {{concurrency: 4}}
""")
    run = asyncio.run(asyncio.wait_for(arun(load_config(path), out=tmp_path / "capped", max_cost=0.03), 60))
    assert run.partial_reason and 0 < len(run.records) < 24  # ended, partial: no worker waited forever
