"""The in-process engine benchmark kept loaded in a child process (`engine_bench --stdin`), run level by level.

Runners alternate it with servers: it idles between runs, so it never competes with what they measure.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


class EngineProcess:
    def __init__(self, model: Path, max_tokens: int) -> None:
        self._process = subprocess.Popen(
            [
                *(sys.executable, "-m", "benchmarks.engine_bench", "--model", str(model)),
                *("--stdin", "--max-tokens", str(max_tokens)),
            ],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdin is not None and self._process.stdout is not None
        self._stdin, self._stdout = self._process.stdin, self._process.stdout
        if self._stdout.readline().strip() != "ready":
            self.close()
            raise RuntimeError("the engine benchmark exited before it was ready")

    def run(self, concurrency: int, total: int, first_prompt: int) -> dict[str, Any]:
        """One closed-loop run of `total` requests, `concurrency` in flight, on prompts numbered from `first_prompt`."""
        self._stdin.write(f"{concurrency} {total} {first_prompt}\n")
        self._stdin.flush()
        result: dict[str, Any] = json.loads(self._stdout.readline())
        return result

    def close(self) -> None:
        self._stdin.close()
        self._process.wait(60)
