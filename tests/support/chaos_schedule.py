"""The chaos run's schedule: which fault, when and for how long, all drawn from one seed.

Steps come one at a time from `random.Random(seed)`, never from the clock, so a seed replays the
same schedule (with the same CHAOS_ACTIONS), and a longer run starts with a shorter run's steps.
A step normally starts `after_s` (at least MIN_SPACING) after every earlier fault healed and the
web processes answered `/status` again, so each recovery can be seen on its own. With
OVERLAP_CHANCE it starts `after_s` into the previous step's outage instead, on another part
(Redis down while a Daphne is killed, say); an overlapping step is never overlapped itself.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

ACTIONS = ("kafka", "redis", "consumer", "daphne", "record", "layer")
MIN_SPACING = 5.0  # seconds of calm after a fault healed, before the next one
SPREAD = 10.0  # plus up to this much
OVERLAP_CHANCE = 0.25
DOWN_S = {  # how long the broken part stays down before it is restarted, drawn in this range
    "kafka": (2.0, 10.0), "redis": (2.0, 10.0), "consumer": (0.0, 2.0), "daphne": (0.0, 3.0),
    "record": (0.0, 0.0), "layer": (0.0, 0.0),
}
KEYS = 7  # production keys acct-0..acct-6; a hostile record gets one of them or none

UNKNOWN_ACTION = "CHAOS_ACTIONS names unknown actions {}: choose from " + ",".join(ACTIONS)


@dataclass(frozen=True)
class Step:
    index: int
    action: str
    overlap: bool  # starts during the previous step's outage, not after it healed
    after_s: float  # after the previous step started (overlap) or after everything healed
    down_s: float
    target: int | str | None = None  # Daphne index, hostile record class, foreign message class
    partition: int | None = None  # where a hostile record goes
    key: int | None = None  # its key, acct-<key> (None: no key)

    def describe(self) -> dict[str, Any]:
        return {name: value for name, value in asdict(self).items() if value is not None}


def actions_parse(text: str | None) -> tuple[str, ...]:
    """`kafka,redis,...` (empty or None: all); raises ValueError naming unknown ones."""
    names = tuple(name.strip() for name in (text or "").split(",") if name.strip()) or ACTIONS
    unknown = sorted(set(names) - set(ACTIONS))
    if unknown:
        raise ValueError(UNKNOWN_ACTION.format(",".join(unknown)))
    return tuple(dict.fromkeys(names))


def schedule(
    seed: int, actions: Sequence[str], *, hostile: Sequence[str], foreign: Sequence[str], web: int = 2,
    partitions: int = 3,
) -> Iterator[Step]:
    """The endless schedule of `seed`; the run takes steps while its time lasts."""
    rng = random.Random(seed)
    previous: Step | None = None
    for index in itertools.count():
        overlap = (
            previous is not None and not previous.overlap and previous.down_s >= 1.0
            and len(actions) > 1 and rng.random() < OVERLAP_CHANCE
        )
        pool = [action for action in actions if not (overlap and previous and action == previous.action)]
        action = rng.choice(pool)
        low, high = DOWN_S[action]
        down_s = round(rng.uniform(low, high), 2)
        if overlap and previous is not None:
            after_s = round(rng.uniform(0.3, previous.down_s * 0.8), 2)
        else:
            after_s = round(MIN_SPACING + rng.uniform(0.0, SPREAD), 2)
        step = Step(index, action, overlap, after_s, down_s)
        if action == "daphne":
            step = Step(index, action, overlap, after_s, down_s, target=rng.randrange(web))
        elif action == "record":
            key = rng.randrange(KEYS + 1)
            step = Step(
                index, action, overlap, after_s, down_s, target=rng.choice(list(hostile)),
                partition=rng.randrange(partitions), key=None if key == KEYS else key,
            )
        elif action == "layer":
            step = Step(index, action, overlap, after_s, down_s, target=rng.choice(list(foreign)))
        yield step
        previous = step
