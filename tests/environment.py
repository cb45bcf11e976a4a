"""Loaded with `-p` before pytest-django imports the settings: the suite's environment."""

import os

# The suite must not depend on a developer's .env or exported variables.
os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-secret-key")
os.environ["DJANGO_DEBUG"] = "false"
