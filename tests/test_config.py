from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from openarc.config import ConfigError, check_device, load_config, parse_config

ROOT = Path(__file__).resolve().parent.parent
DEVICES = ["CPU", "GPU.0", "GPU.1", "NPU"]


def parse(text: str, tmp_path: Path, devices: list[str] = DEVICES) -> object:
    (tmp_path / "model.gguf").write_bytes(b"GGUF")
    return parse_config(text, tmp_path / "config.yaml", lambda: devices)


def error(text: str, tmp_path: Path, devices: list[str] = DEVICES) -> str:
    with pytest.raises(ConfigError) as caught:
        parse(text, tmp_path, devices)
    return str(caught.value)


def test_defaults_and_relative_source(tmp_path: Path) -> None:
    config = parse("models:\n  - id: m\n    source: model.gguf\n", tmp_path)
    assert config.server.host == "127.0.0.1"  # type: ignore[attr-defined]
    assert config.server.port == 8000  # type: ignore[attr-defined]
    model = config.models[0]  # type: ignore[attr-defined]
    assert model.source == str((tmp_path / "model.gguf").resolve())
    assert model.devices == ["CPU"]
    assert model.scheduler.enable_prefix_caching is True
    assert config.server.model_cache_dir == str(Path("~/.cache/openarc/ov_cache").expanduser())  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("serverr: {}\n", "$: Object contains unknown field `serverr`"),
        ("server: {prot: 1}\n", "$.server: Object contains unknown field `prot`"),
        ("server: {port: eighty}\n", "$.server.port: Expected `int`, got `str`"),
        ("server: {port: 70000}\n", "$.server.port: Expected `int` <= 65535"),
        ("models: [{id: m}]\n", "$.models[0]: Object missing required field `source`"),
        (
            "models: [{id: m, source: model.gguf, devices: []}]\n",
            "$.models[0].devices: Expected `array` of length >= 1",
        ),
        (
            "models: [{id: m, source: model.gguf, scheduler: {max_num_seqs: 0}}]\n",
            "$.models[0].scheduler.max_num_seqs: Expected `int` >= 1",
        ),
        (
            "models: [{id: m, source: model.gguf, scheduler: {refill_wait_ms: -1}}]\n",
            "$.models[0].scheduler.refill_wait_ms: Expected `float` >= 0.0",
        ),
        (
            "models: [{id: m, source: model.gguf, stream_interval: 0}]\n",
            "$.models[0].stream_interval: Expected `int` >= 1",
        ),
        (
            "models: [{id: m, source: model.gguf, generation: {temperature: 3}}]\n",
            "$.models[0].generation.temperature: Expected `float` <= 2.0",
        ),
        ("models: [{id: m, source: model.gguf, task: tts}]\n", "$.models[0].task: Invalid enum value 'tts'"),
        ("models: [{id: m, source: nope.gguf}]\n", "$.models[0].source: no such file or folder"),
        ("models: [{id: m, source: .}]\n", "holds no openvino_model.xml"),
        ("models: [{id: m, source: config.yaml}]\n", "expected an OpenVINO IR folder or a .gguf file"),
        (
            "models: [{id: m, source: model.gguf, devices: [CPU, GPU.2]}]\n",
            "$.models[0].devices[1]: device 'GPU.2' is not available on this machine "
            "(available: CPU, GPU.0, GPU.1, NPU)",
        ),
        ("models: [{id: m, source: model.gguf}, {id: m, source: model.gguf}]\n", "$.models[1].id: duplicate model id"),
        (
            "models: [{id: m, source: model.gguf, chat_template: nofile.jinja}]\n",
            "$.models[0].chat_template: not a Jinja template and no such file",
        ),
        ("models: [\n", "not valid YAML"),
    ],
)
def test_errors_name_file_path_and_expectation(tmp_path: Path, text: str, expected: str) -> None:
    (tmp_path / "config.yaml").write_text(text)
    message = error(text, tmp_path)
    assert message.startswith(str(tmp_path / "config.yaml") + ": ")
    assert expected in message


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    message = error("models: [{id: a, source: x.gguf, devices: [TPU]}, {id: b, source: y.gguf}]\n", tmp_path)
    assert len(message.splitlines()) == 3


@pytest.mark.parametrize(
    ("device", "ok"),
    [
        ("CPU", True),
        ("GPU", True),
        ("GPU.1", True),
        ("GPU.2", False),
        ("NPU", True),
        ("TPU", False),
        ("AUTO", True),
        ("AUTO:GPU.1,CPU", True),
        ("AUTO:GPU.3,CPU", False),
        ("HETERO:GPU.0,CPU", True),
        ("HETERO", False),
        ("MULTI:GPU.0,GPU.1", True),
        ("MULTI:NPU,FPGA", False),
    ],
)
def test_device_names(device: str, ok: bool) -> None:
    assert (check_device(device, DEVICES) is None) == ok


def test_gpu_is_refused_on_a_cpu_only_machine() -> None:
    assert check_device("GPU", ["CPU"]) == "device 'GPU' is not available on this machine (available: CPU)"


def test_home_relative_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "model.gguf").write_bytes(b"GGUF")
    config = parse_config("models: [{id: m, source: ~/model.gguf}]\n", Path("/elsewhere/config.yaml"), lambda: ["CPU"])
    assert config.models[0].source == str(tmp_path / "model.gguf")


def test_chat_template_file_and_inline(tmp_path: Path) -> None:
    (tmp_path / "t.jinja").write_text("{{ messages[0]['content'] }}")
    config = parse("models: [{id: m, source: model.gguf, chat_template: t.jinja}]\n", tmp_path)
    assert config.models[0].chat_template == "{{ messages[0]['content'] }}"  # type: ignore[attr-defined]
    config = parse(
        "models: [{id: m, source: model.gguf, chat_template: '{% for m in messages %}{% endfor %}'}]\n", tmp_path
    )
    assert config.models[0].chat_template.startswith("{%")  # type: ignore[attr-defined]


def test_example_config_is_valid_but_for_the_models_this_machine_lacks(smollm2_gguf: Path) -> None:
    # example.yaml documents a multi-GPU and an NPU deployment: only their model folders may be missing here.
    with pytest.raises(ConfigError) as caught:
        load_config(ROOT / "configs" / "example.yaml", lambda: DEVICES)
    problems = str(caught.value).splitlines()
    assert len(problems) == 2
    assert "$.models[1].source: no such file or folder: /models/Qwen2.5-7B" in problems[0]
    assert "$.models[2].source: no such file or folder: /models/Phi-3.5" in problems[1]
    with pytest.raises(ConfigError, match=r"models\[1\]\.devices\[0\]: device 'GPU.0' is not available"):
        load_config(ROOT / "configs" / "example.yaml", lambda: ["CPU"])


def test_demo_config_is_valid(smollm2_gguf: Path) -> None:
    demo = load_config(ROOT / "configs" / "demo.yaml", lambda: ["CPU"])
    assert demo.models[0].source == str(smollm2_gguf)
    # A newcomer's first curl sets no max_tokens: the demo must bound it.
    assert demo.models[0].generation.max_tokens == 512


def test_check_config_command(tmp_path: Path) -> None:
    (tmp_path / "model.gguf").write_bytes(b"GGUF")
    good = tmp_path / "good.yaml"
    good.write_text("models: [{id: m, source: model.gguf}]\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [{id: m, source: model.gguf, devcies: [CPU]}]\n")
    ok = subprocess.run([sys.executable, "-m", "openarc", "check-config", str(good)], capture_output=True, text=True)
    assert ok.returncode == 0 and "OK (m on CPU)" in ok.stdout
    failed = subprocess.run([sys.executable, "-m", "openarc", "check-config", str(bad)], capture_output=True, text=True)
    assert failed.returncode == 2
    assert f"{bad}: $.models[0]: Object contains unknown field `devcies`" in failed.stderr
    assert "Traceback" not in failed.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "openarc", "check-config", str(tmp_path / "nope.yaml")], capture_output=True, text=True
    )
    assert missing.returncode == 2 and "cannot read config" in missing.stderr


def test_tls_files_are_checked_up_front(tmp_path: Path) -> None:
    import trustme

    assert "set both or neither" in error("server: {tls_certfile: cert.pem}\n", tmp_path)
    missing = error("server: {tls_certfile: cert.pem, tls_keyfile: key.pem}\n", tmp_path)
    assert f"$.server.tls_certfile: no such file: {tmp_path / 'cert.pem'}" in missing
    assert "$.server.tls_keyfile: no such file" in missing
    (tmp_path / "cert.pem").write_text("not a certificate")
    (tmp_path / "key.pem").write_text("not a key")
    bad = error("server: {tls_certfile: cert.pem, tls_keyfile: key.pem}\n", tmp_path)
    assert "$.server.tls_certfile: cannot use this certificate and key" in bad
    cert = trustme.CA().issue_cert("127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    config = parse("server: {tls_certfile: cert.pem, tls_keyfile: key.pem}\n", tmp_path)
    assert config.server.tls_keyfile == str(tmp_path / "key.pem")  # type: ignore[attr-defined]


def test_request_timeout_defaults_and_limits(tmp_path: Path) -> None:
    assert parse("{}\n", tmp_path).server.request_timeout == 600.0  # type: ignore[attr-defined]
    assert parse("server: {request_timeout: null}\n", tmp_path).server.request_timeout is None  # type: ignore[attr-defined]
    assert "$.server.request_timeout: Expected `float` > 0.0" in error("server: {request_timeout: 0}\n", tmp_path)


def test_speculative_decoding_and_parsers(tmp_path: Path) -> None:
    draft = tmp_path / "draft"
    draft.mkdir()
    (draft / "openvino_model.xml").write_text("<net/>")
    config = parse(
        "models: [{id: m, source: model.gguf, tool_parser: llama3_json, reasoning_parser: none,"
        " speculative: {draft: draft, num_assistant_tokens: 3}}]\n",
        tmp_path,
    )
    model = config.models[0]  # type: ignore[attr-defined]
    assert model.speculative.draft == str(draft.resolve())
    assert (model.tool_parser, model.reasoning_parser) == ("llama3_json", "none")
    assert parse("models: [{id: m, source: model.gguf, speculative: {prompt_lookup: true}}]\n", tmp_path)

    spec = "models: [{id: m, source: model.gguf, speculative: {%s}}]\n"
    assert "set either `draft`" in error(spec % "", tmp_path)
    assert "set either `draft`" in error(spec % "draft: draft, prompt_lookup: true", tmp_path)
    assert "exclude each other" in error(
        spec % "draft: draft, num_assistant_tokens: 2, assistant_confidence_threshold: 0.5", tmp_path
    )
    assert "$.models[0].speculative.draft: " in error(spec % "draft: model.gguf", tmp_path)
    assert "$.models[0].speculative.draft_device: device 'GPU.3'" in error(
        spec % "draft: draft, draft_device: GPU.3", tmp_path
    )
    assert "max_ngram_size: only for prompt_lookup" in error(spec % "draft: draft, max_ngram_size: 2", tmp_path)
    assert "tool_parser" in error("models: [{id: m, source: model.gguf, tool_parser: xml}]\n", tmp_path)


def test_hub_sources_keep_alive_and_models_dir(tmp_path: Path) -> None:
    config = parse(
        "server: {models_dir: hub}\n"
        "models: [{id: m, source: 'hf://org/repo@v1', filename: m.gguf, keep_alive: 5m, idle_reload: refuse}]\n",
        tmp_path,
    )
    model = config.models[0]  # type: ignore[attr-defined]
    assert (model.source, model.filename, model.keep_alive_seconds) == ("hf://org/repo@v1", "m.gguf", 300.0)
    assert config.server.models_dir == str(tmp_path / "hub")  # type: ignore[attr-defined]
    assert parse("models: [{id: m, source: model.gguf}]\n", tmp_path).models[0].keep_alive_seconds is None  # type: ignore[attr-defined]
    assert "expected hf://OWNER/REPO" in error("models: [{id: m, source: 'hf://just-a-name'}]\n", tmp_path)
    assert "$.models[0].filename: only for hf:// sources" in error(
        "models: [{id: m, source: model.gguf, filename: x.gguf}]\n", tmp_path
    )
    assert "$.models[0].keep_alive: expected a duration" in error(
        "models: [{id: m, source: model.gguf, keep_alive: later}]\n", tmp_path
    )
