"""What every part of the metrics package shares, kept apart so that each may import it without a cycle."""

from __future__ import annotations


class MetricUnavailable(Exception):
    """This metric cannot be computed for this model or dataset; the message says why and what would help."""
