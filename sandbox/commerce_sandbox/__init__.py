"""A faithful, deterministic emulator of the Next Commerce and Clover export APIs.

Used by the demo, the end-to-end tests, the benchmark and the fault-matrix script::

    from commerce_sandbox import SandboxServer, SandboxConfig

    with SandboxServer(SandboxConfig(port=0, processing_delay=0.05)) as sb:
        sb.api_url, sb.clover_url          # point the tap here
        sb.control(fault_500=2)            # inject faults at runtime
        sb.truth_keys("nextcommerce", "order_list", start, end)
        sb.stats()

Command line: ``tap-commerce-exports-sandbox --port 8000`` (see ``__main__``).
Stdlib only.
"""

from commerce_sandbox.config import SandboxConfig
from commerce_sandbox.server import SandboxServer

__all__ = ["SandboxConfig", "SandboxServer"]
