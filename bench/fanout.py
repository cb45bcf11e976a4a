"""Fan-out benchmark against the real stack: `make bench` or `python -m bench.fanout [options]`.

Starts Kafka and Redis (scripts.servers, free ports), a fresh topic, one
`manage.py consume_events` and ONE web process (bench/web.py: AetherLink's server with
bench.asgi_modes), plus load-client processes, then runs the selected modes in this order and
writes a table and JSON:

  kafka   N clients on /crm-events, R events/s produced into Kafka (the service's full path)
  inproc  the same N x R from an in-process publisher, one body send per event per client
  groups  the same N x R through Kafka, every connection its own channel-layer group member
  step    M clients, rate stepped up: highest rate with nothing lost and p99 <= 250 ms,
          for the service and for the in-process per-event-send baseline (ratio)
  slow    K clients that never read; the server's RSS over time
  churn   C connect/disconnect cycles; leaked subscribers, RSS growth
  filtered  F clients each with its own filter (key=, then where=owner:), F' ev/s through Kafka
          spread so each event matches one client, beside 50 unfiltered clients at that rate;
          Daphne CPU per produced and per delivered event (bench/mode_filtered.py); the `tenant`
          variant (not by default): F clients of F/10 tenants limited by their JWT grants
  memory  N idle clients with tracemalloc on in the web process: where an idle stream's bytes
          go, by file, line and traceback (bench/mode_memory.py); not run unless named
  nginx   the kafka mode's N x R through nginx (docker/nginx.conf), with 1 and then W web
          processes behind it (--web-processes W); not run unless named in --modes
  ingest  `consume_events` alone: its CPU per event at I events/s, and the rate at which it takes
          a backlog of B events, losslessly (bench/mode_ingest.py); not run unless named
  peer    `aetherlink-web --workers W` and Centrifugo (its Kafka consumer and uni SSE), interleaved,
          for each N x R of --peer-workloads, --peer-repeats times (bench/mode_peer.py); needs
          Centrifugo built (`make centrifugo`); not run unless named

Defaults are small (a quick run takes under two minutes); `--full` sets the issue's sizes.
The JSON is written again as each mode ends (bench/run_record.py): a mode that fails is kept
as failed with its reason, the others' results stay, and the exit status is then 1.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import secrets
import shutil
import signal
import sys
import time
import traceback
from functools import partial
from pathlib import Path
from typing import Any

from bench.clients import ClientPool, LoadClientError
from bench.context import Bench
from bench.events import FRAME_BYTES, frame_size, pad_for
from bench.layer_probe import groups_purge
from bench.meta import run_meta
from bench.mode_fanout import fanout_mode, step_mode
from bench.mode_filtered import VARIANTS, filtered_mode, plain_token
from bench.mode_ingest import ingest_mode, ingest_summary
from bench.mode_memory import memory_mode, memory_summary
from bench.mode_nginx import nginx_mode
from bench.mode_peer import peer_mode, peer_table
from bench.mode_stress import churn_mode, slow_mode
from bench.nofile import nofile_raise
from bench.peer_centrifugo import NOT_BUILT, centrifugo_find
from bench.procstat import load_average
from bench.producer import KafkaTicker
from bench.report import (
    fanout_table,
    filtered_table,
    nginx_table,
    step_table,
    targets_evaluate,
    targets_table,
)
from bench.run_record import RunRecord, modes_succeeded
from bench.stack import BenchStack
from bench.waits import NoAnswer

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
ALL_MODES = ("kafka", "inproc", "groups", "step", "slow", "churn", "filtered", "nginx", "memory", "ingest",
             "peer")
# nginx needs the nginx binary and starts more processes, memory traces every allocation, ingest
# pauses the consumer, peer needs Centrifugo: only when asked for.
DEFAULT_MODES = ("kafka", "inproc", "groups", "step", "slow", "churn", "filtered")
QUICK = {"clients": 200, "duration": 5.0, "drain": 5.0, "step_clients": 200, "step_rates": "5,10,20",
         "step_seconds": 3.0, "step_patience": 1, "slow_clients": 5, "slow_seconds": 8.0,
         "churn_cycles": 500, "filtered_clients": 200, "filtered_rate": 50.0, "ingest_seconds": 5.0,
         "ingest_backlog": 40_000, "peer_workloads": "200x10", "peer_repeats": 1}
FULL = {"clients": 2000, "duration": 30.0, "drain": 10.0, "step_clients": 1000,
        "step_rates": "2,3,5,7,10,15,20,25,30,40,50,60,80,100,150,200,300,400", "step_seconds": 10.0,
        "step_patience": 2, "slow_clients": 20, "slow_seconds": 60.0, "churn_cycles": 10_000,
        "filtered_clients": 2000, "filtered_rate": 500.0, "ingest_seconds": 30.0,
        "ingest_backlog": 100_000, "peer_workloads": "1000x20,5000x10", "peer_repeats": 3}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.fanout", description=__doc__.splitlines()[0])
    p.add_argument("--modes", default=",".join(DEFAULT_MODES),
                   help="comma separated: " + " ".join(ALL_MODES) + " (default: all but nginx)")
    p.add_argument("--full", action="store_true", help="the issue's sizes (2,000 clients, 30 s, ...)")
    p.add_argument("--clients", type=int, help="N for kafka/inproc/groups (quick 200, full 2000)")
    p.add_argument("--rate", type=float, default=10.0, help="events/s for kafka/inproc/groups")
    p.add_argument("--duration", type=float, help="seconds of producing per window (quick 5, full 30)")
    p.add_argument("--drain", type=float, help="seconds to wait for late deliveries (quick 5, full 10)")
    p.add_argument("--step-clients", type=int)
    p.add_argument("--step-rates", help="events/s, comma separated, ascending")
    p.add_argument("--step-seconds", type=float)
    p.add_argument("--step-drain", type=float, default=5.0)
    p.add_argument("--step-patience", type=int, help="stop a design after this many failed steps in a row")
    p.add_argument("--step-designs", default="service,inproc",
                   help="designs to step: service, inproc, groups (comma separated)")
    p.add_argument("--slow-clients", type=int, help="K stalled clients (quick 5, full 20)")
    p.add_argument("--slow-readers", type=int, default=5, help="normal readers alongside them")
    p.add_argument("--slow-rate", type=float, default=200.0, help="events/s while clients stall")
    p.add_argument("--slow-seconds", type=float)
    p.add_argument("--slow-rcvbuf", type=int, default=4096, help="SO_RCVBUF of the stalled clients")
    p.add_argument("--slow-drain", type=float, default=5.0, help="seconds the readers wait for late events")
    p.add_argument("--slow-read-seconds", type=float, default=5.0,
                   help="seconds the stalled clients read at the end (were they sent away?)")
    p.add_argument("--churn-cycles", type=int)
    p.add_argument("--churn-concurrency", type=int, default=50)
    p.add_argument("--churn-rate", type=float, default=10.0, help="events/s flowing during churn")
    p.add_argument("--filtered-clients", type=int,
                   help="filtered mode: clients, each with its own filter (quick 200, full 2000)")
    p.add_argument("--filtered-rate", type=float, help="filtered mode: events/s (quick 50, full 500)")
    p.add_argument("--filtered-baseline", type=int, default=50,
                   help="filtered mode: unfiltered clients measured at the same rate")
    p.add_argument("--filtered-variants", default="key,where",
                   help="filtered mode: key (key=o<n>), where (where=owner:o<n>), tenant (a JWT grant "
                        "where=owner:o<n %% tenants>; the web process then wants tokens: not with churn or "
                        "nginx) and/or tenant_filter (the same audience by where=), comma separated")
    p.add_argument("--filtered-tenants", type=int,
                   help="filtered mode's tenant variant: tenants (default: filtered clients / 10)")
    p.add_argument("--web-processes", type=int, default=2,
                   help="nginx mode: web processes behind nginx in its second window (the first has 1)")
    p.add_argument("--nginx-tls", action="store_true",
                   help="nginx mode: clients speak TLS to nginx (default: plain HTTP; bench/mode_nginx.py)")
    p.add_argument("--ingest-rate", type=float, default=1000.0,
                   help="ingest mode: events/s of its steady window")
    p.add_argument("--ingest-seconds", type=float,
                   help="ingest mode: seconds of its steady window (quick 5, full 30)")
    p.add_argument("--ingest-backlog", type=int,
                   help="ingest mode: events produced while the consumer is paused (quick 40,000, "
                        "full 100,000)")
    p.add_argument("--ingest-drain", type=float, default=60.0,
                   help="ingest mode: seconds to wait for the commits and the deliveries")
    p.add_argument("--peer-workloads",
                   help="peer mode: CLIENTSxRATE, comma separated (quick 200x10, full 1000x20,5000x10)")
    p.add_argument("--peer-repeats", type=int, help="peer mode: interleaved windows per server and workload")
    p.add_argument("--peer-workers", type=int, default=2, help="peer mode: aetherlink-web --workers")
    p.add_argument("--peer-step", action="store_true",
                   help="peer mode: then the step ladder per server (--step-clients, --step-rates, "
                        "--step-seconds)")
    p.add_argument("--client-procs", type=int, default=1, help="load-client processes")
    p.add_argument("--frame-bytes", type=int, default=FRAME_BYTES)
    p.add_argument("--kafka", help="use this Kafka bootstrap instead of starting one")
    p.add_argument("--redis", help="use this Redis URL instead of starting one")
    p.add_argument("--json", type=Path, help="where to write the JSON (default bench/results/)")
    p.add_argument("--profile", action="store_true",
                   help="cProfile Daphne during the kafka/inproc/groups windows (slows it: numbers "
                        "of such a run are not comparable); top functions in the run's log folder")
    p.add_argument("--max-load", type=float, default=0.0,
                   help="first wait until the 1-minute load average is at most this")
    p.add_argument("--max-load-wait", type=float, default=300.0, help="seconds to wait for --max-load")
    p.add_argument("--settle", type=float, default=2.0,
                   help="seconds the server is left alone before its idle memory is read, and around churn")
    p.add_argument("--progress", action="store_true",
                   help="a timed line for each step of each window (where a stuck run stopped)")
    return p


def options_parse(argv: list[str] | None) -> argparse.Namespace:
    args = _parser().parse_args(argv)
    preset = FULL if args.full else QUICK
    for name, value in preset.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.modes = [mode.strip() for mode in args.modes.split(",") if mode.strip()]
    unknown = set(args.modes) - set(ALL_MODES)
    if unknown:
        raise SystemExit(f"unknown modes: {', '.join(sorted(unknown))}; choose from {', '.join(ALL_MODES)}")
    args.step_rates = [float(rate) for rate in args.step_rates.split(",")]
    args.step_designs = [design.strip() for design in args.step_designs.split(",") if design.strip()]
    if set(args.step_designs) - {"service", "inproc", "groups"}:
        raise SystemExit("--step-designs takes service, inproc and groups")
    args.filtered_variants = [name.strip() for name in args.filtered_variants.split(",") if name.strip()]
    if not args.filtered_variants or set(args.filtered_variants) - set(VARIANTS):
        raise SystemExit("--filtered-variants takes key, where, tenant and tenant_filter")
    args.filtered_tenants = args.filtered_tenants or max(1, args.filtered_clients // 10)
    args.jwt = "filtered" in args.modes and "tenant" in args.filtered_variants
    tenancy = "filtered" in args.modes and bool({"tenant", "tenant_filter"} & set(args.filtered_variants))
    if args.jwt and {"churn", "nginx"} & set(args.modes):
        raise SystemExit("the tenant variant wants JWTs of every stream, which churn and nginx do not send")
    if tenancy and args.filtered_clients % args.filtered_tenants:
        raise SystemExit("--filtered-clients must be a multiple of --filtered-tenants")
    args.peer_workloads = [_workload(text) for text in args.peer_workloads.split(",") if text.strip()]
    if "peer" in args.modes and centrifugo_find() is None:
        raise SystemExit(NOT_BUILT)
    if args.web_processes < 2:
        raise SystemExit("--web-processes must be 2 or more (the nginx mode's first window has 1)")
    return args


def _workload(text: str) -> tuple[int, float]:
    clients, _, rate = text.strip().partition("x")
    try:
        return int(clients), float(rate)
    except ValueError:
        raise SystemExit(f"--peer-workloads takes CLIENTSxRATE items, not {text!r}") from None


async def _load_wait(max_load: float, wait: float) -> list[float]:
    deadline = time.monotonic() + wait
    while max_load and load_average()[0] > max_load and time.monotonic() < deadline:
        print(f"load average {load_average()} above {max_load}; waiting", flush=True)
        await asyncio.sleep(15)
    return load_average()


async def _warm_up(bench: Bench, designs: set[str]) -> None:
    """Exercise every path once, so lazy set-up is not counted as per-connection memory."""
    for design in sorted(designs):
        await fanout_mode(bench, design, clients=2, rate=5, seconds=1, drain=10)


async def _fixed_mode(bench: Bench, args: argparse.Namespace, mode: str, design: str,
                      first: bool) -> dict[str, Any]:
    result = await fanout_mode(bench, design, clients=args.clients, rate=args.rate, seconds=args.duration,
                               drain=args.drain, profile=mode if args.profile else None)
    # Only the first N-client mode grows the process from its warm-up size; later ones
    # reuse memory the allocator kept from earlier connections.
    result["kb_per_idle_connection_comparable"] = first
    if design == "groups":
        result["left_behind"] = await groups_purge(bench.stack.redis_url, bench.stack.env["REDIS_PREFIX"])
    return result


async def _step_design(bench: Bench, args: argparse.Namespace, design: str) -> dict[str, Any]:
    print(f"{time.strftime('%X')} -- step: {design}, {args.step_clients} clients, "
          f"rates {args.step_rates}", flush=True)
    result = await step_mode(
        bench, design, clients=args.step_clients, rates=args.step_rates,
        seconds=args.step_seconds, drain=args.step_drain, patience=args.step_patience)
    if design == "groups":
        result["left_behind"] = await groups_purge(bench.stack.redis_url, bench.stack.env["REDIS_PREFIX"])
    return result


def _step_ratios(step: dict[str, Any]) -> None:
    """The service's best step rate over the baselines', from the designs that finished."""
    finished = modes_succeeded({"step": step})["step"]
    for field, suffix in (("best_rate", ""), ("best_rate_lossless", "_lossless")):
        service = finished.get("service", {}).get(field, 0)
        for other, key in (("inproc", "ratio"), ("groups", "ratio_vs_groups")):
            best = finished.get(other, {}).get(field)
            if best is not None:
                step[key + suffix] = round(service / best, 2) if best else None


async def modes_run(bench: Bench, args: argparse.Namespace, record: RunRecord) -> None:
    """Each selected mode in turn, its result (or why it failed) saved in `record` as it ends."""
    print(f"{time.strftime('%X')} warmed up; load average {load_average()}", flush=True)
    for mode, design in (("kafka", "service"), ("inproc", "inproc"), ("groups", "groups")):
        if mode in args.modes:
            print(f"{time.strftime('%X')} -- {mode}: {args.clients} x {args.rate:g} ev/s for "
                  f"{args.duration:g} s", flush=True)
            first = not record.modes
            await record.mode_run(mode, partial(_fixed_mode, bench, args, mode, design, first))
    if "step" in args.modes:
        step: dict[str, Any] = {}
        record.modes["step"] = step
        for design in args.step_designs:
            await record.mode_run(design, partial(_step_design, bench, args, design), into=step)
        _step_ratios(step)
        record.save()
    if "slow" in args.modes:
        print(f"{time.strftime('%X')} -- slow: {args.slow_clients} stalled clients for "
              f"{args.slow_seconds:g} s", flush=True)
        await record.mode_run("slow", lambda: slow_mode(
            bench, stalled=args.slow_clients, readers=args.slow_readers, rate=args.slow_rate,
            seconds=args.slow_seconds, rcvbuf=args.slow_rcvbuf, drain=args.slow_drain,
            read_seconds=args.slow_read_seconds))
    if "churn" in args.modes:
        print(f"{time.strftime('%X')} -- churn: {args.churn_cycles} cycles", flush=True)
        await record.mode_run("churn", lambda: churn_mode(
            bench, cycles=args.churn_cycles, concurrency=args.churn_concurrency, rate=args.churn_rate))
    if "filtered" in args.modes:
        print(f"{time.strftime('%X')} -- filtered: {args.filtered_clients} clients "
              f"({', '.join(args.filtered_variants)}) and {args.filtered_baseline} unfiltered, "
              f"{args.filtered_rate:g} ev/s for {args.duration:g} s",
              flush=True)
        await record.mode_run("filtered", lambda: filtered_mode(
            bench, clients=args.filtered_clients, baseline_clients=args.filtered_baseline,
            rate=args.filtered_rate, seconds=args.duration, drain=args.drain,
            variants=args.filtered_variants, tenants=args.filtered_tenants))
    if "nginx" in args.modes:
        print(f"{time.strftime('%X')} -- nginx: {args.clients} x {args.rate:g} ev/s for {args.duration:g} s "
              f"through nginx ({'TLS' if args.nginx_tls else 'plain HTTP'}), 1 and {args.web_processes} "
              "web processes", flush=True)
        await record.mode_run("nginx", lambda: nginx_mode(
            bench, clients=args.clients, rate=args.rate, seconds=args.duration, drain=args.drain,
            web_processes=args.web_processes, tls=args.nginx_tls))
    if "ingest" in args.modes:
        print(f"{time.strftime('%X')} -- ingest: {args.ingest_rate:g} ev/s for {args.ingest_seconds:g} s, "
              f"then a backlog of {args.ingest_backlog} events", flush=True)
        await record.mode_run("ingest", lambda: ingest_mode(
            bench, rate=args.ingest_rate, seconds=args.ingest_seconds, backlog=args.ingest_backlog,
            drain=args.ingest_drain, profile=args.profile))
    if "peer" in args.modes:
        binary = centrifugo_find()
        assert binary is not None  # options_parse refused the run otherwise
        print(f"{time.strftime('%X')} -- peer: {args.peer_workloads} for {args.duration:g} s, "
              f"{args.peer_repeats} interleaved repeats, --workers {args.peer_workers}", flush=True)
        await record.mode_run("peer", lambda: peer_mode(
            bench, binary=binary, workloads=args.peer_workloads, repeats=args.peer_repeats,
            seconds=args.duration, drain=args.drain, workers=args.peer_workers,
            step_clients=args.step_clients if args.peer_step else 0, step_rates=tuple(args.step_rates),
            step_seconds=args.step_seconds))
    if "memory" in args.modes:  # last: tracing slows the process, and its memory is its own
        print(f"{time.strftime('%X')} -- memory: {args.clients} idle clients, tracemalloc on", flush=True)
        await record.mode_run("memory", lambda: memory_mode(bench, clients=args.clients))


def _sigterm_cancels(main: asyncio.Task[Any], cleaning: list[bool]) -> None:
    """SIGTERM cancels the run, so its `finally` still stops every process it started.

    The cancellation is repeated every second until the run has reached that `finally`
    (`cleaning[0]`): one cancellation can be swallowed on the way (see bench/waits.py).
    """
    loop = asyncio.get_running_loop()

    def cancel() -> None:
        if not cleaning[0] and not main.done():
            main.cancel()
            loop.call_later(1.0, cancel)

    def on_sigterm() -> None:
        print(f"{time.strftime('%X')} SIGTERM: cancelling the run, then stopping its processes", flush=True)
        cancel()

    loop.add_signal_handler(signal.SIGTERM, on_sigterm)


async def _stop_all(ticker: KafkaTicker | None, pool: ClientPool | None, stack: BenchStack) -> None:
    """Stop what the run started; one part failing to stop does not keep the others running."""
    parts = (("the Kafka producer", ticker and ticker.stop), ("the load clients", pool and pool.stop))
    for what, stop in parts:
        if stop:
            try:
                await stop()
            except Exception as error:  # noqa: BLE001 - said, and the rest is still stopped
                print(f"{time.strftime('%X')} warning: stopping {what} failed: {error!r}", flush=True)
    stack.stop()


async def run(args: argparse.Namespace) -> RunRecord:
    nofile_raise()
    cleaning = [False]
    task = asyncio.current_task()
    assert task is not None  # run() is always awaited in a task (asyncio.run)
    _sigterm_cancels(task, cleaning)
    load_start = await _load_wait(args.max_load, args.max_load_wait)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = RESULTS / f"run-{stamp}"
    run_dir.mkdir(parents=True, exist_ok=True)
    jwt_key = secrets.token_hex(32) if args.jwt else ""
    stack = BenchStack(run_dir, kafka_bootstrap=args.kafka, redis_url=args.redis, jwt_key=jwt_key)
    pool = ticker = None
    try:
        print(f"{time.strftime('%X')} starting the stack in {run_dir}", flush=True)
        await stack.start()
        pool = await ClientPool.start(args.client_procs, "127.0.0.1", stack.port)
        if jwt_key:
            pool.bearer = [plain_token(jwt_key)]
        ticker = KafkaTicker(stack.kafka_bootstrap)
        await ticker.start()
        pad = pad_for(stack.topic, args.frame_bytes)
        bench = Bench(stack=stack, pool=pool, ticker=ticker, pad=pad,
                      frame_bytes=frame_size(stack.topic, pad), profile_dir=run_dir, progress=args.progress,
                      settle=args.settle)
        designs = {"service"} | {design for mode, design in (("inproc", "inproc"), ("groups", "groups"))
                                 if mode in args.modes}
        if "step" in args.modes:
            designs |= set(args.step_designs)
        await _warm_up(bench, designs)
        meta = run_meta(args, load_start=load_start, frame_bytes=bench.frame_bytes, run_dir=run_dir)
        record = RunRecord(args.json or RESULTS / f"fanout-{meta['date']}.json", meta)
        print(f"{time.strftime('%X')} results go to {record.path} as each mode ends", flush=True)
        await modes_run(bench, args, record)
    finally:
        cleaning[0] = True
        print(f"{time.strftime('%X')} stopping the stack", flush=True)
        await _stop_all(ticker, pool, stack)
        shutil.rmtree(run_dir / "kafka" / "kraft-logs", ignore_errors=True)
    record.meta = run_meta(args, load_start=load_start, frame_bytes=bench.frame_bytes, run_dir=run_dir)
    record.meta["date"] = meta["date"]  # when it started, as the file's name says
    record.targets = targets_evaluate(modes_succeeded(record.modes))
    record.save()
    return record


def _print(result: dict[str, Any]) -> None:
    modes, meta = modes_succeeded(result["modes"]), result["meta"]
    print(f"\nfan-out benchmark {meta['date']} on {meta['cpus']} cores; load average "
          f"{meta['loadavg_start']} at start, {meta['loadavg_end']} at end; frame {meta['frame_bytes']} B")
    if any(name in modes for name in ("kafka", "inproc", "groups")):
        print("\n" + fanout_table(modes))
    if modes.get("step"):
        print("\n" + step_table(modes["step"]))
    if "slow" in modes:
        slow = modes["slow"]
        print(f"\nslow: {slow['stalled']} stalled, RSS {slow['rss_mib']}, "
              f"growth {slow['rss_growth_mib']} MiB, kernel send queues "
              f"{slow['kernel_send_queue_mib_at_end']} MiB, endings {slow['stalled_endings']['reasons']}")
    if "churn" in modes:
        churn = modes["churn"]
        print(f"churn: {churn['churn']['cycles']} cycles ({churn['churn']['failed']} failed), "
              f"{churn['leaked_subscribers']} leaked, RSS growth {churn['rss_growth_mib']} MiB")
    if "filtered" in modes:
        print("\n" + filtered_table(modes["filtered"]))
    if "nginx" in modes:
        print("\n" + nginx_table(modes["nginx"]))
    if "ingest" in modes:
        print("\n" + ingest_summary(modes["ingest"]))
    if "memory" in modes:
        print("\n" + memory_summary(modes["memory"]))
    if "peer" in modes:
        print("\n" + peer_table(modes["peer"]))
    if result["targets"]:  # none for the nginx mode alone
        print("\n" + targets_table(result["targets"]))
    for name, reason in result["failed"].items():
        print(f"\n{name} FAILED: {reason}")


def main(argv: list[str] | None = None) -> int:
    args = options_parse(argv)
    try:
        record = asyncio.run(run(args))
    except asyncio.CancelledError:
        print(f"{time.strftime('%X')} benchmark cancelled; its processes were stopped", file=sys.stderr)
        return 143
    except (NoAnswer, LoadClientError) as error:
        traceback.print_exc()
        print(f"\nbenchmark failed: {error}", file=sys.stderr)
        return 1
    result = record.result()
    _print(result)
    print(f"\nJSON: {record.path}")
    return 1 if result["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
