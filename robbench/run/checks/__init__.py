"""Checks that expose false robustness, one function per check; recorded in ``manifest.checks``."""
