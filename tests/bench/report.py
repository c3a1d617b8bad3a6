"""The table ``make bench`` prints, and the headline figures of latest.json.

``python -m tests.bench.report`` prints the table of the last run again.
"""

from __future__ import annotations

import json
import math
from typing import Any

from tests.bench.harness import RESULTS


def headline(scenarios: dict[str, Any]) -> dict[str, Any]:
    """The figures the targets are about, each a median over the runs."""
    figures: dict[str, Any] = {}
    if "throughput" in scenarios:
        t = scenarios["throughput"]
        figures["throughput_per_s"] = t["1_daemons"]["per_s"]["median"]
        figures["throughput_2_daemons_per_s"] = t["2_daemons"]["per_s"]["median"]
    if "peers" in scenarios:
        peers = [
            v
            for v in scenarios["peers"].values()
            if isinstance(v, dict) and "handler" in v
        ]
        figures["best_peer_webhook_per_s"] = max(
            p["per_s"]["median"] for p in peers if p["handler"] != "noop"
        )
        figures["best_peer_noop_per_s"] = max(
            p["per_s"]["median"] for p in peers if p["handler"] == "noop"
        )
        if "throughput_per_s" in figures:
            figures["throughput_vs_best_peer_webhook"] = (
                figures["throughput_per_s"] / figures["best_peer_webhook_per_s"]
            )
            figures["throughput_2_daemons_vs_best_peer_noop"] = (
                figures["throughput_2_daemons_per_s"] / figures["best_peer_noop_per_s"]
            )
    if "punctuality" in scenarios:
        p = scenarios["punctuality"]
        figures["lag_p99_ms"] = max(
            p["trigger_to_leave_ms"]["p99"]["median"],
            p["due_to_leave_ms"]["p99"]["median"],
        )
    if "capacity" in scenarios:
        c = scenarios["capacity"]
        top = max((k for k in c if k.isdigit()), key=int)
        figures[f"capacity_{top}_late"] = c[top]["late"]["median"]
        figures[f"capacity_{top}_lag_p99_ms"] = c[top]["lag_p99_ms"]["median"]
    if "scale" in scenarios:
        figures["scale_ratio"] = max(scenarios["scale"]["ratios"].values())
    if "slow_targets" in scenarios:
        s = scenarios["slow_targets"]
        figures["slow_targets_rss_mb"] = s["rss_mb"]["median"]
        figures["fast_host_lag_p99_ms"] = s["fast_lag_p99_ms"]["median"]
    if "fanout" in scenarios:
        f = scenarios["fanout"]
        figures[f"fanout_{f['subscribers']}_ms"] = f["last_subscriber_p50_ms"]["median"]
        figures[f"fanout_{f['subscribers']}_max_ms"] = f["last_subscriber_max_ms"][
            "median"
        ]
    return figures


def table(results: dict[str, Any]) -> str:
    """One table: what was measured, median and spread over the runs."""
    machine, versions = results["machine"], results["versions"]
    lines = [
        f"Machine: {machine['cpus']} CPUs, {machine['ram_gib']} GiB RAM, "
        f"{machine['platform']}",
        f"Versions: Python {versions['python']}, PostgreSQL {versions['postgresql']},"
        f" Tickwork {versions['tickwork']}",
        f"Settings: {results['settings']}",
        f"Runs per scenario: {results['reps']}"
        + (" (--quick: not comparable with a full run)" if results["quick"] else "")
        + f"; load average before {_load(results['load_before'])}, "
        f"after {_load(results.get('load_after', []))}; "
        f"took {results.get('seconds', 0) / 60:.1f} min",
        "",
        f"| {'scenario':<13} | {'measure':<60} | {'median':>9} | "
        f"{'spread (min-max)':>19} | {'load':>4} |",
        f"|{'-' * 15}|{'-' * 62}|{'-' * 10}:|{'-' * 20}:|{'-' * 5}:|",
    ]
    for scenario, measure, figure in _rows(results["scenarios"]):
        load = results["scenarios"][scenario]["load"][0]
        lines.append(
            f"| {scenario:<13} | {measure:<60} | {_num(figure['median']):>9} | "
            f"{_num(figure['min']) + '-' + _num(figure['max']):>19} | {load:>4.1f} |"
        )
    lines.append("")
    for name, error in results.get("failed", {}).items():
        lines.append(f"FAILED {name}: {error}")
    for name, value in results.items():
        if name.endswith(("_per_s", "_ms", "_mb", "_late", "_ratio")) or "_vs_" in name:
            lines.append(f"{name}: {_num(value)}")
    return "\n".join(lines)


def _rows(scenarios: dict[str, Any]):
    if "throughput" in scenarios:
        t = scenarios["throughput"]
        for daemons in (1, 2):
            d = t[f"{daemons}_daemons"]
            label = f"{t['runs']:,} due webhooks, {daemons} daemon(s)"
            yield "throughput", f"{label}: executions/s", d["per_s"]
            if d["statements_per_execution"]["runs"]:
                yield (
                    "throughput",
                    f"{label}: statements/execution",
                    d["statements_per_execution"],
                )
            yield (
                "throughput",
                f"{label}: transactions/execution",
                d["transactions_per_execution"],
            )
            if "daemon_cpu_ms_per_execution" in d:
                yield (
                    "throughput",
                    f"{label}: daemon CPU ms/execution",
                    d["daemon_cpu_ms_per_execution"],
                )
                yield (
                    "throughput",
                    f"{label}: PostgreSQL CPU ms/execution",
                    d["postgres_cpu_ms_per_execution"],
                )
    if "punctuality" in scenarios:
        p = scenarios["punctuality"]
        for key, label in (
            ("trigger_to_leave_ms", "triggerJob commit to sink, ms"),
            ("due_to_leave_ms", "interval job due to sink, ms"),
        ):
            for quantile in ("p50", "p95", "p99", "max"):
                yield "punctuality", f"{label} {quantile}", p[key][quantile]
    if "capacity" in scenarios:
        c = scenarios["capacity"]
        for level in (k for k in c if k.isdigit()):
            label = f"{int(level):,} jobs every 1 s"
            if c.get("daemons", 1) > 1:
                label += f", {c['daemons']} daemons"
            yield "capacity", f"{label}: fires/s", c[level]["fires_per_s"]
            yield "capacity", f"{label}: fires > 1 s late", c[level]["late"]
            yield "capacity", f"{label}: lag p99 ms", c[level]["lag_p99_ms"]
    if "scale" in scenarios:
        s = scenarios["scale"]
        for jobs in ("1000", str(s["large_jobs"])):
            label = f"{int(jobs):,} jobs, {s[jobs]['executions']:,} executions"
            for query in ("claim", "jobs_page", "executions_page"):
                yield "scale", f"{label}: {query} p95 ms", s[jobs][f"{query}_p95_ms"]
    if "slow_targets" in scenarios:
        s = scenarios["slow_targets"]
        label = f"{s['slow_runs']:,} runs on 5 s hosts"
        yield "slow_targets", f"{label}: most in flight", s["max_in_flight"]
        yield "slow_targets", f"{label}: daemon RSS MB, idle", s["rss_before_mb"]
        yield "slow_targets", f"{label}: daemon RSS MB, peak", s["rss_mb"]
        yield "slow_targets", f"{label}: fast host lag p50 ms", s["fast_lag_p50_ms"]
        yield "slow_targets", f"{label}: fast host lag p99 ms", s["fast_lag_p99_ms"]
        if "fast_undelivered" in s:
            yield (
                "slow_targets",
                f"{label}: fast fire times not delivered",
                s["fast_undelivered"],
            )
    if "fanout" in scenarios:
        f = scenarios["fanout"]
        label = f"{f['subscribers']:,} subscribers: change to last receipt"
        yield "fanout", f"{label}, p50 ms", f["last_subscriber_p50_ms"]
        yield "fanout", f"{label}, max ms", f["last_subscriber_max_ms"]
    if "peers" in scenarios:
        for name, p in scenarios["peers"].items():
            if isinstance(p, dict) and "handler" in p:
                label = f"{name} ({p['jobs']:,} jobs)"
                yield "peers", f"{label}: jobs/s", p["per_s"]
                if "worker_cpu_ms_per_job" in p:
                    yield "peers", f"{label}: CPU ms/job", p["worker_cpu_ms_per_job"]


def _num(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _load(load: list[float]) -> str:
    return "/".join(f"{v:.1f}" for v in load)


if __name__ == "__main__":
    print(table(json.loads((RESULTS / "latest.json").read_text())))
