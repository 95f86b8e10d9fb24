"""tailguard: resilience for Python on a Rust core."""

from tailguard._native import __version__

__all__ = ["__version__"]
