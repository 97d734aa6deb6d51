"""`openarc pull`: download a Hugging Face model into the hub cache (or --models-dir) and print its local path."""

from __future__ import annotations

import argparse
import os
import sys

from openarc.hub import HubError, pull


def cmd_pull(args: argparse.Namespace) -> int:
    # huggingface_hub's switch for progress bars even when stderr is not a terminal (CI logs, `docker run`).
    os.environ.setdefault("TQDM_POSITION", "-1")
    try:
        path = pull(args.repo, args.filename, args.models_dir)
    except (HubError, ValueError) as exc:
        print(f"openarc: {exc}", file=sys.stderr)
        return 1
    # The last line is the path, ready for a config's `source`.
    print(path)
    return 0


def add_command(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser("pull", help="download a model from the Hugging Face Hub (resumes cut downloads)")
    parser.add_argument("repo", help="OWNER/REPO[@REVISION]: an OpenVINO IR repo, or with --filename a GGUF repo")
    parser.add_argument("--filename", help="the one file to fetch, e.g. model.Q4_K_M.gguf")
    parser.add_argument("--models-dir", help="download here instead of the Hugging Face cache")
    parser.set_defaults(run=cmd_pull)
