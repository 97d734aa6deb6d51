"""Entry point of a device worker process: `python -m openarc.worker --fd N`.

The engine hands over one end of a socket pair; the first message on it says which model to load.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import time

from openarc.hub import is_hub_source, pull
from openarc.ipc import WorkerFailed, WorkerReady
from openarc.worker.channel import CommandChannel, EngineGone
from openarc.worker.loop import WorkerLoop
from openarc.worker.pipeline import ModelRunner


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m openarc.worker")
    parser.add_argument("--fd", type=int, required=True, help="file descriptor of the engine's socket")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args()
    # Ctrl-C reaches the whole process group; the HTTP process decides when workers stop (after draining).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(
        level=args.log_level.upper(), format=f"%(asctime)s %(levelname)s worker[{os.getpid()}] %(message)s"
    )
    channel = CommandChannel(socket.socket(fileno=args.fd))
    try:
        spec = channel.receive_load()
        started = time.monotonic()
        try:
            if is_hub_source(spec.source):
                # Downloads (or resumes, or finds in the cache) before loading; progress goes to the daemon's log.
                spec.source = str(pull(spec.source, spec.filename, spec.hub_cache_dir))
            runner = ModelRunner(spec)
            ready = WorkerReady(
                pid=os.getpid(),
                load_seconds=time.monotonic() - started,
                context_length=runner.context_length,
                chat_template=runner.chat_template or runner.tokenizer.chat_template,
                tokenizer=runner.tokenizer_facts(),
                generation_defaults=runner.generation_defaults(),
                source_path=spec.source,
            )
        except Exception as exc:
            channel.send(WorkerFailed(f"{type(exc).__name__}: {exc}"))
            return 1
        channel.send(ready)
        WorkerLoop(runner, channel, spec.max_num_seqs, spec.refill_wait_ms / 1000, spec.stream_interval).run()
    except (EngineGone, BrokenPipeError, ConnectionResetError):
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
