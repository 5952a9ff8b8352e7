"""Fixtures come from bridge_helpers.py (helpers there are imported by name: a module called conftest is
ambiguous when the whole suite runs)."""

from bridge_helpers import *  # noqa: F401,F403
