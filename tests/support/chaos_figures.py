"""The chaos run's figures and verdict: `artifacts/chaos/<seed>.json` and one `CHAOS` line.

Deliveries are counted as the fault scenarios count them (`faults.figures_count`: owed = per
client, the records read back from Kafka that its filter lets through). A step's recovery is
`faults.recovery_time`'s: from its heal until every client had every event it wants that was
produced up to the first event after the heal.
"""

from __future__ import annotations

import bisect
import datetime
import itertools
import json
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.support import record_contract
from tests.support.eventsource import Position
from tests.support.faults import Figures, Production, Record, figures_count

if TYPE_CHECKING:
    from tests.support.chaos import ChaosRun
    from tests.support.chaos_clients import ChaosClient

EXAMPLES = 10
FAULTY = ("lost", "duplicated", "unexpected", "out_of_order", "aliens", "misdecoded")


def ack_times(acked: dict[Position, float], records: list[Record]) -> dict[Position, float]:
    """When Kafka acknowledged each record: `acked` for the production's, and for any other (an
    injected record, a copy written by a producer retry) that of the next acknowledged record in
    its partition, which it preceded."""
    times: dict[Position, float] = {}
    following: dict[int, float] = {}
    for record in sorted(records, key=lambda record: record.position, reverse=True):
        at = acked.get(record.position)
        if at is not None:
            following[record.partition] = at
        times[record.position] = at if at is not None else following.get(record.partition, float("inf"))
    return times


def recoveries(
    clients: list[ChaosClient], acked: dict[Any, float], heals: list[float]
) -> list[float | None]:
    """`faults.recovery_time` for many heal moments at once (a long run has a hundred), except
    that it is None when some client never got one of those events (recovery_time skips them)."""
    acked_times = sorted(acked.values())
    per_client = []
    for client in clients:
        pairs = sorted(
            (acked.get(position, float("inf")), client.arrivals[position])
            for position in client.expected or () if position in client.arrivals
        )
        lost = [position for position in client.expected or () if position not in client.arrivals]
        missing = min((acked.get(position, float("inf")) for position in lost), default=float("inf"))
        arrived = list(itertools.accumulate((at for _, at in pairs), max))
        per_client.append(([at for at, _ in pairs], arrived, missing))
    found: list[float | None] = []
    for healed_at in heals:
        index = bisect.bisect_left(acked_times, healed_at)
        cutoff = acked_times[index] if index < len(acked_times) else float("inf")
        latest: float | None = healed_at
        for times, arrived, missing in per_client:
            reached = bisect.bisect_right(times, cutoff)
            if missing <= cutoff:
                latest = None
                break
            if reached:
                latest = max(latest or healed_at, arrived[reached - 1])
        found.append(None if latest is None else round(latest - healed_at, 2))
    return found


def hostile_problems(run: ChaosRun, clients: list[ChaosClient], records: list[Record]) -> list[str]:
    """How each hostile record's frame, at each client owed it, differs from the contract."""
    by_position = {record.position: record for record in records}
    problems = []
    for client in clients:
        for position, name in sorted(run.hostile.items()):
            data = client.kept.get(position)
            if data is not None and position in (client.expected or ()):
                problems += [
                    f"{client.name} {name} at {position[0]}:{position[1]}: {problem}"
                    for problem in record_contract.frame_problems(data, by_position[position])
                ]
    return problems


def hostile_summary(run: ChaosRun, clients: list[ChaosClient], records: list[Record]) -> list[dict[str, Any]]:
    """Per hostile record: how many clients were owed it, how many got it, and what was wrong
    with the frames they got (the problems, without the client names)."""
    by_position = {record.position: record for record in records}
    summary = []
    for position, name in sorted(run.hostile.items()):
        owed = [client for client in clients if position in (client.expected or ())]
        got = [client for client in owed if position in client.kept]
        problems = sorted({
            problem for client in got
            for problem in record_contract.frame_problems(client.kept[position], by_position[position])
        })
        summary.append({
            "record": name, "position": list(position), "owed_to": len(owed), "received_by": len(got),
            "unexpected_at": sum(position in client.arrivals for client in clients if client not in owed),
            "problems": problems,
        })
    return summary


def client_figures(client: ChaosClient) -> dict[str, Any]:
    counted = figures_count(client.name, [client], 0, recovery_s=None)
    return {
        "path": client.path,
        "owed": counted.expected, "made": counted.delivered, "lost": counted.lost,
        "duplicated": counted.duplicated, "unexpected": counted.unexpected,
        "out_of_order": counted.out_of_order, "aliens": len(client.aliens),
        "reconnects": counted.reconnects, "connect_failures": client.connect_failures,
        "stalls": client.stalls, "statuses": dict(client.statuses), "farewells": dict(client.farewells),
        "frame_kinds": dict(client.kinds),
    }


def figures(
    run: ChaosRun, clients: list[ChaosClient], production: Production, records: list[Record], *,
    healed: dict[str, Any], catch_up_s: float, unfinished: list[str], final: dict[str, Any],
) -> dict[str, Any]:
    healed_steps = [entry for entry in run.steps if entry.healed_s is not None]
    heal_times = [run.t0 + entry.healed_s for entry in healed_steps]
    acked = ack_times(production.acked, records)
    for entry, recovery in zip(healed_steps, recoveries(clients, acked, heal_times), strict=True):
        entry.recovery_s = recovery
    for entry, following in itertools.pairwise(run.steps):
        if entry.healed_s is not None and entry.recovery_s is not None:
            entry.recovery_confounded = following.started_s < entry.healed_s + entry.recovery_s
    last = max(healed_steps, key=lambda entry: entry.healed_s or 0.0, default=None)
    totals = figures_count(f"chaos-{run.seed}", clients, len(records), recovery_s=None)
    problems = hostile_problems(run, clients, records)
    aliens = [alien for client in clients for alien in client.aliens]
    result = {
        "seed": run.seed, "seconds": run.seconds, "actions": list(run.actions),
        "replay": f"make test-chaos CHAOS_SEED={run.seed} CHAOS_SECONDS={run.seconds:g} "
                  f"CHAOS_ACTIONS={','.join(run.actions)}",
        "finished_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "run_s": run.now(),
        "faults": dict(Counter(entry.step["action"] for entry in run.steps)),
        "overlapping_steps": sum(1 for entry in run.steps if entry.overlapped),
        "steps": [asdict(entry) for entry in run.steps],
        "unexpected_exits": run.exits,
        "healed": healed,
        "produced": len(records),
        "producer_errors": production.errors,
        "hostile_records": hostile_summary(run, clients, records),
        "foreign_messages": dict(Counter(
            str(entry.step["target"]) for entry in run.steps
            if entry.step["action"] == "layer" and entry.error is None
        )),
        "deliveries": _deliveries(totals, aliens, problems),
        "recovery_after_last_fault_s": last.recovery_s if last else None,
        "catch_up_s": catch_up_s,
        "clients_unfinished": unfinished,
        "clients": {client.name: client_figures(client) for client in clients},
        "final": final,
        "aliens_examples": aliens[:EXAMPLES],
        "misdecoded_examples": problems[:EXAMPLES],
    }
    result["verdict"] = {"failures": verdict_failures(result)}
    result["verdict"]["passed"] = not result["verdict"]["failures"]
    return result


def _deliveries(totals: Figures, aliens: list[str], problems: list[str]) -> dict[str, int]:
    return {
        "owed": totals.expected, "made": totals.delivered, "lost": totals.lost,
        "duplicated": totals.duplicated, "unexpected": totals.unexpected,
        "out_of_order": totals.out_of_order, "aliens": len(aliens), "misdecoded": len(problems),
        "reconnects": totals.reconnects,
    }


def verdict_failures(result: dict[str, Any]) -> list[str]:
    """Every way the run failed, in words (empty: it passed)."""
    d, final = result["deliveries"], result["final"]
    failures = []
    bad = {name: d[name] for name in FAULTY}
    if any(bad.values()) or d["made"] != d["owed"] or not d["owed"]:
        counts = ", ".join(f"{name}={count}" for name, count in bad.items())
        failures.append(f"deliveries {d['made']}/{d['owed']}: {counts}")
    if result["clients_unfinished"]:
        failures.append(f"clients without everything after the catch-up: {result['clients_unfinished']}")
    not_ready = {port: status for port, status in final["readyz"].items() if status != 200}
    if not_ready:
        failures.append(f"/status not 200 at the end: {not_ready}")
    if not final["consumer_alive"]:
        failures.append(f"consume_events ({final['consumer']}) is not running at the end")
    if not final["lag_zero"]:
        failures.append(f"consumer lag not 0 at the end: {final['consumer_lag']}")
    if result["unexpected_exits"]:
        failures.append("processes died by themselves: " + ", ".join(
            f"{e['process']} (exit {e['code']}) at +{e['at_s']}s" for e in result["unexpected_exits"]
        ))
    errors = [
        f"step {step['step']['index']} {step['step']['action']}: {step['error']}"
        for step in result["steps"] if step["error"]
    ]
    if errors:
        failures.append("steps failed: " + "; ".join(errors))
    return failures


def summary(result: dict[str, Any]) -> str:
    d, final = result["deliveries"], result["final"]
    faults = " ".join(f"{name}={count}" for name, count in sorted(result["faults"].items()))
    recovery = result["recovery_after_last_fault_s"]
    recovery_text = f"{recovery:.1f}s" if recovery is not None else "never" if result["steps"] else "n/a"
    return (
        f"CHAOS seed={result['seed']} seconds={result['seconds']:g} actions={','.join(result['actions'])} "
        f"steps={len(result['steps'])} ({faults}; {result['overlapping_steps']} overlapping) "
        f"produced={result['produced']} delivered={d['made']}/{d['owed']} lost={d['lost']} "
        f"duplicated={d['duplicated']} unexpected={d['unexpected']} out_of_order={d['out_of_order']} "
        f"aliens={d['aliens']} misdecoded={d['misdecoded']} reconnects={d['reconnects']} "
        f"recovery_last={recovery_text} catch_up={result['catch_up_s']:.1f}s "
        f"readyz={','.join(str(s) for s in final['readyz'].values())} lag_zero={final['lag_zero']} "
        f"exits={len(result['unexpected_exits'])} verdict={'PASS' if result['verdict']['passed'] else 'FAIL'}"
    )


def write(result: dict[str, Any], directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{result['seed']}.json"
    path.write_text(json.dumps(result, indent=2, sort_keys=True, default=str) + "\n")
    return path
