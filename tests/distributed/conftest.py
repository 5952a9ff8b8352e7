"""One local Ray cluster (2 CPUs) per test module, the test helpers shipped to its workers by
value (they are not an installed module); fixtures live in ``ray_helpers``."""

from ray_helpers import cluster  # noqa: F401
