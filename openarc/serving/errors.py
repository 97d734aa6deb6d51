"""Errors the serving layer raises; the API layer turns them into OpenAI error responses."""

from __future__ import annotations


class APIError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        type: str,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers


def invalid_request(message: str, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, "invalid_request_error", param, code)


def unsupported(param: str, detail: str = "") -> APIError:
    suffix = f" {detail}" if detail else ""
    return invalid_request(f"`{param}` is not supported by this server.{suffix}", param, "unsupported_parameter")


def model_not_found(model: str) -> APIError:
    return APIError(
        404,
        f"The model `{model}` does not exist or is not served here.",
        "invalid_request_error",
        "model",
        "model_not_found",
    )


def engine_failed(message: str) -> APIError:
    """The engine failed the request (a step error, a worker that died); retrying can succeed once it is back."""
    return APIError(503, message, "server_error", None, "engine_error")


def timed_out(message: str) -> APIError:
    # 504, not 408: the client sent its request in time; the server could not finish it in time.
    return APIError(504, message, "timeout_error", None, "request_timeout")


def unavailable(message: str) -> APIError:
    return APIError(503, message, "server_error", None, "model_unavailable")


RETRY_AFTER_SECONDS = 1


def overloaded(message: str) -> APIError:
    return APIError(
        429, message, "rate_limit_error", None, "model_overloaded", {"Retry-After": str(RETRY_AFTER_SECONDS)}
    )


# A model reloading after idling is back in seconds (GenAI loads SmolLM2 in ~1 s, a 7B model in ~10 s).
RELOAD_RETRY_AFTER_SECONDS = 5


def reloading(message: str) -> APIError:
    return APIError(
        503, message, "server_error", None, "model_reloading", {"Retry-After": str(RELOAD_RETRY_AFTER_SECONDS)}
    )
