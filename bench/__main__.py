"""`python -m bench`: every benchmark against PostgreSQL; the table goes to bench/RESULTS.md."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from bench import (
    bus,
    catalog_import,
    catalog_search,
    catalog_turns,
    db_path,
    history,
    live,
    search,
    stats,
    streaming,
    transcript,
    turns,
)
from bench.common import ADMIN_DSN, scratch_database

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def _machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory = int(Path("/proc/meminfo").read_text().split()[1]) // (1024 * 1024)

    async def version() -> str:
        connection = await asyncpg.connect(ADMIN_DSN)
        try:
            return str(await connection.fetchval("SHOW server_version"))
        finally:
            await connection.close()

    return (
        f"{os.cpu_count()} × {cpu}, {memory} GiB; Python {platform.python_version()}; "
        f"PostgreSQL {asyncio.run(version())}; {platform.platform()}"
    )


def _loop_seconds() -> float:
    """A fixed piece of pure-Python work, timed: how fast this machine is today.

    Shared machines vary from day to day (the same code's history p50 was 2.9 ms on one day and
    6 ms on another); the absolute figures should be read against this one.
    """
    times = []
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for i in range(10_000_000):
            total += i
        times.append(time.perf_counter() - started)
    return round(sorted(times)[1], 2)


def _row(name: str, figures: dict[str, object], keys: list[str]) -> str:
    shown = ", ".join(f"{k} = {figures[k]}" for k in keys)
    verdict = "met" if figures.get("met") else "**missed**"
    return f"| {name} | {shown} | {figures['target']} | {verdict} | `{figures['commit']}` |"


def _stream_rows(figures: dict[str, object]) -> list[str]:
    rows = []
    levels = figures["levels"]
    assert isinstance(levels, list)
    for level in levels:
        relay = level["baseline_relay"]
        within = "yes" if level["met"] else "no"
        within += " (relay: " + ("yes" if level["baseline_met"] else "no") + ")"
        rows.append(
            f"| {level['streams']} "
            f"| {level['added_ttft_p50_ms']} / {level['added_ttft_p99_ms']} "
            f"| {level['added_gap_p99_ms']} | {level['worker_cpu_us_per_event']} / "
            f"{level['worker_cpu_us_per_token']} "
            f"| {relay['added_ttft_p50_ms']} / {relay['added_ttft_p99_ms']}, "
            f"{relay['added_gap_p99_ms']}, {relay['worker_cpu_us_per_event']} / "
            f"{relay['worker_cpu_us_per_token']} "
            f"| {level['cpu_ratio_per_event']} / {level['cpu_ratio_per_token']} | {within} |"
        )
    return rows


def _stream_capacity(figures: dict[str, object]) -> str:
    """What the top level asks of one worker, at the minimal relay's own cost per event."""
    from bench.fake_model import INTERVAL

    streams = int(str(figures["streams"]))
    relay = figures["baseline_relay"]
    assert isinstance(relay, dict)
    per_second = streams / INTERVAL
    cores = per_second * float(relay["worker_cpu_us_per_event"]) / 1e6
    return (
        f"At {streams:,} streams the model sends {per_second:,.0f} tokens a second. At the "
        f"minimal relay's {relay['worker_cpu_us_per_event']} µs of CPU an event, relaying them "
        f"alone takes {cores:.2f} cores, where one worker has one (and this machine two, shared "
        "with the model, the load and PostgreSQL): neither the relay nor the service keeps up on "
        "one worker there, and the time to first token measures their queue. Levels past "
        "what one worker holds call for more workers (`uvicorn --workers N`), which share "
        "nothing but the database."
    )


# What the before-and-after table shows of each benchmark run with --before.
COMPARED = {
    "turns": ["service_turns_per_s", "baseline_turns_per_s", "ratio", "service_cpu_ms_per_turn"],
    "history": ["p50_ms_10k", "p50_ms_1m", "p99_ms_1m", "ratio"],
    "search": ["p50_ms_common_word", "p50_ms_rare_word", "p50_ms_no_match", "p99_ms_worst"],
    "catalog_turns": ["service_turns_per_s", "baseline_turns_per_s", "ratio"],
    "streaming": [
        "worker_cpu_us_per_event",
        "worker_cpu_us_per_token",
        "cpu_ratio_per_token",
        "most_streams_within_target",
    ],
    "bus": ["p50_ms", "p99_ms", "publish_cpu_us_pooled"],
    "live": ["fanout_p50_ms", "fanout_p99_ms", "idle_kib_per_stream", "heartbeat_cpu_us"],
}


def _before_and_after(results: dict[str, dict[str, object]]) -> list[str]:
    compared = [name for name in results if isinstance(results[name].get("before"), dict)]
    if not compared:
        return []
    rows = [
        "## Before and after, in one run",
        "",
        "Run with `--before REV`: each benchmark first on a checkout of REV, then on this",
        "commit, one after the other on the same machine.",
        "",
        "| benchmark | figure | before | after |",
        "| --- | --- | --- | --- |",
    ]
    for name in compared:
        before = results[name]["before"]
        assert isinstance(before, dict)
        for key in COMPARED.get(name, []):
            rows.append(
                f"| {name} | {key} | {before.get(key)} (`{before.get('commit')}`) "
                f"| {results[name].get(key)} (`{results[name]['commit']}`) |"
            )
    return [*rows, ""]


def _run_before(revision: str, chosen: list[str], quick: bool) -> dict[str, dict[str, object]]:
    """The chosen benchmarks, run by a checkout of `revision` (its own bench/ and app/), with
    this interpreter; their figures as that checkout wrote them."""
    root = Path(__file__).resolve().parent.parent
    checkout = Path(f"/tmp/bench-before-{revision}")
    if not checkout.exists():
        subprocess.run(
            ["git", "-C", str(root), "worktree", "add", "--detach", str(checkout), revision],
            check=True,
        )
    known = subprocess.run(
        [sys.executable, "-c", "from bench.__main__ import BENCHMARKS; print(*BENCHMARKS)"],
        cwd=checkout,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    chosen = [name for name in chosen if name in known]  # a benchmark it had already
    if not chosen:
        return {}
    subprocess.run(
        [sys.executable, "-m", "bench", *(["--quick"] if quick else []), *chosen],
        cwd=checkout,
        check=True,
    )
    figures = _previous_of(checkout / "bench" / "RESULTS.md")
    return {name: figures[name] for name in chosen if name in figures}


BENCHMARKS = (
    "turns",
    "streaming",
    "history",
    "search",
    "stats",
    "transcript",
    "catalog",
    "catalog_search",
    "catalog_turns",
    "db_path",
    "bus",
    "live",
)


def _run(name: str, quick: bool) -> dict[str, object]:
    with scratch_database() as url:
        if name == "turns":
            return turns.run(url, rounds=2 if quick else 5)
        if name == "streaming":
            return streaming.run(url, levels=(100, 200) if quick else (100, 250, 500, 1000))
        if name == "history":
            return history.run(url, requests=200 if quick else 500)
        if name == "search":
            return search.run(url, requests=30 if quick else 100)
        if name == "stats":
            return stats.run(url, requests=10 if quick else 50)
        if name == "catalog":
            return catalog_import.run(url, products=20_000 if quick else 100_000)
        if name == "catalog_search":
            return catalog_search.run(url, rounds=10 if quick else 30)
        if name == "catalog_turns":
            return catalog_turns.run(url, rounds=2 if quick else 5)
        if name == "db_path":
            return db_path.run(url, rounds=3 if quick else 7)
        if name == "bus":
            return bus.run(url, notices=1_000 if quick else 3_000, rounds=3 if quick else 5)
        if name == "live":
            return live.run(url, replies=100 if quick else 300, rounds=1 if quick else 3)
        return transcript.run(url, requests=30 if quick else 100)


def _previous() -> dict[str, dict[str, object]]:
    """The figures of the last run, each with the commit it ran on: a run of some benchmarks
    keeps the others' figures."""
    return _previous_of(RESULTS)


def _previous_of(results: Path) -> dict[str, dict[str, object]]:
    if not results.exists():
        return {}
    text = results.read_text()
    raw = re.search(r"```json\n(.*?)\n```", text, re.S)
    if raw is None:
        return {}
    figures: dict[str, dict[str, object]] = json.loads(raw.group(1))
    commit = re.search(r"on commit `(\w+)`", text)
    machine = re.search(r"Machine: (.*?)\. Servers", text)
    loop = re.search(r"Python loop takes ([0-9.]+) s", text)
    for result in figures.values():
        result.setdefault("commit", commit.group(1) if commit else "unknown")
        result.setdefault("machine", machine.group(1) if machine else "unknown")
        result.setdefault("loop_s", float(loop.group(1)) if loop else None)
    return figures


def _machines(results: dict[str, dict[str, object]]) -> list[str]:
    """A line for each machine the rows ran on (the rows a run keeps may be another day's)."""
    runs: dict[tuple[object, object], list[str]] = {}
    for result in results.values():
        commits = runs.setdefault((result["machine"], result["loop_s"]), [])
        if f"`{result['commit']}`" not in commits:
            commits.append(f"`{result['commit']}`")
    return [
        f"- Rows of {', '.join(commits)}: {machine}; a 10,000,000-step Python loop took "
        f"{loop} s that day (a typical current desktop core: about 0.5 s)."
        for (machine, loop), commits in runs.items()
    ]


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="fewer rounds, smaller loads")
    parser.add_argument(
        "--before",
        metavar="REV",
        help="run the chosen benchmarks on a checkout of REV first, and show both",
    )
    parser.add_argument("names", nargs="*", help=f"which to run: {', '.join(BENCHMARKS)} (all)")
    args = parser.parse_args()
    unknown = set(args.names) - set(BENCHMARKS)
    if unknown:
        parser.error(f"no benchmark {', '.join(sorted(unknown))} (see --help)")
    chosen = [name for name in BENCHMARKS if name in args.names] if args.names else [*BENCHMARKS]
    results = _previous()
    missing = [name for name in BENCHMARKS if name not in results and name not in chosen]
    if missing:
        parser.error(f"no earlier figures for {', '.join(missing)}: run them too")
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    compared = [name for name in chosen if name in COMPARED]
    before = _run_before(args.before, compared, args.quick) if args.before and compared else {}
    machine, loop = _machine(), _loop_seconds()
    for name in chosen:
        results[name] = {
            **_run(name, args.quick),
            "commit": commit,
            "machine": machine,
            "loop_s": loop,
        }
        if name in before:
            results[name]["before"] = before[name]
        print(name, results[name], flush=True)
    how = f"`python -m bench {' '.join(chosen)}`" if args.names else "`make bench`"
    lines = [
        "# Benchmark results",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on commit `{commit}` with {how}"
        + (" (`--quick`)" if args.quick else "")
        + ("; the other rows are from earlier runs" if args.names else "")
        + ". Each row names the commit it ran on.",
        "",
        "Servers, load and PostgreSQL share one machine; the machines the rows ran on (shared",
        "machines vary from day to day, and a row is read against the speed of its own):",
        "",
        *_machines(results),
        "",
        "Every figure is a median (p50) unless it says p99; each benchmark runs its own",
        "baseline in the same run: the hand-written endpoint (turns), the fake model called",
        "directly and a minimal relay (streaming), the same conversation in a small database",
        "(history), in alternating rounds where they share the machine.",
        "The load comes from bare HTTP/1.1 keep-alive connections (bench/common.py), so that the",
        "client's own CPU takes as little as it can from the server it measures.",
        "",
        "| benchmark | figures | target | | commit |",
        "| --- | --- | --- | --- | --- |",
        _row(
            "1. Turn throughput, one worker",
            results["turns"],
            [
                "service_turns_per_s",
                "baseline_turns_per_s",
                "ratio",
                "service_cpu_ms_per_turn",
                "baseline_cpu_ms_per_turn",
            ],
        ),
        _row(
            "2. Streaming",
            results["streaming"],
            [
                "streams",
                "added_ttft_p50_ms",
                "added_ttft_p99_ms",
                "added_gap_p99_ms",
                "memory_per_stream_kib",
                "worker_cpu_us_per_event",
                "worker_cpu_us_per_token",
                "cpu_ratio_per_event",
                "cpu_ratio_per_token",
                "most_streams_within_target",
                "baseline_most_streams_within_target",
            ],
        ),
        _row(
            "3. History page of 50",
            results["history"],
            ["p50_ms_10k", "p50_ms_1m", "p99_ms_1m", "ratio"],
        ),
        _row(
            "4. Dashboard search, 100,000 conversations",
            results["search"],
            ["p50_ms_common_word", "p50_ms_rare_word", "p50_ms_no_match", "p99_ms_worst"],
        ),
        _row("5. Statistics, 100,000 conversations", results["stats"], ["p50_ms", "p99_ms"]),
        _row(
            "6. Transcript page, a conversation of 10,000 messages",
            results["transcript"],
            [
                "p50_ms_first_page",
                "p99_ms_first_page",
                "p50_ms_middle_page",
                "p99_ms_middle_page",
            ],
        ),
        _row(
            "7. Catalog import by bulk operation, 100,000 products",
            results["catalog"],
            [
                "products",
                "jsonl_mib",
                "seconds",
                "products_per_s",
                "peak_rss_mib",
                "rss_growth_mib",
            ],
        ),
        _row(
            "8. Catalog search (search_products called directly)",
            results["catalog_search"],
            [
                "p50_ms_10k",
                "p50_ms_100k",
                "p99_ms_100k",
                "p50_ms_1k_of_100_shops",
                "index_rows_of_100_shops",
                "sweaters_in_all_shops",
            ],
        ),
        _row(
            "9. Turn throughput, every turn searching 10,000 products",
            results["catalog_turns"],
            [
                "service_turns_per_s",
                "baseline_turns_per_s",
                "ratio",
                "service_cpu_ms_per_turn",
                "baseline_cpu_ms_per_turn",
            ],
        ),
        _row(
            "10. The way to PostgreSQL, CPU per statement and checkout (µs)",
            results["db_path"],
            [
                "sqlalchemy_us_per_statement",
                "hot_path_us_per_statement",
                "plain_asyncpg_us_per_statement",
                "ratio_to_sqlalchemy",
                "ratio_to_plain",
                "sqlalchemy_pool_us_per_checkout",
                "held_us_per_checkout",
                "asyncpg_pool_us_per_checkout",
            ],
        ),
        _row(
            "11. The bus on PostgreSQL, publish to delivery between two workers, "
            "1,000 subscriptions",
            results["bus"],
            [
                "notices",
                "p50_ms",
                "p99_ms",
                "max_ms",
                "resyncs",
                "publish_cpu_us_pooled",
                "publish_cpu_us_dedicated",
                "publish_wall_us_pooled",
                "publish_wall_us_dedicated",
            ],
        ),
        _row(
            "12. Live conversations on PostgreSQL, two workers: a team reply on A to a "
            "stream on B among 1,000, idle streams, heartbeats",
            results["live"],
            [
                "fanout_p50_ms",
                "fanout_p99_ms",
                "fanout_max_ms",
                "missed",
                "idle_kib_per_stream",
                "heartbeat_cpu_us",
                "heartbeats_per_s",
                "core_share_at_5000_shoppers",
            ],
        ),
        "",
        *_before_and_after(results),
        "## Streaming, level by level",
        "",
        "Each level opens its streams 4 ms apart; the minimal relay (bench/relay_baseline.py: no",
        "signature, no database, the model's lines relayed as they come) takes the same load",
        "in the same run, as the floor of what one Python worker of this machine can relay.",
        "",
        "| streams | added TTFT p50 / p99 (ms) | added gap p99 (ms) | CPU per event / token (µs) "
        "| minimal relay: added TTFT p50 / p99, gap p99, CPU per event / token "
        "| CPU ratio to the relay, per event / token | within target |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *_stream_rows(results["streaming"]),
        "",
        _stream_capacity(results["streaming"]),
        "",
        "## Raw figures",
        "",
        "```json",
        json.dumps(results, indent=2, default=str, ensure_ascii=False),
        "```",
        "",
    ]
    RESULTS.write_text("\n".join(lines))
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
