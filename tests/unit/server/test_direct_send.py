"""The direct socket send's start-up probe, against the Twisted and Daphne installed here."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version

from packaging.specifiers import SpecifierSet

from crm_events.server.direct_send import direct_send_missing
from tests.support.processes import ROOT


def test_the_installed_twisted_has_everything_the_fast_path_reads():
    assert direct_send_missing() == []


def test_a_twisted_without_what_it_reads_turns_the_fast_path_off():
    """A release that renamed what the fast path reads: the probe names each missing piece."""
    transport = type("RenamedTransport", (), {"connected": 0, "getHandle": None})
    request = type("RenamedRequest", (), {"startedWriting": 0})
    assert direct_send_missing(transport_class=transport, request_class=request) == [
        "RenamedTransport.dataBuffer", "RenamedTransport.offset", "RenamedTransport._tempDataLen",
        "RenamedTransport._writeDisconnected", "RenamedTransport.disconnecting",
        "RenamedTransport.write", "RenamedTransport.bufferSize",
        "RenamedRequest.chunked", "RenamedRequest.finished", "RenamedRequest.sentLength",
        "RenamedRequest.registerProducer",
    ]


def test_the_pinned_daphne_and_twisted_are_within_the_bounds_the_probe_was_tested_with():
    """pyproject bounds daphne and twisted above (we read Twisted's internals); the versions
    installed from constraints.txt, which the probe above accepts, must lie within them."""
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for name in ("daphne", "twisted"):
        spec = next(d for d in dependencies if re.match(rf"{name}\b", d, re.I))
        bounds = SpecifierSet(re.sub(r"^[\w-]+(\[[^\]]*\])?", "", spec.split(";")[0]).strip())
        assert any(s.operator in ("<", "<=", "~=", "==") for s in bounds), f"{name} has no upper bound"
        assert version(name) in bounds, (name, version(name), str(bounds))
