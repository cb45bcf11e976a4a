"""Pods as Linux network namespaces: one bridge per run, one namespace per pod with its own
10.x address on it, as a cluster's pod network gives each pod its own IP.

Every name carries this run's prefix (`alk<pid>`), so a crashed run's namespaces, bridge and
veths are recognised by the next run (its pid is gone) and removed. Needs root (CAP_NET_ADMIN);
`netns_unavailable()` says why when they cannot be made, for the test to skip with.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import subprocess
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

PREFIX = "alk"
NAME = re.compile(rf"^{PREFIX}(\d+)")
NOT_ROOT = "network namespaces need root (CAP_NET_ADMIN): run the cluster test as root, as CI does"
NO_IP = "the `ip` command (iproute2) is missing: apt-get install -y iproute2"
NETNS_REFUSED = "`ip netns add` is refused here ({error}): this kernel or container allows no netns"


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False, timeout=30)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {done.stderr.strip()}")
    return done


def netns_unavailable() -> str | None:
    """Why pods cannot be made here, or None when a namespace can be added and removed."""
    if os.geteuid() != 0:
        return NOT_ROOT
    probe = f"{PREFIX}{os.getpid()}probe"
    try:
        done = ip("netns", "add", probe, check=False)
    except FileNotFoundError:
        return NO_IP
    if done.returncode != 0:
        return NETNS_REFUSED.format(error=done.stderr.strip())
    ip("netns", "delete", probe, check=False)
    return None


def _pid_alive(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}")


def stale_remove() -> list[str]:
    """Remove the namespaces and links of runs whose process is gone; return their names."""
    removed: list[str] = []
    for name in ip("netns", "list").stdout.split():
        match = NAME.match(name)
        if match and not _pid_alive(int(match.group(1))):
            # A crashed run's pods outlive it (own sessions) and would keep the namespace alive.
            for pid in ip("netns", "pids", name, check=False).stdout.split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
            ip("netns", "delete", name, check=False)
            removed.append(name)
    for line in ip("-o", "link", "show").stdout.splitlines():
        link = line.split(":")[1].strip().split("@")[0]
        match = NAME.match(link)
        if match and not _pid_alive(int(match.group(1))):
            ip("link", "delete", link, check=False)  # a veth's peer goes with it
            removed.append(link)
    if removed:
        logger.warning("removed what a crashed cluster run left: %s", ", ".join(removed))
    return removed


def subnet_for(pid: int) -> str:
    """A /24 in 10.0.0.0/8 for this run, from its pid: distinct for concurrent runs on one machine
    (but for pids 12,800 apart, which `subnet_free` steps past)."""
    return f"10.{200 + pid % 50}.{(pid // 50) % 256}"


def subnet_free(pid: int) -> str:
    """This run's /24, or the next one no address of this machine is in."""
    taken = ip("-o", "-4", "addr", "show").stdout
    for step in range(50 * 256):
        subnet = subnet_for(pid + step * 50)
        if f" {subnet}." not in taken:
            return subnet
    raise RuntimeError("no free /24 in 10.200.0.0/10 for the pod network")


@dataclass
class Pod:
    """One network namespace with `eth0` at `address` on the run's bridge."""

    name: str
    address: str
    netns: str

    def command(self, argv: list[str]) -> list[str]:
        """`argv` run inside this pod's network namespace."""
        return ["ip", "netns", "exec", self.netns, *argv]


@dataclass
class PodNetwork:
    """The bridge (the node's side, `gateway`) and the pods on it, removed by `teardown()`."""

    run: str = field(default_factory=lambda: f"{PREFIX}{os.getpid()}")
    pods: list[Pod] = field(default_factory=list)
    _next_host: int = 10

    def __post_init__(self) -> None:
        self.subnet = subnet_free(os.getpid())
        self.gateway = f"{self.subnet}.1"
        self.bridge = f"{self.run}br"

    def setup(self) -> None:
        stale_remove()
        ip("link", "add", self.bridge, "type", "bridge")
        ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")

    def pod_add(self, name: str) -> Pod:
        """A new namespace with the next free address (a replacement pod gets a new IP, as on a cluster)."""
        host = self._next_host
        self._next_host += 1
        pod = Pod(name, f"{self.subnet}.{host}", f"{self.run}-{host}-{name}")
        veth = f"{self.run}v{host}"
        ip("netns", "add", pod.netns)
        self.pods.append(pod)
        ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", pod.netns)
        ip("link", "set", veth, "master", self.bridge, "up")
        for args in (("addr", "add", f"{pod.address}/24", "dev", "eth0"), ("link", "set", "lo", "up"),
                     ("link", "set", "eth0", "up"), ("route", "add", "default", "via", self.gateway)):
            ip("-n", pod.netns, *args)
        return pod

    def pod_remove(self, pod: Pod) -> None:
        ip("netns", "delete", pod.netns, check=False)  # its eth0 goes, and with it the veth
        self.pods.remove(pod)

    def teardown(self) -> None:
        for pod in list(self.pods):
            self.pod_remove(pod)
        ip("link", "delete", self.bridge, check=False)
