"""What a canary event is: the synthetic event `consume_events` sends through the real path.

The producing side is `crm_events.ingest.canary`; web processes only recognise canaries
(the hub's observer notes their arrival; streams hide them unless asked).
"""

from __future__ import annotations

from typing import Any

CANARY_HEADER = "aetherlink-canary"
CANARY_TYPE = "aetherlink.canary"

NO_CANARY_YET = "no canary event has reached this process yet"
CANARY_STALE = "last canary event arrived {age:.1f}s ago (CANARY_MAX_AGE is {max_age:g}s)"


def is_canary(payload: dict[str, Any]) -> bool:
    """True for a canary's client payload: the header and the value type both say so."""
    headers = payload.get("headers")
    return (
        payload.get("type") == CANARY_TYPE
        and isinstance(headers, dict)
        and headers.get(CANARY_HEADER) == "1"
    )
