"""Per-request output mailboxes: the worker reader fills them, the response task drains them.

A mailbox merges everything that arrived since it was last drained, so a slow client never holds up
the reader; no task is created per token, and a response task awaits one future per wake-up, however
many tokens that wake-up brings. Requests that answer one API call (n > 1, or several prompts) share one
`asyncio.Event`, so the response task wakes once for all of them.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from openarc.ipc import ErrorKind, FinishReason, RequestOutput, TokenPiece


@dataclass(slots=True)
class StreamDelta:
    text: str
    tokens: int
    finish_reason: FinishReason | None
    error: str | None = None
    error_kind: ErrorKind | None = None
    # When the request asked for logprobs: one per new token, with the token's text (or bytes: see ipc.TokenPiece).
    logprobs: list[float] | None = None
    token_texts: list[TokenPiece] | None = None


class RequestStream:
    __slots__ = (
        "_finish_reason",
        "_logprobs",
        "_notify",
        "_pieces",
        "_token_texts",
        "_tokens",
        "completion_tokens",
        "drained",
        "error",
        "error_kind",
        "finished",
        "first_token_at",
        "prompt_tail",
        "prompt_tokens",
        "replica",
        "rid",
        "started_at",
    )

    def __init__(self, rid: int, replica: str, notify: asyncio.Event) -> None:
        self.rid = rid
        self.replica = replica
        self._notify = notify
        self._pieces: list[str] = []
        self._tokens = 0
        self._finish_reason: FinishReason | None = None
        self.error: str | None = None
        self.error_kind: ErrorKind | None = None
        self.prompt_tokens: int | None = None
        self.prompt_tail: str | None = None
        self._logprobs: list[float] | None = None
        self._token_texts: list[TokenPiece] | None = None
        self.completion_tokens = 0
        self.started_at = time.monotonic()
        self.first_token_at: float | None = None
        self.finished = False
        self.drained = False

    @property
    def started(self) -> bool:
        """The worker has answered: with the prompt's size, or with an error."""
        return self.prompt_tokens is not None or self.error is not None

    def push(self, output: RequestOutput) -> None:
        if output.text:
            self._pieces.append(output.text)
        if output.tokens:
            if self.first_token_at is None:
                self.first_token_at = time.monotonic()
            self._tokens += output.tokens
            self.completion_tokens += output.tokens
        if output.logprobs is not None and output.token_texts is not None:
            if self._logprobs is None or self._token_texts is None:
                self._logprobs, self._token_texts = [], []
            self._logprobs.extend(output.logprobs)
            self._token_texts.extend(output.token_texts)
        if output.prompt_tokens is not None:
            self.prompt_tokens = output.prompt_tokens
            self.prompt_tail = output.prompt_tail
        if output.error is not None:
            self.error, self.error_kind = output.error, output.error_kind
            self.finished = True
        elif output.finish_reason is not None:
            self._finish_reason = output.finish_reason
            self.finished = True
        self._notify.set()

    def fail(self, message: str, kind: ErrorKind = "engine") -> None:
        self.push(RequestOutput(self.rid, error=message, error_kind=kind))

    def take(self) -> StreamDelta | None:
        """Everything new since the last call, or None; the final delta carries the finish reason or error."""
        if self.drained or not (self._pieces or self._tokens or self.finished):
            return None
        delta = StreamDelta(
            "".join(self._pieces),
            self._tokens,
            self._finish_reason,
            self.error,
            self.error_kind,
            self._logprobs,
            self._token_texts,
        )
        self._pieces.clear()
        self._tokens = 0
        if self._logprobs is not None:
            self._logprobs, self._token_texts = [], []
        self.drained = self.finished
        return delta
