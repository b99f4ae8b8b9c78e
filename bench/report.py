"""
Turning ``latest.json`` into the published numbers: the markdown table
(``results/latest.md``), the plots (``results/*.png``) and
``docs/benchmarks.md``.

``python bench/report.py`` redraws everything from ``results/latest.json``
without measuring again.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent

#: The targets of issue 4, as (description, check) on the summary.
RAW, DJBLETS = "raw", "djblets-gthread"
SSE_ROWS = ("sse-async-asgi", "sse-sync-asgi", "sse-sync-gthread", "sse-async-gthread")


def machine() -> dict[str, Any]:
    """nproc, CPU model, memory and kernel of this machine."""
    model = "unknown"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as meminfo:
        mem_kb = int(meminfo.readline().split()[1])
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "memory_gib": round(mem_kb / 1024**2, 1),
        "kernel": platform.release(),
        "load_avg_at_start": os.getloadavg(),
    }


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summarize(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """One flat dict of figures per row."""
    summary: dict[str, dict[str, Any]] = {}
    for key, row in results["rows"].items():
        out: dict[str, Any] = {"label": row["label"]}
        runs = row.get("throughput", [])
        good = [r for r in runs if r.get("rate") and not r.get("error")]
        if good:
            rates = [r["rate"] for r in good]
            out["eps"] = statistics.median(rates)
            out["eps_min"], out["eps_max"] = min(rates), max(rates)
            events = sum(r["events"] for r in good)
            out["cpu_us"] = sum(r["server_cpu_s"] for r in good) / events * 1e6
            out["client_busy"] = max(r.get("client_busy", 0) for r in good)
            if any("lost" in r for r in good):
                out["lost_pct"] = statistics.mean(
                    r["lost"] / r["expected"] * 100 for r in good
                )
        out["throughput_errors"] = sorted(
            {str(r["error"]) for r in runs if r.get("error")}
        )
        for figure in ("ttfe", "cleanup"):
            data = row.get(figure, {})
            if data.get("skip"):
                out[f"{figure}_skip"] = data["skip"]
            elif data.get("ms"):
                out[f"{figure}_ms"] = statistics.median(data["ms"])
                out[f"{figure}_p90"] = _percentile(data["ms"], 0.9)
                out[f"{figure}_max"] = max(data["ms"])
            if data.get("errors"):
                out[f"{figure}_errors"] = data["errors"]
        rss = row.get("rss", {})
        if rss.get("skip"):
            out["rss_skip"] = rss["skip"]
        for count, held in rss.items():
            if isinstance(held, dict):
                if held.get("skip"):
                    out[f"rss_{count}_skip"] = held["skip"]
                out[f"rss_{count}"] = held.get("kb_per_stream")
                out[f"rss_{count}_errors"] = held.get("errors")
        summary[key] = out
    for out in summary.values():
        if "eps" in out and "eps" in summary.get(RAW, {}):
            out["x_raw"] = out["eps"] / summary[RAW]["eps"]
        if "eps" in out and "eps" in summary.get(DJBLETS, {}):
            out["x_djblets"] = out["eps"] / summary[DJBLETS]["eps"]
    return summary


def targets(summary: dict[str, dict[str, Any]]) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met) for each target of issue 4; None: not measured."""

    def get(key: str, figure: str) -> Any:
        return summary.get(key, {}).get(figure)

    out: list[tuple[str, str, bool | None]] = []
    for key, figure, limit, text in (
        ("sse-async-asgi", "x_raw", 1.0, "async source, ASGI: >= 1.0x raw app"),
        ("sse-sync-asgi", "x_raw", 0.7, "sync source, ASGI: >= 0.7x raw app"),
        ("sse-sync-gthread", "x_djblets", 1.5, "sync source, gthread: >= 1.5x djblets"),
    ):
        value = get(key, figure)
        out.append(
            (
                text,
                "-" if value is None else f"{value:.2f}x",
                None if value is None else value >= limit,
            )
        )
    for key in SSE_ROWS:
        value = get(key, "ttfe_ms")
        out.append(
            (
                f"time to first event <= 5 ms: {key}",
                "-" if value is None else f"{value:.2f} ms (median)",
                None if value is None else value <= 5.0,
            )
        )
    value = get("sse-async-asgi", "rss_10000")
    errors = get("sse-async-asgi", "rss_10000_errors")
    out.append(
        (
            "<= 30 KB RSS per stream at 10,000 streams, 0 errors",
            "-" if value is None else f"{value:.1f} KB, {errors} errors",
            None if value is None else value <= 30 and errors == 0,
        )
    )
    return out


def _loads(loads: list[float]) -> str:
    return ", ".join(f"{x:.2f}" for x in loads)


def _fmt(value: float | None, spec: str = ".0f", suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def table(results: dict[str, Any]) -> str:
    """The markdown of ``results/latest.md``."""
    summary = summarize(results)
    lines = [
        "| row | events/s, median (min-max) | x raw | x djblets gthread "
        "| first event, ms median (p90) | server CPU us/event "
        "| RSS KB/stream @1k | @10k | cleanup ms, median (max) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    notes: list[str] = []
    for key, s in summary.items():
        eps = "-"
        if "eps" in s:
            eps = f"{s['eps']:,.0f} ({s['eps_min']:,.0f}-{s['eps_max']:,.0f})"
            if "lost_pct" in s:
                eps += f", {s['lost_pct']:.0f}% lost"
        elif s["throughput_errors"]:
            eps = "not measured: " + "; ".join(s["throughput_errors"])[:80]
        ttfe = (
            f"{s['ttfe_ms']:.2f} ({s['ttfe_p90']:.2f})"
            if "ttfe_ms" in s
            else "n/a" + (f"[^{key}]" if "ttfe_skip" in s else "")
        )
        cleanup = (
            f"{s['cleanup_ms']:.1f} ({s['cleanup_max']:.1f})"
            if "cleanup_ms" in s
            else "n/a" + (f"[^{key}]" if "cleanup_skip" in s else "")
        )
        for figure in ("ttfe", "cleanup"):
            if s.get(f"{figure}_errors"):
                cell = f" ({s[f'{figure}_errors']} errors)"
                if figure == "ttfe":
                    ttfe += cell
                else:
                    cleanup += cell
        rss = []
        for count in ("1000", "10000"):
            value = s.get(f"rss_{count}")
            cell = _fmt(value, ".1f")
            if s.get(f"rss_{count}_skip") or (value is None and s.get("rss_skip")):
                cell = f"n/a[^{key}]"
            if s.get(f"rss_{count}_errors"):
                cell += f" ({s[f'rss_{count}_errors']} errors)"
            rss.append(cell)
        reasons = {
            s.get(f"{f}_skip")
            for f in ("ttfe", "cleanup", "rss", "rss_1000", "rss_10000")
        } - {None}
        if reasons:
            notes.append(f"[^{key}]: {key}: " + "; ".join(sorted(reasons)) + ".")
        lines.append(
            f"| {s['label']} | {eps} | {_fmt(s.get('x_raw'), '.2f')} "
            f"| {_fmt(s.get('x_djblets'), '.2f')} | {ttfe} "
            f"| {_fmt(s.get('cpu_us'), '.1f')} "
            f"| {rss[0]} | {rss[1]} | {cleanup} |"
        )
    notes.append(
        "RSS is measured for the rows served by one uvicorn worker only ('-' "
        "elsewhere): a gthread worker holds one stream per thread (32 here)."
    )
    lines += [
        "",
        *notes,
        "",
        "Encoding alone, ns per event (median of 7 x 20,000):",
        "",
    ]
    encoders = results.get("encoders", {})
    shapes = sorted(
        {
            shape
            for v in encoders.values()
            if isinstance(v, dict)
            for shape in v
            if shape != "error"
        }
    )
    lines.append("| encoder | " + " | ".join(shapes) + " |")
    lines.append("|---|" + "---|" * len(shapes))
    for name, per_shape in encoders.items():
        cells = [_fmt(per_shape.get(shape), ",.0f") for shape in shapes]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Targets:", "", "| target | measured | met |", "|---|---|---|"]
    for text, measured, met in targets(summary):
        verdict = "not measured" if met is None else ("yes" if met else "**no**")
        lines.append(f"| {text} | {measured} | {verdict} |")
    return "\n".join(lines) + "\n"


def plots(results: dict[str, Any], out: Path) -> list[str]:
    """Draw the PNGs; return their file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = summarize(results)
    keys = list(summary)
    names: list[str] = []

    def bars(
        name: str,
        title: str,
        unit: str,
        values: dict[str, float | None],
        low: dict[str, float] | None = None,
        high: dict[str, float] | None = None,
        limit: float | None = None,
    ) -> None:
        shown = [k for k in keys if values.get(k) is not None]
        if not shown:
            return
        fig, ax = plt.subplots(figsize=(8, 0.45 * len(shown) + 1.2))
        heights = [values[k] for k in shown]
        xerr = None
        if low and high:
            xerr = [
                [values[k] - low[k] for k in shown],
                [high[k] - values[k] for k in shown],
            ]
        colors = [
            "tab:green"
            if k.startswith("sse-") and k != "sse-starlette"
            else "tab:gray"
            if k == RAW
            else "tab:blue"
            for k in shown
        ]
        ax.barh(shown, heights, xerr=xerr, color=colors, capsize=3)
        ax.invert_yaxis()
        if limit is not None:
            ax.axvline(limit, color="tab:red", linestyle="--", linewidth=1)
        ax.set_xlabel(unit)
        ax.set_title(title)
        fig.tight_layout()
        fig.savefig(out / name, dpi=100)
        plt.close(fig)
        names.append(name)

    def col(figure: str) -> dict[str, Any]:
        return {k: summary[k].get(figure) for k in keys}

    bars(
        "events_per_second.png",
        "Events per second, one client (median, min-max)",
        "events/s",
        col("eps"),
        col("eps_min"),
        col("eps_max"),
    )
    bars(
        "time_to_first_event.png",
        "Time to first event (median; target 5 ms)",
        "ms",
        col("ttfe_ms"),
        limit=5.0,
    )
    bars("cpu_per_event.png", "Server CPU per event", "microseconds", col("cpu_us"))
    for count in ("1000", "10000"):
        bars(
            f"rss_per_stream_{count}.png",
            f"RSS per open stream, {int(count):,} streams, one uvicorn worker",
            "KB",
            col(f"rss_{count}"),
            limit=30.0 if count == "10000" else None,
        )
    bars(
        "cleanup_latency.png",
        "Disconnect to source cleanup (median)",
        "ms",
        col("cleanup_ms"),
    )
    encoders = {
        name: v.get("one-line data") for name, v in results.get("encoders", {}).items()
    }
    if any(encoders.values()):
        keys_backup = keys
        keys = list(encoders)
        bars(
            "encoder_cost.png",
            "Encoding alone, one-line data",
            "ns per event",
            encoders,
        )
        keys = keys_backup
    return names


def docs(results: dict[str, Any], table_md: str, images: list[str]) -> str:
    """The text of ``docs/benchmarks.md``."""
    m = results["machine"]
    v_main, v_dj = results["versions"]["main"], results["versions"]["djblets"]
    cfg = results["config"]

    def ver(versions: dict[str, str], name: str) -> str:
        for key, value in versions.items():
            if key.lower().replace("_", "-") == name:
                return value
        return "?"

    lines = [
        "# Benchmarks",
        "",
        "How sse_response compares with a raw ASGI app, plain Django and its peers, "
        "measured by `make bench` (see [bench/README.md](../bench/README.md) for what "
        "each figure means and how it is measured). These are the numbers of the "
        f"latest committed run, {results['date']}, which took "
        f"{results['seconds']:.0f} s.",
        "",
        "## Machine and versions",
        "",
        f"- {m['nproc']} CPUs, {m['cpu']}, {m['memory_gib']} GiB, Linux {m['kernel']}; "
        f"load average at start {_loads(m['load_avg_at_start'])} "
        "(the machine is shared, so expect noise: look at the spreads)",
        f"- main venv: Python {v_main['python']}, Django {ver(v_main, 'django')}, "
        f"sse_response {ver(v_main, 'sse-response')}, uvicorn {ver(v_main, 'uvicorn')} "
        f"(uvloop {ver(v_main, 'uvloop')}, httptools {ver(v_main, 'httptools')}), "
        f"gunicorn {ver(v_main, 'gunicorn')}, "
        f"sse-starlette {ver(v_main, 'sse-starlette')}, "
        f"starlette {ver(v_main, 'starlette')}, django-eventstream "
        f"{ver(v_main, 'django-eventstream')}",
        f"- djblets venv: Python {v_dj['python']}, djblets {ver(v_dj, 'djblets')}, "
        f"Django {ver(v_dj, 'django')} (djblets 6 requires Django 4.2), uvicorn "
        f"{ver(v_dj, 'uvicorn')}, gunicorn {ver(v_dj, 'gunicorn')}",
        f"- {cfg['rounds']} interleaved rounds of {cfg['events']:,} events per row; "
        f"{cfg['ttfe_samples']} first-event samples and {cfg['cleanup_samples']} "
        "cleanup samples per row; gunicorn runs 1 gthread worker with 32 threads; "
        "uvicorn runs 1 process",
        "",
        "## Results",
        "",
        table_md,
        "## Reading the results",
        "",
        *_reading(summarize(results)),
        "",
        "## Plots",
        "",
    ]
    for image in images:
        lines += [f"![{image[:-4].replace('_', ' ')}](../bench/results/{image})", ""]
    lines += [
        "## Reproduce",
        "",
        "```console",
        "make bench                    # a few minutes; creates bench/.venv-* once",
        "python3 bench/run.py --quick      # a short run while developing",
        "python3 bench/report.py           # redraw from bench/results/latest.json",
        "```",
        "",
    ]
    return "\n".join(lines)


def _reading(summary: dict[str, dict[str, Any]]) -> list[str]:
    """Sentences that put the figures in context, from the numbers."""

    def kb(key: str) -> float | None:
        return summary.get(key, {}).get("rss_10000")

    raw, plain, sse = kb(RAW), kb("plain"), kb("sse-async-asgi")
    lines: list[str] = []
    if raw is not None and plain is not None and sse is not None:
        lines.append(
            f"- Memory: at 10,000 open streams uvicorn itself (the raw app) uses "
            f"{raw:.1f} KB per stream, Django's ASGI handler with a plain "
            f"StreamingHttpResponse {plain:.1f} KB, and sse_response (async "
            f"source) {sse:.1f} KB: sse_response's own share is about "
            f"{sse - plain:.1f} KB per stream, the rest is Django's request "
            "handling, which no response class can shed."
        )
    lines.append(
        "- Throughput: sse_response coalesces the events that are ready into one "
        "chunk of up to 64 KiB, so it sends far fewer, larger chunks than one send "
        "per event; its cost is then mostly encoding the messages, where the raw "
        "app sends bytes encoded in advance."
    )
    lines.append(
        "- Cleanup: under ASGI the server hears of a disconnect at once; gunicorn "
        "only when a write fails (one or two 50 ms ticks later), and a sync "
        "source is only stopped at its next yield."
    )
    return lines


def write(results: dict[str, Any], out: Path, docs_path: Path) -> None:
    """Write latest.md, the plots, and docs/benchmarks.md."""
    table_md = table(results)
    (out / "latest.md").write_text(table_md)
    images = plots(results, out)
    docs_path.parent.mkdir(exist_ok=True)
    docs_path.write_text(docs(results, table_md, images))


if __name__ == "__main__":
    results_dir = BENCH / "results"
    data = json.loads((results_dir / "latest.json").read_text())
    write(data, results_dir, BENCH.parent / "docs" / "benchmarks.md")
    sys.stdout.write(table(data))
