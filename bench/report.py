"""Turn results.json into REPORT.md (tables, targets, phase timings) and chart.png.

Kept apart from run.py so a report can be re-rendered (or the targets re-evaluated) without
re-running hours of benchmarks: ``python bench/report.py bench/results/results.json``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MB = 1_000_000
MiB = 1 << 20
PEER_COLORS = (0, 1, 2, 4, 5, 7, 8, 9)  # tab10 without red (arcman's) and pink
OP_TITLES = {"create": "create", "extract": "extract", "verify": "verify"}
#: corpus and op of the start-up results (``arcman --version``): measured once a run, on no corpus
STARTUP = "start-up"

Row = dict[str, Any]


@dataclass(frozen=True)
class Target:
    """A goal: ``tool``'s metric divided by ``peer``'s must be <= ``limit``.

    With ``peer`` None the limit is absolute, in the metric's unit (seconds of wall, bytes of
    size or peak RSS). wall, cpu and size are medians; rss is the worst run (see peak_rss).
    """

    label: str
    op: str
    tool: str
    peer: str | None
    metric: str  # wall | cpu | size | rss
    limit: float
    applies: Callable[[str, dict[str, Any]], bool] = lambda name, info: True


def targets(cores: int) -> list[Target]:
    """The performance targets of arcman (peer names depend on the core count)."""
    pigz, zstd = f"tar|pigz -p{cores} -6", f"tar|zstd -T{cores} -3"
    many = lambda name, info: int(info.get("files", 0)) > 100  # noqa: E731
    big = lambda name, info: name == "big2x1g"  # noqa: E731
    return [
        Target(f"create .tar.gz wall <= 0.5x {pigz}", "create", "arcman gz", pigz, "wall", 0.5),
        Target("create .tar.gz size <= 1.02x tar|gzip -6", "create", "arcman gz", "tar|gzip -6",
               "size", 1.02),
        Target("create .tar.gz >= 5x faster than sequential tarfile (corpora > 100 files)",
               "create", "arcman gz", "tarfile seq", "wall", 0.2, many),
        Target("create --level 1 >= 10x faster than tar czf", "create", "arcman gz -1",
               "tar czf", "wall", 0.1),
        Target(f"create .tar.zst wall <= 1.0x {zstd}", "create", "arcman zst", zstd, "wall", 1.0),
        Target(f"create .tar.zst size <= 1.01x {zstd}", "create", "arcman zst", zstd, "size", 1.01),
        Target("extract .tar.gz (full SHA-256 verification) wall <= 0.7x tar xzf", "extract",
               "arcman extract", "tar xzf", "wall", 0.7),
        Target("verify wall <= 0.5x gzip -t", "verify", "arcman verify", "gzip -t", "wall", 0.5),
        Target("tiny20k create .tar.gz wall <= 3x tar czf", "create", "arcman gz", "tar czf",
               "wall", 3.0, lambda name, info: name == "tiny20k"),
        Target("small10: create with the pool no slower than --no-parallel (wall <= 1.05x: "
               "medians of >= 15 alternating rounds, 5% for noise)", "create", "arcman gz",
               "arcman gz --no-parallel", "wall", 1.05, lambda name, info: name == "small10"),
        Target("arcman --version wall < 150 ms (median of >= 15 rounds)", STARTUP,
               "arcman --version", None, "wall", 0.150),
        *(Target(f"big2x1g {tool} peak RSS <= 150 MB", op, tool, None, "rss", 150 * MB, big)
          for op, tool in (("create", "arcman gz"), ("create", "arcman gz -1"),
                           ("create", "arcman zst"), ("extract", "arcman extract"))),
    ]


def _index(data: dict[str, Any]) -> dict[tuple[str, str, str], Row]:
    return {(r["corpus"], r["op"], r["tool"]): r for r in data["results"]}


def peak_rss(row: Row) -> int | None:
    """Worst peak over successful runs: max of ru_maxrss and the sampled process-tree sum."""
    values = [max(r["maxrss"], r["tree_rss"] or 0) for r in row["runs"] if r["rc"] == 0]
    return max(values) if values else None


def _metric(row: Row | None, metric: str) -> float | None:
    """The figure a target compares: the worst peak for rss, the median otherwise."""
    if row is None:
        return None
    return peak_rss(row) if metric == "rss" else row["median"].get(metric)


def _scopes(t: Target, data: dict[str, Any]) -> list[str]:
    """The corpora ``t`` is evaluated on: start-up once a run (n/a in runs that lack it)."""
    if t.op == STARTUP:
        return [STARTUP]
    if t.op not in data["meta"]["ops"]:
        return []
    return [name for name, info in data["corpora"].items() if t.applies(name, info)]


def _detail(t: Target, value: float) -> str:
    """A target's actual value: a ratio, or an absolute time or size."""
    if t.peer is not None:
        faster = t.metric == "wall" and value < 1
        return f"{value:.3f}x" + (f" ({1 / value:.1f}x faster)" if faster else "")
    if t.metric in ("wall", "cpu"):
        return f"{value * 1000:.0f} ms"
    return f"{value / MB:.0f} MB"


def evaluate_targets(data: dict[str, Any]) -> list[Row]:
    """PASS/MISS (or n/a with the reason) for every target on every corpus it applies to."""
    idx = _index(data)
    out: list[Row] = []
    for t in targets(int(data["meta"]["cores"])):
        for corpus in _scopes(t, data):
            row: Row = {"target": t.label, "corpus": corpus, "limit": t.limit, "value": None,
                        "status": "n/a", "detail": ""}
            mine = idx.get((corpus, t.op, t.tool))
            peer = idx.get((corpus, t.op, t.peer)) if t.peer else None
            value = _metric(mine, t.metric)
            if t.peer is not None and value is not None:
                base = _metric(peer, t.metric)
                value = value / base if base else None
            if value is not None:
                row["value"] = value
                row["status"] = "PASS" if value <= t.limit else "MISS"
                row["detail"] = _detail(t, value)
            if row["status"] == "n/a":
                missing = [n for n, r in ((t.tool, mine), (t.peer, peer)) if n and
                           (r is None or r["status"] != "ok")]
                row["detail"] = "no data for " + ", ".join(missing or ["metric"])
            out.append(row)
    return out


def _cell(text: object) -> str:
    """Escape a value for a Markdown table cell (tool names contain pipes)."""
    return str(text).replace("|", "\\|").replace("\n", " / ")


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "s":
        return f"{value:.3f}" if value < 10 else f"{value:.1f}"
    if unit == "ms":
        return f"{value * 1000:.1f}"
    if unit == "MiB":
        return f"{value / MiB:.1f}"
    if unit == "size":
        return f"{value / MiB:.2f} MiB" if value >= MiB else f"{value / 1024:.1f} KiB"
    return f"{value:.3f}"


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.3f}" if a is not None and b else "-"


def _table(rows: list[Row], idx: dict[tuple[str, str, str], Row], corpus_bytes: int) -> list[str]:
    lines = [
        "| tool | runs ok | wall s | CPU s | MB/s | peak RSS MiB | tree RSS MiB | size "
        "| arcman vs | wall ratio | size ratio |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        m = r["median"]
        ok = sum(1 for x in r["runs"] if x["rc"] == 0)
        runs = f"{ok}/{len(r['runs'])}" + ("" if r["status"] == "ok" else f" ({r['status']})")
        thr = f"{corpus_bytes / MB / m['wall']:.0f}" if m.get("wall") else "-"
        vs = wall_ratio = size_ratio = ""
        if r["counterpart"]:
            mine = idx.get((r["corpus"], r["op"], r["counterpart"]))
            vs = r["counterpart"]
            if mine:
                wall_ratio = _ratio(mine["median"].get("wall"), m.get("wall"))
                size_ratio = _ratio(mine["median"].get("size"), m.get("size"))
        name = f"**{_cell(r['tool'])}**" if r["arcman"] else _cell(r["tool"])
        lines.append(
            f"| {name} | {runs} | {_fmt(m.get('wall'), 's')} | {_fmt(m.get('cpu'), 's')} | {thr} "
            f"| {_fmt(m.get('maxrss'), 'MiB')} | {_fmt(m.get('tree_rss'), 'MiB')} "
            f"| {_fmt(m.get('size'), 'size')} | {_cell(vs)} | {wall_ratio} | {size_ratio} |"
        )
    return lines


def _startup_table(rows: list[Row], idx: dict[tuple[str, str, str], Row]) -> list[str]:
    """Start-up wall times in ms: median with the spread (short runs are noisy)."""
    lines = ["| command | runs ok | wall ms | min ms | max ms | CPU ms | peak RSS MiB "
             "| arcman vs | wall ratio |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        m = r["median"]
        walls = [x["wall"] for x in r["runs"] if x["rc"] == 0]
        mine = idx.get((r["corpus"], r["op"], r["counterpart"])) if r["counterpart"] else None
        ratio = _ratio(mine["median"].get("wall"), m.get("wall")) if mine else ""
        name = f"**{_cell(r['tool'])}**" if r["arcman"] else _cell(r["tool"])
        lines.append(
            f"| {name} | {len(walls)}/{len(r['runs'])} | {_fmt(m.get('wall'), 'ms')} "
            f"| {_fmt(min(walls, default=None), 'ms')} | {_fmt(max(walls, default=None), 'ms')} "
            f"| {_fmt(m.get('cpu'), 'ms')} | {_fmt(m.get('maxrss'), 'MiB')} "
            f"| {_cell(r['counterpart'] or '')} | {ratio} |")
    return lines


def _phases(r: Row) -> str:
    tm = r["timings_median"]
    wall = r["median"].get("wall")
    parts = []
    for k, v in sorted(tm.items(), key=lambda kv: -kv[1]):
        pct = f" ({100 * v / wall:.0f}%)" if wall else ""
        parts.append(f"{k} {v:.3f}s{pct}")
    return ", ".join(parts) or "-"


def render_markdown(data: dict[str, Any]) -> str:
    """The REPORT.md text."""
    meta, machine = data["meta"], data["meta"]["machine"]
    idx = _index(data)
    out = ["# arcman benchmark report", ""]
    out += [f"Date: {meta['date']}. Run took {meta['duration_s'] / 60:.1f} min. "
            f"Repetitions: {meta['repeat']} timed rounds after one untimed warm-up; medians"
            + (f" (at least {meta['quick_rounds']} for short runs, see Method)."
               if "quick_rounds" in meta else "."), ""]
    if meta["scale"] != 1.0:
        out += [f"> **Scaled run (scale {meta['scale']:g})**: corpora are reduced; "
                "numbers and targets are NOT representative of the full benchmark.", ""]
    out += ["## Machine", "", "| | |", "|---|---|"]
    labels = [("cpu", "CPU"), ("cores", "cores (os.cpu_count)"), ("memory", "memory"),
              ("os", "OS"), ("python", "Python"), ("python_path", "interpreter"),
              ("arcman", "arcman --version"), ("tar", "tar"), ("gzip", "gzip"),
              ("pigz", "pigz"), ("zstd", "zstd"), ("load", "load average at start (1/5/15 min)"),
              ("load_end", "load average at end")]
    out += [f"| {label} | {machine.get(key, '-')} |" for key, label in labels]
    out += ["", "## Method", "",
            "- Every command runs as `bash -c 'set -o pipefail; CMD'`, reaped with `os.wait4`: "
            "wall is measured around it, CPU is user+sys of the whole process tree, "
            f"peak RSS ({meta.get('peak_rss_source', 'wait4 ru_maxrss')}) is that of the "
            "largest single process of the tree.",
            f"- tree RSS: summed RSS of the process tree sampled every {meta['rss_sample_ms']:g}"
            " ms with psutil (shows pipelines and worker processes; may miss very short peaks).",
            "- Commands alternate round-robin (arcman, peer 1, peer 2, arcman, ...). The page "
            "cache is not dropped: all runs read warm data. " + _cleanup_method(meta),
            "- Ratios are arcman / peer: below 1 means arcman is faster or smaller.",
            "- extract: each tool extracts the same archive; `arcman extract` on arcman's own "
            ".tar.gz verifies every member's SHA-256 from its manifest, on the foreign "
            "`tar|gzip -6` archive only the container's CRCs can be checked.",
            "- verify: both tools check arcman's own .tar.gz.",
            "- Targets on memory use the worst run's max(peak RSS, tree RSS)."]
    if "quick_rounds" in meta:
        out += [f"- Short runs are noisier: a group of commands whose warm-ups all took under "
                f"{meta['quick_s']:g} s (small10: ~80 ms a run) gets max({meta['repeat']}, "
                f"{meta['quick_rounds']}) timed rounds instead of {meta['repeat']}; \"runs ok\" "
                "shows the count.",
                f"- start-up: `arcman --version` alternates with the bare interpreter "
                f"(`PY -c pass`) for max({meta['repeat']}, {meta['quick_rounds']}) rounds; "
                "the difference is what arcman's imports cost."]
    out += [""]
    out += ["## Corpora", "", "| corpus | files | size | description |", "|---|---|---|---|"]
    for name, info in data["corpora"].items():
        out.append(f"| {name} | {info['files']} | {_fmt(info['bytes'], 'size')} "
                   f"| {info['description']} |")
    out += ["", "## Commands", "", "PY is the interpreter above; SRC the corpus directory "
            "(tar commands run inside it); OUT the output archive.", ""]
    seen: set[tuple[str, str]] = set()
    for r in data["results"]:
        if (r["op"], r["tool"]) not in seen:
            seen.add((r["op"], r["tool"]))
            out.append(f"- {r['op']} / {r['tool']}: `{r['command']}`")
    out += ["", "## Targets", ""]
    if meta["scale"] != 1.0:
        out += [f"(scale {meta['scale']:g}: indicative only)", ""]
    out += ["| target | corpus | actual | result |", "|---|---|---|---|"]
    for t in data.get("targets", []):
        mark = {"PASS": "PASS", "MISS": "**MISS**"}.get(t["status"], t["status"])
        out.append(f"| {_cell(t['target'])} | {t['corpus']} | {_cell(t['detail'])} | {mark} |")
    counts = {s: sum(1 for t in data.get("targets", []) if t["status"] == s)
              for s in ("PASS", "MISS", "n/a")}
    out += ["", f"{counts['PASS']} PASS, {counts['MISS']} MISS, {counts['n/a']} n/a.", ""]
    out += ["## Results", ""]
    for name, info in data["corpora"].items():
        out += [f"### {name} ({info['files']} files, {_fmt(info['bytes'], 'size')})", ""]
        for op in meta["ops"]:
            rows = [r for r in data["results"] if r["corpus"] == name and r["op"] == op]
            if rows:
                out += [f"**{op}**", "", *_table(rows, idx, int(info["bytes"])), ""]
    startup = [r for r in data["results"] if r["op"] == STARTUP]
    if startup:
        out += [f"### {STARTUP}", "", *_startup_table(startup, idx), ""]
    out += ["## Where the time went (arcman `--json` timings, medians)", "",
            "Phases may overlap (pipelined stages run concurrently), so shares can add up "
            "to more than 100% of the wall time.", "",
            "| corpus | op | tool | wall s | verification | phases |", "|---|---|---|---|---|---|"]
    for r in data["results"]:
        if r["arcman"] and r["op"] not in ("verify", STARTUP):
            last = next((x["json_out"] for x in reversed(r["runs"]) if x.get("json_out")), None)
            verification = (last or {}).get("verification", "-")
            out.append(f"| {r['corpus']} | {r['op']} | {_cell(r['tool'])} "
                       f"| {_fmt(r['median'].get('wall'), 's')} | {verification} "
                       f"| {_phases(r)} |")
    problems = [r for r in data["results"] if r["status"] != "ok" or r["note"]]
    notes = list(data.get("notes", []))
    notes += [f"{r['corpus']} {r['op']} {r['tool']}: {r['status']}: {r['note']}"
              for r in problems]
    if notes:
        out += ["", "## Notes", ""]
        out += ["- " + n.replace("\n", " / ") for n in notes]
    return "\n".join(out) + "\n"


def render_chart(data: dict[str, Any], path: Path) -> bool:
    """Grouped bars of median wall time per corpus, one panel per operation (log scale)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    ops = [op for op in data["meta"]["ops"] if any(r["op"] == op for r in data["results"])]
    if not ops:
        return False
    corpora = list(data["corpora"])
    fig, axes = plt.subplots(len(ops), 1, figsize=(14, 4.8 * len(ops)), squeeze=False)
    for ax, op in zip(axes[:, 0], ops, strict=True):
        tools = list(dict.fromkeys(r["tool"] for r in data["results"] if r["op"] == op))
        arc = [t for t in tools if t.startswith("arcman")]
        peers = [t for t in tools if not t.startswith("arcman")]
        colors = {**{t: plt.get_cmap("Reds")(0.85 - 0.2 * i) for i, t in enumerate(arc)},
                  **{t: plt.get_cmap("tab10")(PEER_COLORS[i % len(PEER_COLORS)])
                     for i, t in enumerate(peers)}}
        width = 0.8 / max(1, len(tools))
        idx = _index(data)
        for i, tool in enumerate(arc + peers):
            xs, ys = [], []
            for c, corpus in enumerate(corpora):
                row = idx.get((corpus, op, tool))
                wall = row["median"].get("wall") if row else None
                if wall:
                    xs.append(c + (i - (len(tools) - 1) / 2) * width)
                    ys.append(wall)
            ax.bar(xs, ys, width, label=tool, color=colors[tool],
                   edgecolor="black" if tool in arc else "none", linewidth=0.6)
        ax.set_yscale("log")
        ax.set_xticks(range(len(corpora)), corpora, fontsize=11)
        ax.set_ylabel("median wall time (s, log)")
        ax.set_title(f"{OP_TITLES[op]}: arcman (red, outlined) vs peers", fontsize=12)
        ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        ax.grid(axis="y", which="both", alpha=0.3)
    scale = data["meta"]["scale"]
    fig.suptitle("arcman benchmark" + (f" (scale {scale:g}, not representative)"
                                      if scale != 1.0 else ""), fontsize=14)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _cleanup_method(meta: dict[str, Any]) -> str:
    """How runs were kept from paying for each other's files (the harness changed once)."""
    if not meta.get("deferred_deletion"):
        return "Outputs and extraction directories are removed before each run (untimed)."
    return (
        "Outputs are removed before each run and dirty pages written back (`sync`), untimed. "
        "Each extraction writes a fresh directory; trees of 1,000 entries or more are deleted "
        "only when the benchmark ends: ext4 without a journal, as here, avoids reusing an "
        "inode for 60-360 s after it is freed and looks at every freed inode it passes when it "
        "allocates one, so deleting the previous run's tree made the next run's file creation "
        "pay for it (`tar xzf` of stdlib: 2.8-3.4 s instead of 1.5-1.9 s). For the same "
        "reason the benchmark should not start within 6 minutes of deleting a large tree on "
        "its file system." + (
            " A kept tree is written back and its pages dropped from the page cache at once "
            "(`posix_fadvise(DONTNEED)`, untimed): kept in memory, the trees of a whole run "
            "filled the page cache, and every later run then spent more kernel time writing "
            "(`tar xzf` of stdlib: 1.1-1.3 s of system time instead of 0.4-0.7 s)."
            if meta.get("evicted_trash") else ""
        )
    )


def render(data: dict[str, Any], outdir: Path) -> None:
    """Write REPORT.md and chart.png into ``outdir``."""
    outdir.mkdir(parents=True, exist_ok=True)
    text = render_markdown(data)
    if render_chart(data, outdir / "chart.png"):
        text += "\n![median wall time per corpus and operation](chart.png)\n"
    else:
        text += "\n(chart.png not drawn: matplotlib is not installed)\n"
    (outdir / "REPORT.md").write_text(text)


def main(argv: list[str]) -> int:
    """Re-render the report (and re-evaluate the targets) from a results.json."""
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    path = Path(argv[0])
    data = json.loads(path.read_text())
    data["targets"] = evaluate_targets(data)
    path.write_text(json.dumps(data, indent=1) + "\n")
    render(data, path.parent)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
