"""The benchmark's verdicts against the issue's targets, and the tables printed at the end."""

from __future__ import annotations

from typing import Any

FULL_CLIENTS, FULL_RATE, STEP_CLIENTS = 2000, 10.0, 1000
SLOW_CLIENTS, SLOW_SECONDS, CHURN_CYCLES = 20, 60.0, 10_000
FILTERED_CLIENTS, FILTERED_RATE = 2000, 500.0


def _target(name: str, goal: str, measured: str, met: bool, full_size: bool) -> dict[str, Any]:
    return {"target": name, "goal": goal, "measured": measured, "met": met, "at_full_size": full_size}


def targets_evaluate(modes: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    kafka, groups = modes.get("kafka"), modes.get("groups")
    if kafka:
        full = kafka["clients"] >= FULL_CLIENTS and kafka["rate"] >= FULL_RATE
        rows.append(_target(
            f"{kafka['clients']} clients x {kafka['rate']:g} ev/s, full Kafka path",
            "all delivered, p99 <= 250 ms",
            f"{kafka['delivered']}/{kafka['expected']}, p99 {kafka['latency']['p99_ms']} ms",
            kafka["lost"] == 0 and kafka["duplicates"] == 0 and kafka["latency"]["p99_ms"] <= 250, full))
        rows.append(_target(
            "memory per idle connection", "<= 24 KB", f"{kafka['kb_per_idle_connection']} KB",
            kafka["kb_per_idle_connection"] <= 24, full))
    step = modes.get("step", {})
    if step.get("ratio_lossless") is not None:
        service, inproc = step["service"], step["inproc"]
        rows.append(_target(
            f"step mode, {service['clients']} clients, nothing lost (p99 not required): service / in-process",
            ">= 1.5x (secondary view)",
            f"{step['ratio_lossless']}x ({service['best_rate_lossless']:g} vs "
            f"{inproc['best_rate_lossless']:g} ev/s)",
            step["ratio_lossless"] >= 1.5, service["clients"] >= STEP_CLIENTS))
    if step.get("ratio") is not None or ("service" in step and "inproc" in step):
        service, inproc = step["service"], step["inproc"]
        rows.append(_target(
            f"step mode, {service['clients']} clients: service / in-process per-event-send",
            ">= 1.5x",
            f"{step.get('ratio')}x ({service['best_rate']:g} vs {inproc['best_rate']:g} ev/s)",
            (step.get("ratio") or 0) >= 1.5, service["clients"] >= STEP_CLIENTS))
    if kafka and groups:
        ratio = kafka["delivered_per_s"] / max(groups["delivered_per_s"], 1)
        rows.append(_target(
            f"delivered rate vs per-connection-group design, {groups['clients']} clients",
            ">= 10x",
            f"{ratio:.1f}x ({kafka['delivered_per_s']} vs {groups['delivered_per_s']} deliveries/s; "
            f"groups delivered {groups['delivered_fraction']:.0%})",
            ratio >= 10, groups["clients"] >= FULL_CLIENTS))
    if step.get("ratio_vs_groups") is not None:
        service, groups_step = step["service"], step["groups"]
        rows.append(_target(
            f"step mode, {service['clients']} clients: service / per-connection-group design",
            ">= 10x",
            f"{step['ratio_vs_groups']}x ({service['best_rate']:g} vs {groups_step['best_rate']:g} ev/s)",
            step["ratio_vs_groups"] >= 10, service["clients"] >= FULL_CLIENTS))
    elif step.get("groups") and step["groups"]["best_rate"] == 0:
        rows.append(_target(
            f"step mode, {step['groups']['clients']} clients: service / per-connection-group design",
            ">= 10x", f"groups passed no step (lowest tried {step['groups']['steps'][0]['rate']:g} ev/s)",
            step.get("service", {}).get("best_rate", 0) > 0, step["groups"]["clients"] >= FULL_CLIENTS))
    slow = modes.get("slow")
    if slow:
        rows.append(_target(
            f"{slow['stalled']} stalled clients for {slow['seconds']:g} s", "RSS growth <= 20 MiB",
            f"{slow['rss_growth_mib']} MiB", slow["rss_growth_mib"] <= 20,
            slow["stalled"] >= SLOW_CLIENTS and slow["seconds"] >= SLOW_SECONDS))
    churn = modes.get("churn")
    if churn:
        rows.append(_target(
            f"churn, {churn['cycles']} connect/disconnect cycles",
            "0 leaked subscribers, RSS growth <= 10 MiB",
            f"{churn['leaked_subscribers']} leaked, {churn['rss_growth_mib']} MiB",
            churn["leaked_subscribers"] == 0 and churn["rss_growth_mib"] <= 10,
            churn["cycles"] >= CHURN_CYCLES))
    rows.extend(_filtered_targets(modes.get("filtered")))
    return rows


def _filtered_targets(filtered: dict[str, Any] | None) -> list[dict[str, Any]]:
    if not filtered:
        return []
    rows = []
    full = filtered["clients"] >= FILTERED_CLIENTS and filtered["rate"] >= FILTERED_RATE
    baseline = filtered["windows"]["unfiltered"]
    for name in filtered["variants"]:
        m = filtered["windows"][name]
        audience = "one client per event" if not name.startswith("tenant") else \
            f"{m['clients'] // filtered['tenants']} clients per event (a tenant's" + \
            (", by their JWT grants)" if name == "tenant" else ", by their client filters)")
        rows.append(_target(
            f"filtered ({name}), {m['clients']} clients x {m['rate']:g} ev/s, {audience}",
            "each event to its clients only, p99 <= 250 ms",
            f"{m['delivered']}/{m['expected']}, {m['duplicates']} duplicates, {m['wrong_client']} to the "
            f"wrong client, p99 {m['latency']['p99_ms']} ms", m["passed"], full))
        rows.append(_target(
            f"filtered ({name}) Daphne CPU vs {baseline['clients']} unfiltered clients at the same rate",
            "<= 1x", f"{m['cpu_percent']['daphne']}% vs {baseline['cpu_percent']['daphne']}%",
            m["cpu_percent"]["daphne"] <= baseline["cpu_percent"]["daphne"], full))
    return rows


def filtered_table(filtered: dict[str, Any]) -> str:
    """The filtered mode's windows: the unfiltered baseline, then each filter variant."""
    rows = []
    for name, m in filtered["windows"].items():
        rows.append([
            name, m["clients"], f"{m['rate']:g}", f"{m['delivered']}/{m['expected']}", m["duplicates"],
            m["wrong_client"], m["latency"]["p50_ms"], m["latency"]["p99_ms"], m["latency"]["max_ms"],
            m["cpu_percent"]["daphne"], m["daphne_cpu_us"]["per_produced_event"],
            m["daphne_cpu_us"]["per_delivered_event"], m["kb_per_idle_connection"], m["loadavg"]["before"][0],
        ])
    title = "filtered streams (each event meant for one client; for tenant*, its tenant's clients):\n"
    return title + _table(
        ["window", "clients", "ev/s", "delivered", "dups", "wrong client", "p50 ms", "p99 ms", "max ms",
         "daphne CPU%", "CPU us/produced", "CPU us/delivered", "KB/conn", "load1"], rows)


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [headers, *[[str(cell) for cell in row] for row in rows]]
    widths = [max(len(row[index]) for row in cells) for index in range(len(headers))]
    lines = [" | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "-+-".join("-" * width for width in widths))
    return "\n".join(lines)


def _kb(mode: dict[str, Any]) -> str:
    """KB per idle connection; in parentheses where memory freed by an earlier mode was reused."""
    value = mode["kb_per_idle_connection"]
    return str(value) if mode.get("kb_per_idle_connection_comparable", True) else f"({value})"


def fanout_table(modes: dict[str, Any]) -> str:
    rows = []
    for name in ("kafka", "inproc", "groups"):
        if name in modes:
            m = modes[name]
            rows.append([
                name, m["clients"], f"{m['rate']:g}", f"{m['delivered']}/{m['expected']}",
                m["latency"]["p50_ms"], m["latency"]["p99_ms"], m["latency"]["max_ms"],
                m["delivered_per_s"], m["server_rss_mib"]["idle"], m["server_rss_mib"]["peak"],
                _kb(m), m["layer_backlog"]["peak"], m["cpu_percent"]["daphne"],
                sum(v for k, v in m["cpu_percent"].items() if k.startswith("client")),
                (m.get("server_write_rounds") or {}).get("mean_ms", ""),
            ])
    return _table(["mode", "clients", "ev/s", "delivered", "p50 ms", "p99 ms", "max ms", "deliv/s",
                   "RSS idle MiB", "RSS peak MiB", "KB/conn", "layer backlog", "daphne CPU%",
                   "clients CPU%", "write round ms"], rows)


def step_table(step: dict[str, Any]) -> str:
    rows = []
    for design in ("service", "inproc", "groups"):
        for s in step.get(design, {}).get("steps", []):
            if "error" in s:
                rows.append([design, f"{s['rate']:g}", "server stopped answering", *[""] * 6, "FAIL", ""])
                continue
            gc_info = s.get("server_gc") or {}
            rows.append([design, f"{s['rate']:g}", f"{s['delivered']}/{s['expected']}", s["p50_ms"],
                         s["p99_ms"], s["max_ms"], s["cpu_percent"]["daphne"],
                         gc_info.get("gen2_collections", ""), gc_info.get("gen2_ms", ""),
                         "pass" if s["passed"] else ("lossless" if s["lossless"] else "FAIL"),
                         s["loadavg"]["before"][0]])
    return _table(["design", "ev/s", "delivered", "p50 ms", "p99 ms", "max ms", "daphne CPU%",
                   "full GCs", "full GC ms", "result", "load1"], rows)


def targets_table(targets: list[dict[str, Any]]) -> str:
    rows = [[t["target"], t["goal"], t["measured"], "met" if t["met"] else "NOT met",
             "" if t["at_full_size"] else "(smaller than the target's size)"] for t in targets]
    return _table(["target", "goal", "measured", "verdict", "note"], rows)


def nginx_table(nginx: dict[str, Any]) -> str:
    """The nginx mode's windows side by side: the same clients and rate, 1 and W web processes."""
    rows = []
    for count, m in nginx["windows"].items():
        rows.append([
            count, m["clients"], f"{m['rate']:g}", f"{m['delivered']}/{m['expected']}", m["delivered_per_s"],
            m["latency"]["p50_ms"], m["latency"]["p99_ms"], m["latency"]["max_ms"],
            "/".join(str(n) for n in m["streams_per_process"]), m["cpu_percent_web"],
            m["cpu_percent_nginx"], sum(v for k, v in m["cpu_percent"].items() if k.startswith("client")),
        ])
    table = _table(["web processes", "clients", "ev/s", "delivered", "deliv/s", "p50 ms", "p99 ms",
                    "max ms", "streams each", "web CPU%", "nginx CPU%", "clients CPU%"], rows)
    scheme = "TLS" if nginx["tls"] else "plain HTTP"
    return (f"through nginx ({scheme} from the clients):\n{table}\n"
            f"{nginx['web_processes'][1]} vs 1 web process: "
            f"{nginx['delivered_per_s_ratio']}x the deliveries/s")
