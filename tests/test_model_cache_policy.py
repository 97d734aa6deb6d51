"""Which devices get the server-wide OpenVINO model cache (CACHE_DIR)."""

from __future__ import annotations

from openarc.config import ModelConfig
from openarc.engine.engine import _load_spec


def test_the_server_cache_goes_to_every_device_but_cpu() -> None:
    model = ModelConfig(id="m", source="m.gguf")
    for device in ("GPU.0", "GPU.1", "NPU", "AUTO:GPU,CPU"):
        assert _load_spec(model, device, "/cache", None).properties == {"CACHE_DIR": "/cache"}, device
    assert _load_spec(model, "CPU", "/cache", None).properties == {}
    assert _load_spec(model, "GPU.0", None, None).properties == {}


def test_a_model_own_cache_dir_is_passed_on_any_device() -> None:
    model = ModelConfig(id="m", source="m.gguf", properties={"CACHE_DIR": "/mine", "NUM_STREAMS": 1})
    for device in ("CPU", "GPU.0"):
        assert _load_spec(model, device, "/cache", None).properties == {"CACHE_DIR": "/mine", "NUM_STREAMS": 1}
