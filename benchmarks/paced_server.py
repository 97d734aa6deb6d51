"""`openarc serve` with benchmarks/paced_worker.py in place of the real worker (no model is loaded)."""

from __future__ import annotations

import sys

from openarc import cli
from openarc.engine import replica

if __name__ == "__main__":
    replica.WORKER_MODULE = "benchmarks.paced_worker"
    sys.exit(cli.main())
