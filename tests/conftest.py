from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server import Server, run_server, write_config

ROOT = Path(__file__).resolve().parent.parent


def _model(target: str) -> Path:
    """Fetch or build a test model with the project's own script (a no-op once cached in models/)."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "models.py"), target], check=True, capture_output=True, text=True
    ).stdout
    return Path(out.strip().rsplit(": ", 1)[1])


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    return _model("smollm2")


@pytest.fixture(scope="session")
def smollm2_ir() -> Path:
    return _model("smollm2-ir")


@pytest.fixture(scope="session")
def tiny_vlm() -> Path:
    """A random-weight Qwen2-VL in OpenVINO IR, built once (torch in its own venv) by scripts/build_tiny_vlm.py."""
    out = subprocess.run(
        ["python3", str(ROOT / "scripts" / "build_tiny_vlm.py")], check=True, capture_output=True, text=True
    ).stdout
    return Path(out.strip().splitlines()[-1].rsplit(": ", 1)[1])


@pytest.fixture(scope="session")
def server(smollm2_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One daemon serving SmolLM2 on the CPU, shared by the tests that only need a plain model."""
    tmp = tmp_path_factory.mktemp("server")
    config = write_config(tmp / "config.yaml", [{"id": "smollm2", "source": str(smollm2_gguf), "devices": ["CPU"]}])
    with run_server(config, tmp) as running:
        yield running
