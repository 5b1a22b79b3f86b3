"""The ingest benchmark (GitHub issue 6): ours vs dlt vs a minimal floor, same sandbox.

Run ``python benchmarks/ingest.py --help``; see ``benchmarks/README.md``.
"""
