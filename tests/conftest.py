"""Shared pytest configuration.  Area-specific helpers live in tests/_<area>_util.py."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# CI machines have 2 cores: keep property tests small but meaningful.
settings.register_profile(
    "ci", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")
