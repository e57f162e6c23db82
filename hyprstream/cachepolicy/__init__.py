"""Layer 3, cache policy: which cached entries to drop, as a pure function of (entries, now)."""

from hyprstream.cachepolicy._policy import CachePolicy, Entry, evictions

__all__ = ["CachePolicy", "Entry", "evictions"]
