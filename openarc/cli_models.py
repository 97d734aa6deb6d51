"""CLI commands that talk to a running daemon: ps, load, unload, devices, info. Tables for people, --json for tools."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from openarc.client import DaemonClient, DaemonError

WAIT_POLL_SECONDS = 0.5


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers], *([("-" if v is None else str(v)) for v in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells)


def _client(args: argparse.Namespace) -> DaemonClient:
    return DaemonClient(args.url, args.api_key)


def _print(args: argparse.Namespace, data: Any, human: str) -> None:
    print(json.dumps(data, indent=2) if args.json else human)


def cmd_ps(args: argparse.Namespace) -> int:
    models = _client(args).get("/openarc/models")["data"]
    rows = [
        [
            m["id"],
            m["status"],
            ",".join(r["device"] for r in m["replicas"]),
            ",".join(str(r["pid"]) for r in m["replicas"] if r["pid"]) or None,
            sum(r["active"] for r in m["replicas"]),
            sum(r["waiting"] for r in m["replicas"]),
            f"{max((r['kv_cache_usage'] for r in m['replicas']), default=0):.0f}%",
            m["source"],
        ]
        for m in models
    ]
    headers = ["ID", "STATUS", "DEVICES", "PIDS", "RUNNING", "WAITING", "KV CACHE", "SOURCE"]
    _print(args, models, table(headers, rows) if rows else "no models loaded")
    return 0


def _specs(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Model specs from SPEC (YAML or JSON mapping) or --from FILE (one mapping, a list, or a config's `models`)."""
    if args.spec is not None:
        data = yaml.safe_load(args.spec)
        base = Path.cwd()
    else:
        data = yaml.safe_load(Path(args.from_file).read_text())
        base = Path(args.from_file).resolve().parent
    if isinstance(data, dict) and "models" in data:
        data = data["models"]
    specs = data if isinstance(data, list) else [data]
    if not all(isinstance(spec, dict) for spec in specs):
        raise DaemonError("a model spec must be a mapping like {id: my-model, source: /models/x.gguf}")
    for spec in specs:
        # Paths are relative to where the spec was written, not to the daemon's config.
        source = spec.get("source")
        if isinstance(source, str) and "://" not in source and not Path(source).expanduser().is_absolute():
            spec["source"] = str((base / source).resolve())
    return specs


def cmd_load(args: argparse.Namespace) -> int:
    client = _client(args)
    loaded = [client.request("POST", "/openarc/models", spec) for spec in _specs(args)]
    if args.wait:
        for model in loaded:
            while (status := _status(client, model["id"]))["status"] == "loading":
                time.sleep(WAIT_POLL_SECONDS)
            model.update(status)
    lines = [f"{m['id']}: {m['status']}" + _replica_errors(m) for m in loaded]
    _print(args, loaded, "\n".join(lines))
    return 1 if any(m["status"] == "failed" for m in loaded) else 0


def _status(client: DaemonClient, model_id: str) -> dict[str, Any]:
    for model in client.get("/openarc/models")["data"]:
        if model["id"] == model_id:
            result: dict[str, Any] = model
            return result
    raise DaemonError(f"model {model_id!r} disappeared while loading")


def _replica_errors(model: dict[str, Any]) -> str:
    errors = [r["error"] for r in model.get("replicas", []) if r.get("error")]
    return f" ({'; '.join(errors)})" if errors else ""


def cmd_unload(args: argparse.Namespace) -> int:
    query = {"drain": "true" if args.drain else "false"}
    result = _client(args).request("DELETE", f"/openarc/models/{args.id}", query=query)
    _print(args, result, f"{result['id']}: unloaded")
    return 0


def cmd_devices(args: argparse.Namespace) -> int:
    client = _client(args)
    if args.name:
        device = client.get(f"/openarc/devices/{args.name}")
        rows = [
            [key, json.dumps(value) if not isinstance(value, str) else value]
            for key, value in device["properties"].items()
        ]
        _print(args, device, table(["PROPERTY", "VALUE"], rows))
        return 0
    devices = client.get("/openarc/devices")["data"]
    rows = [
        [
            d["name"],
            d.get("full_device_name"),
            d.get("device_type"),
            ",".join(d.get("optimization_capabilities") or []),
            None if d.get("memory_bytes") is None else f"{d['memory_bytes'] / 2**30:.1f} GiB",
        ]
        for d in devices
    ]
    _print(args, devices, table(["NAME", "FULL NAME", "TYPE", "CAPABILITIES", "MEMORY"], rows))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    info = _client(args).get(f"/openarc/models/{args.id}/info")
    architecture = info["architecture"]
    meta = architecture.get("metadata") or architecture.get("config") or {}
    tokenizer = info["tokenizer"] or {}
    rows = [
        ["id", info["id"]],
        ["status", info["status"]],
        ["source", info["source"]],
        ["format", architecture.get("format")],
        ["architecture", meta.get("general.architecture") or meta.get("model_type") or meta.get("architectures")],
        ["context length", info["context_length"]],
        ["vocabulary", tokenizer.get("vocab_size")],
        ["bos / eos", f"{tokenizer.get('bos_token')} / {tokenizer.get('eos_token')}" if tokenizer else None],
        ["chat template", "yes" if tokenizer.get("chat_template") else None],
        ["generation defaults", json.dumps(info["generation_defaults"])],
    ]
    _print(args, info, table(["FIELD", "VALUE"], rows))
    return 0


def add_commands(commands: Any) -> None:
    """Register the daemon commands on the `openarc` sub-command parser."""

    def daemon_command(name: str, help: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = commands.add_parser(name, help=help)
        parser.add_argument("--url", help="the daemon (default: $OPENARC_URL or http://127.0.0.1:8000)")
        parser.add_argument("--api-key", help="default: $OPENARC_ADMIN_KEY, else the first of $OPENARC_API_KEY")
        parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
        return parser

    ps = daemon_command("ps", "the daemon's models: status, devices, worker PIDs, load")
    ps.set_defaults(run=cmd_ps)
    load = daemon_command("load", "load a model into the running daemon")
    source = load.add_mutually_exclusive_group(required=True)
    source.add_argument("spec", nargs="?", help="a models entry as YAML/JSON, e.g. '{id: m, source: m.gguf}'")
    source.add_argument("--from", dest="from_file", help="a YAML file: one models entry, a list, or a config")
    load.add_argument("--wait", action="store_true", help="wait until the model is ready (or failed)")
    load.set_defaults(run=cmd_load)
    unload = daemon_command("unload", "unload a model; its workers exit")
    unload.add_argument("id")
    unload.add_argument("--drain", action="store_true", help="let running requests finish first")
    unload.set_defaults(run=cmd_unload)
    devices = daemon_command("devices", "the machine's OpenVINO devices, or every property of one")
    devices.add_argument("name", nargs="?")
    devices.set_defaults(run=cmd_devices)
    info = daemon_command("info", "a model's architecture, tokenizer, context length and defaults")
    info.add_argument("id")
    info.set_defaults(run=cmd_info)
