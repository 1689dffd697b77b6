"""The benchmark result as Markdown: the machine, the latency table with speed-ups, and the accuracy table."""

from __future__ import annotations


def _ms(value) -> str:
    return "n/a" if value is None else (f"{value:.1f}" if value >= 10 else f"{value:.2f}")


def _mb(value) -> str:
    return "n/a" if value is None else f"{value:.0f}"


def machine_lines(result: dict) -> list[str]:
    machine, load = result["machine"], result["load_average"]
    libraries = ", ".join(f"{name} {version}" for name, version in machine["libraries"].items())
    settings = result["settings"]
    return [
        f"- CPU: {machine['cpu']} ({machine['cores']} usable cores; {' '.join(machine['cpu_features']) or 'no'}"
        f" SIMD features of note); GPU: {machine['gpu'] or 'none'}; {machine['os']}",
        f"- Libraries: {libraries}",
        gemm_line(machine),
        f"- Model: {result['model']['description']}",
        f"- Load average (1, 5, 15 min) before: {load['before']}, after: {load['after']}",
        f"- {settings['iters']} timed iterations per row after {settings['warmup']} warm-up, in "
        f"{settings['rounds']} interleaved rounds; medians (p50) and percentiles in milliseconds; speed-up = "
        f"{result['baseline']}'s inference p50 / the row's (in brackets: the same with minima); host MB: resident-memory growth while loading "
        "(negative when the allocator returned memory) / the process's peak during one extra untimed iteration"
        " per batch size (memory is sampled outside the timed rounds)",
        idle_line(result["results"]),
    ]


def gemm_line(machine: dict) -> str:
    from .gemm import K, M, N

    rates = machine.get("gemm_gflops_fp32") or {}
    measured = ", ".join(f"{engine} {rate:.0f}" for engine, rate in rates.items()) or "not measured"
    return f"- float32 matrix product ({M}x{K} @ {K}x{N}, best of 10) GFLOP/s: {measured}"


def idle_line(rows: list[dict]) -> str:
    waits = {row["variant"]: row["idle_wait_s"] for row in rows if row.get("idle_wait_s")}  # one per variant
    if not waits:
        return "- (no record of waiting for idle threads before the timed blocks)"
    busy = sum(wait["busy_starts"] for wait in waits.values())
    text = ("- Before each timed block the runner waited until no engine's threads were running (longest wait "
            f"{max(wait['max'] for wait in waits.values()):.2f} s)")
    return text + (f"; {busy} blocks started with threads still busy after 1 s" if busy else "")


LATENCY_HEADER = ("| variant | batch | infer p50 | p90 | p99 | min | preprocess p50 | postprocess p50 | faces/s "
                  "| frame p50 | speed-up p50 (min) | speed-up frame | host MB load / peak RSS | GPU MB |")


def latency_table(result: dict) -> list[str]:
    lines = [LATENCY_HEADER, "|" + "---|" * LATENCY_HEADER.count(" | ") + "---|"]
    for row in result["results"]:
        latency, memory = row["latency_ms"], row["host_memory_mb"]
        frame = row["frame_ms"]["p50"] if row["frame_ms"] else None
        frame_speedup = "n/a" if row["frame_speedup_vs_baseline"] is None else f"{row['frame_speedup_vs_baseline']:.2f}x"
        lines.append(
            f"| {row['variant']} | {row['batch']} | {_ms(latency['infer']['p50'])} | {_ms(latency['infer']['p90'])} "
            f"| {_ms(latency['infer']['p99'])} | {_ms(latency['infer']['min'])} | {_ms(latency['preprocess']['p50'])} "
            f"| {_ms(latency['postprocess']['p50'])} | {row['throughput_faces_per_s']:.1f} | {_ms(frame)} "
            f"| {row['speedup_vs_baseline']:.2f}x ({row['speedup_vs_baseline_min']:.2f}x) | {frame_speedup} "
            f"| {_mb(memory['load'])} / {_mb(memory['peak_rss'])} "
            f"| {_mb(row['gpu_memory_mb'])} |")
    return lines


def accuracy_table(result: dict) -> list[str]:
    if not result["accuracy"]:
        return ["(no real face crops available: install matplotlib and scikit-image for the accuracy check)"]
    lines = ["| variant | crops | max abs delta logit | max abs delta P(fake) | mean abs delta P(fake) |",
             "|---|---|---|---|---|"]
    for row in result["accuracy"]:
        lines.append(f"| {row['variant']} | {row['crops']} | {row['max_abs_logit_diff']:.2e} "
                     f"| {row['max_abs_fake_prob_diff']:.4f} | {row['mean_abs_fake_prob_diff']:.4f} |")
    return lines


def markdown(result: dict) -> str:
    lines = machine_lines(result) + ["", *latency_table(result), "",
                                     f"Outputs against {result['baseline']} on face crops (real photos, photometric "
                                     "variants, self-blended fakes):", "",
                                     *accuracy_table(result)]
    if result["skipped"]:
        lines += ["", "Not run:"] + [f"- {s['variant']}: {s['reason']}" for s in result["skipped"]]
    lines += ["", "Variants:"] + [f"- {name}: {summary}" for name, summary in result["variants"].items()]
    return "\n".join(lines)
