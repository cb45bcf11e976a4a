"""Which Python objects an idle stream keeps, and what keeps one of them alive.

`census_start()` counts the garbage collector's objects by type; `census_stop(per, holders)`
counts again and reports the growth per stream, by type, plus, for each type named in
`holders`, the chain of referrers from one surviving instance up to the first object
that is not a container (a frame, a task, a module): the answer to "who still holds
the request?" that tracemalloc's allocation sites cannot give.
"""

from __future__ import annotations

import asyncio
import gc
import types
from collections import Counter, deque
from typing import Any

CENSUS_TOP = 40
CHAIN_VISITS = 20_000
RUNNING = (asyncio.Task, types.FrameType, types.CoroutineType, types.AsyncGeneratorType, types.ModuleType)
_counted: Counter[str] | None = None


def _type_name(obj: object) -> str:
    kind = type(obj)
    return f"{kind.__module__}.{kind.__qualname__}"


def _census() -> Counter[str]:
    gc.collect()
    return Counter(_type_name(obj) for obj in gc.get_objects())


def census_start() -> None:
    global _counted
    _counted = _census()


def census_stop(per: int, holders: list[str]) -> dict[str, Any]:
    global _counted
    if _counted is None:
        return {"started": False}
    grown = _census() - _counted
    _counted = None
    return {
        "objects_per": round(sum(grown.values()) / per, 1),
        "by_type": [{"type": name, "per": round(count / per, 2)}
                    for name, count in grown.most_common(CENSUS_TOP)],
        "holders": {name: _holder_chain(name) for name in holders},
    }


def _holder_chain(type_name: str) -> list[str]:
    """The shortest chain of referrers from one surviving instance to what runs (a task,
    coroutine, frame or module), breadth first, leaving out the instance's own parts
    (its dict, the objects it refers to: the cycles it is in) and the census' own lists."""
    found = [obj for obj in gc.get_objects() if _type_name(obj).endswith(type_name)]
    if not found:
        return []
    target = found[-1]
    scratch: list[object] = [found]  # lists made here refer to everything: never followed
    ignored = {id(found), id(scratch)} | _parts(target)
    queue: deque[tuple[object, list[str]]] = deque([(target, [])])
    ignored.add(id(queue))
    visited = {id(target)}
    while queue and len(visited) < CHAIN_VISITS:
        current, path = queue.popleft()
        referrers = gc.get_referrers(current)
        scratch.append(referrers)
        ignored.add(id(referrers))
        for ref in referrers:
            if id(ref) in ignored or id(ref) in visited or _ours(ref):
                continue
            visited.add(id(ref))
            step = [*path, _describe(ref)]
            if isinstance(ref, RUNNING):
                return step
            queue.append((ref, step))
    return ["(no running holder found)"]


def _parts(obj: object) -> set[int]:
    """Ids of what `obj` refers to, two levels down."""
    parts: set[int] = set()
    level = [obj]
    for _ in range(2):
        level = [part for item in level for part in gc.get_referents(item)]
        parts |= {id(part) for part in level if not isinstance(part, RUNNING)}
    return parts


def _ours(ref: object) -> bool:
    return isinstance(ref, types.FrameType) and ref.f_code.co_filename == __file__


def _describe(obj: object) -> str:
    if isinstance(obj, types.FrameType):
        return f"frame {obj.f_code.co_qualname} {obj.f_code.co_filename}:{obj.f_lineno}"
    if isinstance(obj, (types.CoroutineType, types.AsyncGeneratorType)):
        return f"{type(obj).__name__} {obj.__qualname__}"
    if isinstance(obj, dict):
        return f"dict keys={list(obj)[:6]}"
    return _type_name(obj)
