"""What a web process holding tens of thousands of streams needs from the operating system.

- Open files: every stream is a socket. The soft `RLIMIT_NOFILE` (often 1,024) is raised to
  the hard limit at start, and one log line says what it is, so a process that can hold
  fewer connections than planned says so before the first one is refused.
- The listen backlog: Twisted listens with a backlog of 50, so a burst of clients (every
  browser reconnecting after a deploy) overflows the accept queue and waits for SYN
  retransmissions, seconds each. Every `tcp:` or `unix:` endpoint Daphne is given gets
  `WEB_LISTEN_BACKLOG` (the kernel caps it at `net.core.somaxconn`) unless it names its
  own; an inherited socket (`fd:`) keeps the backlog it was created with.
"""

from __future__ import annotations

import logging
import resource

logger = logging.getLogger(__name__)

NOFILE_RAISED = "open files limit raised from %d to %d (the hard limit): at most that many connections"
NOFILE_KEPT = "open files limit %d (already the hard limit): at most that many connections"
NOFILE_FAILED = "open files limit %d kept, raising it to the hard limit %d failed: %s"
BACKLOG_KINDS = ("tcp:", "unix:")


def nofile_raise() -> int:
    """Raise this process's soft open-files limit to its hard limit; log one line; return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == hard:
        logger.info(NOFILE_KEPT, soft)
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as error:  # a hard limit of `unlimited` the kernel refuses, say
        logger.warning(NOFILE_FAILED, soft, hard, error)
        return soft
    logger.info(NOFILE_RAISED, soft, hard)
    return hard


def backlog_add(endpoints: list[str], backlog: int) -> list[str]:
    """Daphne's endpoint descriptions, each `tcp:`/`unix:` one with `backlog=` unless it has one."""
    return [
        f"{description}:backlog={backlog}"
        if description.startswith(BACKLOG_KINDS) and ":backlog=" not in description
        else description
        for description in endpoints
    ]
