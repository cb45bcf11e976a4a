"""The open-files limit of the benchmark and its load clients: 20,000 streams are 20,000 sockets."""

from __future__ import annotations

import resource

NOFILE_WANT = 1 << 16


def nofile_raise() -> None:
    """Open files up to the hard limit, or past it to NOFILE_WANT where allowed (root, or
    CAP_SYS_RESOURCE): the web process and load clients started from here inherit it, and
    20,000 streams need more than the common hard limit of 20,000 or less."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < NOFILE_WANT:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE_WANT, NOFILE_WANT))
            return
        except (ValueError, OSError):
            pass  # not allowed: the hard limit it is
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
