"""The package version, in one place (read by the package root and by catalogs without importing it)."""

__version__ = "0.1.0"
