"""The SalesExec sandbox: a local HTTP server that speaks the whole API contract.

It serves deterministic, realistic data (a pure function of the config and its clock:
nothing after the clock is served, so today fills in as the day goes on), can inject
every fault a client must survive, and knows the ground truth of every report, so tests
and demos can compare what a client loaded with what the API holds.
"""

from salesexec_assets.sandbox.config import Faults, SandboxConfig, configure
from salesexec_assets.sandbox.data import SandboxData, UnknownLeadType
from salesexec_assets.sandbox.server import SandboxServer, run_sandbox

__all__ = [
    "Faults",
    "SandboxConfig",
    "SandboxData",
    "SandboxServer",
    "UnknownLeadType",
    "configure",
    "run_sandbox",
]
