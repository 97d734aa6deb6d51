"""The OpenVINO devices of this machine and their properties, as JSON-ready values (HTTP process side)."""

from __future__ import annotations

import enum
from functools import cache
from typing import Any

import openvino

# Reported in the device list: what tells devices apart (memory where the plugin knows it: GPUs).
_SUMMARY = ("FULL_DEVICE_NAME", "DEVICE_TYPE", "DEVICE_ARCHITECTURE", "OPTIMIZATION_CAPABILITIES")
_MEMORY = "GPU_DEVICE_TOTAL_MEM_SIZE"


class UnknownDevice(LookupError):
    pass


@cache
def _core() -> openvino.Core:
    return openvino.Core()


def _plain(value: Any) -> Any:
    """A property value as JSON: OpenVINO returns enums, element types, tuples and sets."""
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, openvino.Type):
        return value.get_type_name()
    name = getattr(value, "name", None)
    return name if isinstance(name, str) else str(value)


def _property(device: str, name: str) -> Any:
    try:
        return _plain(_core().get_property(device, name))
    except Exception:
        return None  # some properties cannot be read on some plugins (e.g. COMPATIBILITY_CHECK)


def list_devices() -> list[dict[str, Any]]:
    devices = []
    for name in _core().available_devices:
        supported = _core().get_property(name, "SUPPORTED_PROPERTIES")
        entry: dict[str, Any] = {"name": name}
        for key in _SUMMARY:
            entry[key.lower()] = _property(name, key) if key in supported else None
        entry["memory_bytes"] = _property(name, _MEMORY) if _MEMORY in supported else None
        devices.append(entry)
    return devices


def device_properties(name: str) -> dict[str, Any]:
    if name not in _core().available_devices:
        raise UnknownDevice(name)
    supported = _core().get_property(name, "SUPPORTED_PROPERTIES")
    return {key: _property(name, key) for key in supported if key != "SUPPORTED_PROPERTIES"}
