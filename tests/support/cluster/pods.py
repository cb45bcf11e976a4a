"""Pods of the rendered Deployments, each in its own network namespace, with the kubelet's part
played: the container's command and environment, the readiness probe, and termination as the
kubelet does it (preStop, then SIGTERM, then SIGKILL when the grace period is over).
"""

from __future__ import annotations

import http.client
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from scripts.processes import ROOT, ServiceProcess, wait_until
from tests.support.cluster.manifests import Container
from tests.support.cluster.netns import Pod, PodNetwork

# The image's PATH: its entry scripts (docker/) and the Python environment with the package.
IMAGE_PATH = f"{ROOT / 'docker'}:{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin"


def pod_env(container: Container) -> dict[str, str]:
    """Only what the container would have: the manifests' environment on the image's."""
    return {"PATH": IMAGE_PATH, "HOME": str(Path.home()), "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1",
            **container.env}


def http_status(address: str, port: int, path: str, timeout: float = 3.0) -> int | None:
    """A probe's GET (Host: the pod's address, plain http); None when it cannot connect."""
    connection = http.client.HTTPConnection(address, port, timeout=timeout)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    except OSError:
        return None
    finally:
        connection.close()


@dataclass
class Termination:
    """How a pod ended: seconds from the start of termination to its exit, and whether it was killed."""

    seconds: float
    killed: bool
    exit_code: int | None


class RunningPod:
    def __init__(self, pod: Pod, container: Container, process: ServiceProcess) -> None:
        self.pod, self.container, self.process = pod, container, process

    @property
    def name(self) -> str:
        return self.pod.name

    @property
    def address(self) -> str:
        return self.pod.address

    def port(self, name: str) -> int:
        return self.container.ports[name]

    def endpoint(self, port_name: str) -> str:
        return f"{self.address}:{self.port(port_name)}"

    def ready(self) -> bool:
        path = self.container.readiness_path
        port = next(iter(self.container.ports.values()))
        return path is None or http_status(self.address, port, path) == 200

    def wait_ready(self, timeout: float = 90) -> None:
        wait_until(lambda: self.ready() or not self.process.is_running(), timeout=timeout,
                   what=f"pod {self.name} ready")
        assert self.process.is_running(), self.process.log_text()[-3000:]

    def terminate(self, leave: Callable[[RunningPod], None]) -> Termination:
        """As the kubelet on a pod deletion: `leave` (the endpoints controller takes the pod out of
        its Services meanwhile), preStop, SIGTERM, SIGKILL at the end of the grace period."""
        started = time.monotonic()
        leave(self)
        time.sleep(self.container.pre_stop_seconds)  # the preStop hook is a sleep: nothing to wait on
        self.process.signal(signal.SIGTERM)
        left = self.container.grace_seconds - (time.monotonic() - started)
        killed = not wait_until_or_false(lambda: not self.process.is_running(), timeout=max(left, 0))
        if killed:
            self.process.signal(signal.SIGKILL)
        code = self.process.stop(timeout=10)
        return Termination(time.monotonic() - started, killed, code)


def wait_until_or_false(condition: Callable[[], bool], *, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


class Kubelet:
    """Starts pods of the rendered containers on the pod network, and removes them."""

    def __init__(self, network: PodNetwork, log_dir: Path) -> None:
        self.network, self.log_dir = network, log_dir
        self.pods: list[RunningPod] = []
        self.started: list[str] = []  # every pod's name, the ended ones too

    def run(self, name: str, container: Container, *, command: list[str] | None = None) -> RunningPod:
        pod = self.network.pod_add(name)
        argv = pod.command(command or container.command)
        process = ServiceProcess(name, argv, pod_env(container), self.log_dir, cwd=ROOT)
        running = RunningPod(pod, container, process)
        self.pods.append(running)
        self.started.append(name)
        return running

    def job(self, name: str, container: Container, command: list[str], timeout: float = 180) -> str:
        """A Job's pod run to completion (the migration hook); its log, or an error with it."""
        running = self.run(name, container, command=command)
        try:
            wait_until(lambda: not running.process.is_running(), timeout=timeout, what=f"job {name} to end")
            code = running.process.stop()
            if code != 0:
                raise RuntimeError(f"job {name} failed ({code}):\n{running.process.log_text()[-3000:]}")
            return running.process.log_text()
        finally:
            self.remove(running)

    def remove(self, running: RunningPod) -> None:
        running.process.stop(timeout=10)
        self.network.pod_remove(running.pod)
        self.pods.remove(running)

    def teardown(self) -> None:
        for running in reversed(list(self.pods)):
            running.process.stop(timeout=10)
        self.pods.clear()

