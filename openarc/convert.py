"""`openarc convert`: the `optimum-cli export openvino` command for a Hugging Face model, run when optimum-cli is
installed (optimum-intel is not an OpenArc dependency: it pulls torch)."""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys

OPTIMUM_CLI = "optimum-cli"


def export_command(args: argparse.Namespace) -> list[str]:
    command = [OPTIMUM_CLI, "export", "openvino", "--model", args.model, "--weight-format", args.weight_format]
    if args.task:
        command += ["--task", args.task]
    if args.group_size is not None:
        command += ["--group-size", str(args.group_size)]
    if args.ratio is not None:
        command += ["--ratio", str(args.ratio)]
    for flag in ("sym", "awq", "scale_estimation", "trust_remote_code"):
        if getattr(args, flag):
            command.append("--" + flag.replace("_", "-"))
    if args.dataset:
        command += ["--dataset", args.dataset]
    command.append(args.output)
    return command


def cmd_convert(args: argparse.Namespace) -> int:
    if args.weight_format in ("fp16", "fp32") and (args.group_size is not None or args.ratio is not None or args.awq):
        print("openarc: --group-size, --ratio and --awq apply to int4/int8 weights only", file=sys.stderr)
        return 2
    if (args.awq or args.scale_estimation) and not args.dataset:
        print("openarc: --awq and --scale-estimation need --dataset (e.g. wikitext2)", file=sys.stderr)
        return 2
    command = export_command(args)
    print(shlex.join(command))
    if args.print_only:
        return 0
    if shutil.which(OPTIMUM_CLI) is None:
        print(
            f"openarc: {OPTIMUM_CLI} is not installed; install it with `pip install optimum-intel[openvino]` "
            "(it brings torch), or run the command above where it is",
            file=sys.stderr,
        )
        return 1
    return subprocess.run(command, check=False).returncode


def add_command(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    convert = commands.add_parser("convert", help="export a Hugging Face model to OpenVINO IR with optimum-cli")
    convert.add_argument("model", help="a Hugging Face model id or a local folder")
    convert.add_argument("output", help="the IR folder to write")
    convert.add_argument("--weight-format", choices=["int4", "int8", "fp16", "fp32"], default="int4")
    convert.add_argument("--task", help="e.g. text-generation-with-past, image-text-to-text")
    convert.add_argument("--group-size", type=int, help="int4 quantization group size (e.g. 128; -1: per channel)")
    convert.add_argument("--ratio", type=float, help="share of layers in int4, the rest in int8 (0..1)")
    convert.add_argument("--sym", action="store_true", help="symmetric quantization")
    convert.add_argument("--awq", action="store_true", help="activation-aware quantization (needs --dataset)")
    convert.add_argument("--scale-estimation", action="store_true", help="needs --dataset")
    convert.add_argument("--dataset", help="calibration dataset, e.g. wikitext2")
    convert.add_argument("--trust-remote-code", action="store_true")
    convert.add_argument("--print-only", action="store_true", help="print the command without running it")
    convert.set_defaults(run=cmd_convert)
