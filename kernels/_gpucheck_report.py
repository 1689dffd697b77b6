"""`kernels.gpucheck`'s report: the goals judged from the timings, a Markdown rendering, and the file names."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from fmca_rt.atomic import write_atomically

# (description, how to measure it from the timing rows, target)
GOALS = (
    ("attention fp16 B=64: fused kernel vs the fastest 2 x SDPA (launched)", "speedup", "fp16 B=64", "launch", 1.5),
    ("attention fp16 B=64: share of the memory roofline (launched)", "memory", "fp16 B=64", "launch", 0.6),
    ("attention fp16 B=1: fused kernel vs the fastest 2 x SDPA (CUDA graph)", "speedup", "fp16 B=1", "graph", 1.5),
    ("DWT fp16 B=64: bandwidth as a share of a copy of the same bytes", "copy", "fp16 B=64", "launch", 0.8),
    ("DWT fp32 B=64: bandwidth as a share of a copy of the same bytes", "copy", "fp32 B=64", "launch", 0.8),
)


def _rows(rows: list[dict], op: str, case_prefix: str) -> dict:
    return {r["impl"]: r for r in rows if r["op"] == op and r["case"].startswith(case_prefix + " ")
            and "unsupported" not in r}


def goal_rows(timings: list[dict]) -> list[dict]:
    """Each goal with its measured value (None when the timings needed are missing) and whether it is met."""
    verdicts = []
    for goal, kind, case, mode, target in GOALS:
        seconds = f"{mode}_s"
        value = None
        if kind in ("speedup", "memory"):
            rows = _rows(timings, "sfcm_attention", case)
            ours = rows.get("triton (jit tiles)", {})
            sdpa = [r[seconds] for impl, r in rows.items() if impl.startswith("2 x sdpa") and seconds in r]
            if kind == "speedup" and seconds in ours and sdpa:
                value = min(sdpa) / ours[seconds]
            elif kind == "memory" and mode in ours:
                value = ours[mode]["of_memory"]
        else:
            rows = _rows(timings, "haar_dwt", case)
            if seconds in rows.get("triton kernel", {}) and seconds in rows.get("copy of the same bytes", {}):
                value = rows["copy of the same bytes"][seconds] / rows["triton kernel"][seconds]
        verdicts.append({"goal": goal, "target": target, "measured": value,
                         "met": None if value is None else value >= target})
    return verdicts


def file_stem(gpu_name: str) -> str:
    """'NVIDIA H200' -> 'gpucheck-nvidia-h200'."""
    return "gpucheck-" + (re.sub(r"[^a-z0-9]+", "-", gpu_name.lower()).strip("-") or "gpu")


def _number(value, digits=3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}g}"


def _share(value) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def markdown(report: dict) -> str:
    gpu, versions = report["gpu"], report["versions"]
    lines = [f"# Kernel check on {gpu['name']}", "",
             f"sm_{gpu['arch']}, {gpu['sm_count']} SMs, driver {gpu.get('driver', 'unknown')}; " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".",
             f"Command: `{report['command']}`; {report['elapsed_s']:.0f} s; "
             + ("every section ok." if report["complete"] else "NOT every section ok (see each status)."), ""]
    for name, section in report["sections"].items():
        lines += [f"## {name}", "", f"Status: {section['status']}", ""]
        rows = section.get("rows", [])
        if rows and "ok" in rows[0]:
            failed = [r for r in rows if not r["ok"]]
            lines += [f"{len(rows) - len(failed)} of {len(rows)} comparisons within tolerance.", ""]
            lines += ["| check | case | max error | tolerance | ok |", "|---|---|---|---|---|"]
            lines += [f"| {r['check']} | {r['case']} | {_number(r['max_error'])} | {r['tolerance']:g} | "
                      f"{'yes' if r['ok'] else 'NO'} |" for r in (failed or rows)]
        elif rows:
            lines += ["| op | case | implementation | launched | of memory | of roofline | CUDA graph | of roofline |",
                      "|---|---|---|---|---|---|---|---|"]
            for r in rows:
                if "unsupported" in r:
                    lines.append(f"| {r['op']} | {r['case']} | {r['impl']} | unsupported: {r['unsupported']} |||||")
                    continue
                launch, graph = r["launch"], r.get("graph")
                lines.append(f"| {r['op']} | {r['case']} | {r['impl']} | {r['launch_s'] * 1e6:.1f} us | "
                             f"{_share(launch['of_memory'])} | {_share(launch['of_roofline'])} | "
                             + (f"{r['graph_s'] * 1e6:.1f} us | {_share(graph['of_roofline'])} |" if graph else "- | - |"))
        for key, value in section.items():
            if key not in ("rows", "status"):
                lines.append(f"- {key}: {value}")
        lines.append("")
    lines += ["## Goals", "", "| goal | target | measured | met |", "|---|---|---|---|"]
    lines += [f"| {g['goal']} | {g['target']:g} | {_number(g['measured'])} | "
              f"{'-' if g['met'] is None else ('yes' if g['met'] else 'no')} |" for g in report["goals"]]
    return "\n".join(lines) + "\n"


def write(report: dict, out_dir: Path) -> tuple[Path, Path]:
    """JSON and Markdown beside each other, each replaced atomically (a run that stops keeps the last one)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / file_stem(report["gpu"]["name"])
    json_path, markdown_path = stem.with_suffix(".json"), stem.with_suffix(".md")
    write_atomically(json_path, json.dumps(report, indent=2, default=str) + "\n")
    write_atomically(markdown_path, markdown(report))
    return json_path, markdown_path
