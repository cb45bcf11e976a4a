"""The benchmark's JSON keeps every mode that finished, whichever mode fails and however the run ends."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from bench import fanout
from bench.report import targets_evaluate
from bench.run_record import RunRecord, mode_failure, modes_failed, modes_succeeded

META = {"date": "2026-12-07T00:00:00Z"}
RESET = ConnectionResetError(104, "Connection reset by peer")  # what EMFILE in the web process looks like
RESET_TEXT = "ConnectionResetError: [Errno 104] Connection reset by peer"


def on_disk(record: RunRecord) -> dict:
    return json.loads(record.path.read_text())


def names_in(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def returning(value):
    async def run():
        return value
    return run


def raising(error: BaseException):
    async def run():
        raise error
    return run


async def test_each_mode_is_on_disk_as_it_ends_and_a_failure_keeps_the_rest(tmp_path: Path):
    record = RunRecord(tmp_path / "run.json", META)
    assert await record.mode_run("kafka", returning({"delivered": 10})) == {"delivered": 10}
    assert on_disk(record) == {"meta": META, "modes": {"kafka": {"delivered": 10}}, "targets": [],
                               "complete": False, "failed": {}}
    assert await record.mode_run("churn", raising(RESET)) is None
    await record.mode_run("filtered", returning({"ok": 1}))
    modes = {"kafka": {"delivered": 10}, "churn": {"failed": RESET_TEXT}, "filtered": {"ok": 1}}
    assert on_disk(record) == {"meta": META, "modes": modes, "targets": [], "complete": False,
                               "failed": {"churn": RESET_TEXT}}
    assert names_in(tmp_path) == ["run.json"]  # no partial file left beside it


async def test_a_cancelled_run_leaves_the_modes_it_finished(tmp_path: Path):
    record = RunRecord(tmp_path / "run.json", META)
    await record.mode_run("kafka", returning({"delivered": 10}))

    async def hangs():
        await asyncio.Event().wait()

    task = asyncio.create_task(record.mode_run("slow", hangs))
    await asyncio.sleep(0)
    task.cancel()  # SIGTERM cancels the run (bench/fanout.py): not taken for a failed mode
    with pytest.raises(asyncio.CancelledError):
        await task
    assert on_disk(record)["modes"] == {"kafka": {"delivered": 10}}


def test_failures_are_named_and_left_out_of_tables_and_targets():
    modes = {"kafka": {"failed": "NoAnswer: no answer"},
             "step": {"service": {"best_rate": 20}, "inproc": mode_failure(RESET), "ratio": None},
             "churn": mode_failure(ValueError())}
    assert modes_failed(modes) == {"kafka": "NoAnswer: no answer", "step/inproc": RESET_TEXT,
                                   "churn": "ValueError"}
    assert modes_succeeded(modes) == {"step": {"service": {"best_rate": 20}, "ratio": None}}
    assert targets_evaluate(modes_succeeded(modes)) == targets_evaluate({})


async def test_a_run_whose_churn_mode_hits_emfile_keeps_every_other_mode(tmp_path, monkeypatch):
    """The wiring of bench/fanout.py: each mode through the record, with fakes for the modes."""
    calls = []

    def fake(name, error=None):
        async def mode(*_args, **_kwargs):
            calls.append(name)
            if error is not None:
                raise error
            return {"mode": name}
        return mode

    monkeypatch.setattr(fanout, "fanout_mode", fake("fanout"))
    monkeypatch.setattr(fanout, "step_mode", fake("step"))
    monkeypatch.setattr(fanout, "slow_mode", fake("slow"))
    monkeypatch.setattr(fanout, "churn_mode", fake("churn", RESET))
    monkeypatch.setattr(fanout, "filtered_mode", fake("filtered"))
    args = fanout.options_parse(["--modes", "kafka,inproc,step,slow,churn,filtered",
                                 "--step-designs", "service,inproc"])
    record = RunRecord(tmp_path / "run.json", META)
    await fanout.modes_run(object(), args, record)  # the fakes never look at the bench
    assert calls == ["fanout", "fanout", "step", "step", "slow", "churn", "filtered"]
    saved = on_disk(record)
    assert saved["failed"] == {"churn": RESET_TEXT}
    assert saved["modes"]["churn"] == {"failed": RESET_TEXT}
    assert saved["modes"]["kafka"] == {"mode": "fanout", "kb_per_idle_connection_comparable": True}
    assert saved["modes"]["inproc"] == {"mode": "fanout", "kb_per_idle_connection_comparable": False}
    assert saved["modes"]["step"] == {"service": {"mode": "step"}, "inproc": {"mode": "step"}}
    assert (saved["modes"]["slow"], saved["modes"]["filtered"]) == ({"mode": "slow"}, {"mode": "filtered"})


async def test_a_failed_step_design_keeps_the_other_and_the_ratio_is_left_out(tmp_path, monkeypatch):
    async def step(_bench, design, **_kwargs):
        if design == "inproc":
            raise fanout.NoAnswer("the load client did not answer in 60 s")
        return {"best_rate": 20, "best_rate_lossless": 30}

    monkeypatch.setattr(fanout, "step_mode", step)
    record = RunRecord(tmp_path / "run.json", META)
    await fanout.modes_run(object(), fanout.options_parse(["--modes", "step"]), record)
    assert on_disk(record)["modes"] == {"step": {
        "service": {"best_rate": 20, "best_rate_lossless": 30},
        "inproc": {"failed": "NoAnswer: the load client did not answer in 60 s"}}}
