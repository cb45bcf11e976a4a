"""Settings for the whole suite."""

from hypothesis import settings

# No per-example deadline: these machines are shared (2 cores, other jobs), and a slow example
# is not a failing one; correctness is what the properties check, speed is the benchmark's job.
settings.register_profile("suite", deadline=None)
settings.load_profile("suite")
