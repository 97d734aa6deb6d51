"""The deployment files: the Dockerfile lints clean, the systemd unit verifies, their configs are valid."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from openarc.config import ConfigError, parse_config

ROOT = Path(__file__).resolve().parent.parent


def test_dockerfile_lints_clean() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run([str(hadolint), str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_copies_files_that_exist() -> None:
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_unit_verifies(tmp_path: Path) -> None:
    unit = (ROOT / "deploy" / "openarc.service").read_text()
    # The unit names a user and a path of the target host; verify it against this machine's equivalents.
    unit = unit.replace("/opt/openarc/bin/openarc", str(Path(sys.executable).parent / "openarc"))
    unit = re.sub(r"^(User|Group)=openarc$", r"\1=root", unit, flags=re.MULTILINE)
    path = tmp_path / "openarc.service"
    path.write_text(unit)
    result = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "openarc.service" not in result.stderr, result.stderr


@pytest.mark.parametrize("name", ["configs/docker.yaml", "deploy/openarc.yaml"])
def test_deployment_configs_fail_only_for_the_absent_model(name: str) -> None:
    path = ROOT / name
    with pytest.raises(ConfigError) as caught:
        parse_config(path.read_text(), path, lambda: ["CPU"])
    assert str(caught.value).count("\n") == 0
    assert "$.models[0].source: no such file or folder" in str(caught.value)
