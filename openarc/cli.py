"""`openarc` command line: serve or check a config; manage a running daemon (ps, load, unload, devices, info)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import yaml

from openarc import __version__, cli_pull, convert, event_loop
from openarc.cli_models import add_commands
from openarc.client import DaemonError
from openarc.config import Config, ConfigError, load_config

CONFIG_ENV = "OPENARC_CONFIG"
EXIT_CONFIG_ERROR = 2


def _load(path: str | None) -> Config:
    if path is None:
        raise ConfigError(f"no config given: pass --config FILE or set {CONFIG_ENV}")
    return load_config(Path(path))


def cmd_serve(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if args.host is not None:
        config.server.host = args.host
    if args.port is not None:
        config.server.port = args.port
    logging.basicConfig(level=config.server.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from openarc.server import serve

    try:
        loop = event_loop.resolve(config.server.event_loop)
    except event_loop.EventLoopUnavailable as exc:
        raise ConfigError(str(exc)) from None
    try:
        event_loop.run(serve(config, Path(args.config)), loop)
    except OSError as exc:
        print(f"openarc: cannot serve on {config.server.host}:{config.server.port}: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    config = _load(args.file)
    models = ", ".join(f"{m.id} on {'+'.join(m.devices)}" for m in config.models) or "no models"
    print(f"{args.file}: OK ({models})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="openarc", description="OpenAI-compatible serving on OpenVINO GenAI")
    parser.add_argument("--version", action="version", version=f"openarc {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the models of a YAML config")
    serve.add_argument("--config", default=os.environ.get(CONFIG_ENV), help=f"YAML config (default: ${CONFIG_ENV})")
    serve.add_argument("--host", help="override server.host")
    serve.add_argument("--port", type=int, help="override server.port")
    serve.set_defaults(run=cmd_serve)

    check = commands.add_parser("check-config", help="check a YAML config and exit (2 when invalid)")
    check.add_argument("file")
    check.set_defaults(run=cmd_check_config)
    add_commands(commands)
    cli_pull.add_command(commands)
    convert.add_command(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except ConfigError as exc:
        print(f"openarc: invalid config:\n{exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    except (DaemonError, OSError, yaml.YAMLError) as exc:
        print(f"openarc: {exc}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
