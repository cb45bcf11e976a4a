"""The service's settings with the benchmark's URLs added (only the bench Daphne uses this)."""

from aetherlink.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
