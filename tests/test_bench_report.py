"""The benchmark report's targets: ratio and absolute wall-time limits, and n/a on old results.

run.Result builds the result rows, so the synthetic data has the shape run.py writes.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import pytest

from helpers import load_bench

run = load_bench("run")
report = run.report

POOL = "small10: create with the pool no slower than --no-parallel"
STARTUP = "arcman --version wall < 150 ms"


def _row(corpus: str, op: str, tool: str, walls: list[float],
         counterpart: str | None = None) -> dict[str, Any]:
    res = run.Result(corpus, op, tool, tool, tool.startswith("arcman"), counterpart)
    res.runs = [run.Run(wall=w, cpu=w, maxrss=20 << 20, tree_rss=None, size=1000, rc=0)
                for w in walls]
    res.summarize()
    return asdict(res)


def _data(pool_s: float | None, seq_s: float, startup_s: float | None) -> dict[str, Any]:
    results = [_row("small10", "create", "arcman gz", [seq_s * 2, pool_s or seq_s, 0.01])]
    if pool_s is not None:
        results.append(_row("small10", "create", "arcman gz --no-parallel", [seq_s] * 3,
                            counterpart="arcman gz"))
    if startup_s is not None:
        results += [_row(report.STARTUP, report.STARTUP, "arcman --version", [startup_s] * 3),
                    _row(report.STARTUP, report.STARTUP, "python -c pass", [0.02] * 3,
                         counterpart="arcman --version")]
    return {
        "meta": {"cores": 2, "ops": ["create"], "scale": 1.0, "repeat": 3, "quick_rounds": 15,
                 "quick_s": 1.0, "date": "today", "duration_s": 60.0, "machine": {},
                 "rss_sample_ms": 0},
        "corpora": {"small10": {"files": 10, "bytes": 50_000, "description": "ten files"}},
        "results": results,
        "notes": [],
    }


def _targets(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    rows = report.evaluate_targets(data)
    return {prefix: next(r for r in rows if r["target"].startswith(prefix))
            for prefix in (POOL, STARTUP)}


@pytest.mark.parametrize(("pool_s", "startup_s", "pool", "startup"), [
    (0.080, 0.100, ("PASS", "1.000x"), ("PASS", "100 ms")),
    (0.100, 0.151, ("MISS", "1.250x"), ("MISS", "151 ms")),
])
def test_pool_ratio_and_absolute_wall(pool_s: float, startup_s: float,
                                      pool: tuple[str, str], startup: tuple[str, str]) -> None:
    rows = _targets(_data(pool_s, 0.080, startup_s))
    assert (rows[POOL]["status"], rows[POOL]["detail"]) == pool
    assert rows[POOL]["corpus"] == "small10"
    assert (rows[STARTUP]["status"], rows[STARTUP]["detail"]) == startup
    assert rows[STARTUP]["corpus"] == report.STARTUP
    assert rows[STARTUP]["value"] == pytest.approx(startup_s)


def test_results_without_the_new_rows_give_na_with_reason() -> None:
    data = _data(None, 0.080, None)
    del data["meta"]["quick_rounds"], data["meta"]["quick_s"]  # results.json of older runs
    rows = _targets(data)
    assert rows[POOL]["status"] == rows[STARTUP]["status"] == "n/a"
    assert rows[POOL]["detail"] == "no data for arcman gz --no-parallel"
    assert rows[STARTUP]["detail"] == "no data for arcman --version"
    data["targets"] = report.evaluate_targets(data)
    text = report.render_markdown(data)
    assert "### start-up" not in text
    assert "| start-up | no data for arcman --version | n/a |" in text


def test_report_shows_the_startup_table() -> None:
    data = _data(0.080, 0.080, 0.100)
    data["targets"] = report.evaluate_targets(data)
    text = report.render_markdown(data)
    assert "### start-up" in text
    assert "| **arcman --version** | 3/3 | 100.0 | 100.0 | 100.0 |" in text
    assert "| python -c pass | 3/3 | 20.0 |" in text
    assert "max(3, 15) timed rounds" in text
