"""The package version, as a literal: reading it from package metadata at import costs start-up time."""

__version__ = "0.1.0"
