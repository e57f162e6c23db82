"""hyprstream: real-time window aggregates and a DuckDB hot cache for metrics over Arrow Flight SQL.

The public surface is small: :func:`hyprstream.app.start` builds a serving node from a
:class:`hyprstream.config.Config`; errors live in :mod:`hyprstream.errors`.
"""

from hyprstream._version import __version__

__all__ = ["__version__"]
