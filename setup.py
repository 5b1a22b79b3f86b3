from setuptools import setup

# Metadata lives in pyproject.toml; this file exists for tools that call setup.py.
setup()
