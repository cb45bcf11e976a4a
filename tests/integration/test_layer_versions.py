"""Rolling deploys: a consume_events and a web process of adjacent versions interoperate.

Version N is the last release before layer messages carried a version (`v`) and a
source: its messages have neither. This checkout is N+1. Both directions are run
for real, with N's own code taken from this repository's history: N's consumer
feeding our web process, and our consumer feeding N's web process. Events must
reach a live stream and a replaying one, and readiness must be 200, both ways.
"""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest
from channels_redis.core import RedisChannelLayer

from crm_events.core import messages as broadcast
from tests.integration.conftest import produce
from tests.support.processes import ROOT, http_get
from tests.support.sse_client import SseConnection

# The last landed main before `v` and `source` (the release N of the rule in crm_events/broadcast.py).
PREVIOUS_RELEASE = "f01fe8f9b12ca7955fe4b9427dfa7c824e26381d"
NEEDS_HISTORY = (
    "this test runs the previous release's code from git history ({commit}); "
    "it needs a full clone of the repository (git clone, not a shallow or archived copy): {error}"
)


@pytest.fixture(scope="module")
def previous_release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("previous-release")
    try:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", "--format=tar", PREVIOUS_RELEASE],
            check=True, capture_output=True, timeout=60,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        pytest.fail(NEEDS_HISTORY.format(commit=PREVIOUS_RELEASE, error=getattr(error, "stderr", error)))
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(root, filter="data")
    _stand_ins_write(root)
    return root


def _stand_ins_write(root: Path) -> None:
    """An empty module in the previous release for each module of this checkout's packages it
    lacks (`crm_events.models`, say, which Django imports when it exists): the editable install's
    finder maps a package's immediate children by name, and would hand it this checkout's."""
    for package in ("crm_events", "aetherlink"):
        for child in (ROOT / package).iterdir():
            target = root / package / child.name
            stem = root / package / child.stem
            if stem.exists() or stem.with_suffix(".py").exists():  # a module then, a package now, say
                continue
            if child.suffix == ".py":
                target.write_text("")
            elif (child / "__init__.py").exists():
                target.mkdir()
                (target / "__init__.py").write_text("")


def domain(connection: SseConnection) -> list[dict]:
    return [e.json() for e in connection.parser.events if e.data and '"domain_event"' in e.data]


async def deliveries_check(stack, kafka, topic: str, port: int, *, ready_path: str = "/status") -> None:
    live = await SseConnection.open("127.0.0.1", port, "/crm-events")
    await live.events_until(lambda events: any('"connected"' in (e.data or "") for e in events), timeout=20)
    values = [json.dumps({"type": "deal.won", "seq": i}).encode() for i in range(9)]
    await produce(kafka.bootstrap, topic, values, partitions=[i % 3 for i in range(9)])
    await live.events_until(lambda _: len(domain(live)) >= 9, timeout=30)
    replaying = await SseConnection.open("127.0.0.1", port, "/crm-events?from=earliest")
    await replaying.events_until(lambda _: len(domain(replaying)) >= 9, timeout=30)
    for connection in (live, replaying):
        assert sorted(e["value"]["seq"] for e in domain(connection)) == list(range(9))
        connection.close()
    stack.wait_ready(port, timeout=30, path=ready_path)


async def layer_message(env: dict[str, str]) -> dict:
    """The next message in the broadcast group, as a web process would receive it."""
    layer = RedisChannelLayer(hosts=[env["REDIS_URL"]], prefix=env["REDIS_PREFIX"])
    channel = await layer.new_channel("version-probe.")
    await layer.group_add(broadcast.BROADCAST_GROUP, channel)
    try:
        async with asyncio.timeout(20):
            return await layer.receive(channel)
    finally:
        await layer.group_discard(broadcast.BROADCAST_GROUP, channel)


async def test_a_consumer_of_the_previous_release_feeds_this_web_process(
    stack, kafka, topic, previous_release
):
    old_consumer = stack.consumer("consumer-previous", cwd=previous_release)
    _, port = stack.daphne()
    stack.wait_ready(port)
    assert "v" not in await layer_message(stack.env), "really the previous release's messages"
    await deliveries_check(stack, kafka, topic, port)
    assert old_consumer.is_running()


async def test_this_consumer_feeds_a_web_process_of_the_previous_release(
    stack, kafka, topic, previous_release
):
    stack.consumer()
    old_daphne, port = stack.daphne("daphne-previous", cwd=previous_release, plain=True)
    stack.wait_ready(port, path="/readyz")
    assert http_get(port, "/status")[0] == 404, "really the previous release's web process"
    assert (await layer_message(stack.env))["v"] == broadcast.MESSAGE_VERSION
    await deliveries_check(stack, kafka, topic, port, ready_path="/readyz")
    assert old_daphne.is_running() and "Traceback" not in old_daphne.log_text()
