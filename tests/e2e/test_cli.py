"""The `openarc` CLI against a real daemon, and `openarc pull` / hf:// sources against a loopback Hugging Face Hub."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fake_hub import FakeHub, running_hub
from tests.server import Server, free_port, run_server, write_config

GGUF_REPO = "openarc-test/smollm2-gguf"
IR_REPO = "openarc-test/smollm2-ir"


def openarc(*args: str, env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "openarc", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    "command",
    [["ps"], ["load", "{id: x, source: y.gguf}"], ["unload", "x"], ["devices"], ["devices", "CPU"], ["info", "x"]],
)
def test_daemon_commands_say_when_the_daemon_is_down(command: list[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = openarc(*command, "--url", url)
    assert result.returncode == 1
    assert f"cannot reach the daemon at {url}" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def daemon(smollm2_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("cli")
    config = write_config(tmp / "config.yaml", [{"id": "first", "source": str(smollm2_gguf)}], {"api_keys": ["k1"]})
    with run_server(config, tmp, api_key="k1") as server:
        yield server


def test_ps_load_info_devices_unload(daemon: Server, smollm2_gguf: Path, tmp_path: Path) -> None:
    common = ["--url", daemon.url, "--api-key", "k1"]
    ps = openarc("ps", *common)
    assert ps.returncode == 0, ps.stderr
    header, row = ps.stdout.splitlines()[:2]
    assert header.split()[:4] == ["ID", "STATUS", "DEVICES", "PIDS"]
    assert row.split()[:3] == ["first", "ready", "CPU"]
    assert [m["id"] for m in json.loads(openarc("ps", "--json", *common).stdout)] == ["first"]

    # A spec file with a path relative to the file itself.
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "m.gguf").symlink_to(smollm2_gguf)
    spec = tmp_path / "second.yaml"
    spec.write_text("id: second\nsource: models/m.gguf\n")
    load = openarc("load", "--from", str(spec), "--wait", *common)
    assert load.returncode == 0, load.stderr
    assert load.stdout.strip() == "second: ready"

    info = openarc("info", "second", *common)
    assert info.returncode == 0, info.stderr
    assert "llama" in info.stdout and "8192" in info.stdout and "<|im_end|>" in info.stdout
    info_json = json.loads(openarc("info", "second", "--json", *common).stdout)
    assert info_json["tokenizer"]["vocab_size"] == 49152

    devices = openarc("devices", *common)
    assert devices.returncode == 0 and devices.stdout.splitlines()[1].startswith("CPU")
    cpu = openarc("devices", "CPU", *common)
    assert "FULL_DEVICE_NAME" in cpu.stdout
    missing_device = openarc("devices", "GPU.9", *common)
    assert missing_device.returncode == 1 and "404" in missing_device.stderr

    duplicate = openarc("load", f"{{id: second, source: {smollm2_gguf}}}", *common)
    assert duplicate.returncode == 1 and "409" in duplicate.stderr
    bad = openarc("load", "{id: third, source: nowhere.gguf}", *common)
    assert bad.returncode == 1 and "400" in bad.stderr and "(source)" in bad.stderr

    unload = openarc("unload", "second", "--drain", *common)
    assert unload.returncode == 0 and unload.stdout.strip() == "second: unloaded"
    again = openarc("unload", "second", *common)
    assert again.returncode == 1 and "404" in again.stderr
    wrong_key = openarc("ps", "--url", daemon.url, "--api-key", "nope")
    assert wrong_key.returncode == 1 and "401" in wrong_key.stderr


@pytest.fixture()
def hub(smollm2_gguf: Path, smollm2_ir: Path) -> Iterator[FakeHub]:
    with running_hub() as fake:
        fake.add(GGUF_REPO, smollm2_gguf.parent, [smollm2_gguf])
        fake.add(IR_REPO, smollm2_ir)
        yield fake


def test_pull_resumes_a_cut_download_and_serves_offline_from_the_cache(
    hub: FakeHub, smollm2_gguf: Path, smollm2_ir: Path, tmp_path: Path
) -> None:
    env = {"HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_DISABLE_XET": "1"}
    name = smollm2_gguf.name
    # The connection drops after 10 MiB: the download picks up where it stopped, with a ranged request.
    hub.cut_next(GGUF_REPO, name, after=10 * 2**20)
    pulled = openarc("pull", GGUF_REPO, "--filename", name, env=env)
    assert pulled.returncode == 0, pulled.stderr
    assert "resume" in pulled.stderr
    path = Path(pulled.stdout.strip().splitlines()[-1])
    assert path.name == name and sha256(path) == sha256(smollm2_gguf)
    ranges = [r for repo, file, r in hub.downloads if (repo, file) == (GGUF_REPO, name)]
    assert ranges[0] is None and ranges[1] is not None and ranges[1].startswith("bytes=10485760-")
    assert "%" in pulled.stderr, "a progress bar"
    # Cached: a second pull downloads nothing.
    assert openarc("pull", GGUF_REPO, "--filename", name, env=env).stdout.strip().splitlines()[-1] == str(path)
    assert len([d for d in hub.downloads if d[1] == name]) == 2

    offline = openarc("pull", GGUF_REPO, "--filename", name, env={**env, "HF_HUB_OFFLINE": "1"})
    assert offline.returncode == 0, offline.stderr
    assert Path(offline.stdout.strip().splitlines()[-1]) == path
    uncached = openarc("pull", IR_REPO, env={**env, "HF_HUB_OFFLINE": "1"})
    assert uncached.returncode == 1 and "not in the cache" in uncached.stderr

    folder = openarc("pull", IR_REPO, "--models-dir", str(tmp_path / "models"), env=env)
    assert folder.returncode == 0, folder.stderr
    ir = Path(folder.stdout.strip().splitlines()[-1])
    assert ir.is_relative_to(tmp_path / "models")
    assert sha256(ir / "openvino_model.bin") == sha256(smollm2_ir / "openvino_model.bin")


def test_hf_sources_load_through_the_hub(hub: FakeHub, tmp_path: Path) -> None:
    env = {"HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_XET": "1"}
    models = [
        {"id": "from-hub", "source": f"hf://{GGUF_REPO}", "filename": "SmolLM2-135M-Instruct.Q4_1.gguf"},
        {"id": "ir-from-hub", "source": f"hf://{IR_REPO}@main"},
    ]
    config = write_config(tmp_path / "config.yaml", models, {"models_dir": str(tmp_path / "models")})
    with run_server(config, tmp_path, env=env) as server:
        for model in ("from-hub", "ir-from-hub"):
            answer = server.client().chat.completions.create(
                model=model, messages=[{"role": "user", "content": "Hi"}], max_tokens=3
            )
            assert answer.choices[0].message.content
        with server.http() as http:
            info = http.get("/openarc/models/from-hub/info").json()
        assert info["source"] == f"hf://{GGUF_REPO}"
        assert Path(info["local_path"]).is_relative_to(tmp_path / "models")
        assert info["architecture"]["metadata"]["general.architecture"] == "llama"


def test_convert_builds_the_optimum_command() -> None:
    printed = openarc(
        "convert", "Qwen/Qwen2.5-1.5B-Instruct", "out", "--group-size", "128", "--ratio", "0.8", "--sym", "--print-only"
    )
    assert printed.returncode == 0
    assert printed.stdout.strip() == (
        "optimum-cli export openvino --model Qwen/Qwen2.5-1.5B-Instruct --weight-format int4 "
        "--group-size 128 --ratio 0.8 --sym out"
    )
    awq = openarc("convert", "m", "out", "--awq")
    assert awq.returncode == 2 and "--dataset" in awq.stderr
    fp16 = openarc("convert", "m", "out", "--weight-format", "fp16", "--group-size", "64")
    assert fp16.returncode == 2
    run = openarc("convert", "m", "out", "--weight-format", "int8", env={"PATH": "/nonexistent"})
    assert run.stdout.startswith("optimum-cli export openvino --model m --weight-format int8")
    assert run.returncode == 1 and "optimum-cli is not installed" in run.stderr
