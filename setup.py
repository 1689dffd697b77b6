"""Kept for the native extension a later release may add; all metadata lives in pyproject.toml."""

from setuptools import setup

setup()
