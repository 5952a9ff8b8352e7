"""Fixtures come from lipsync_helpers.py (helpers there are imported by name: a module called conftest is
ambiguous when the whole suite runs)."""

from lipsync_helpers import *  # noqa: F401,F403
