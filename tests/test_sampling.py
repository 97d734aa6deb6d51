from __future__ import annotations

import pytest

from openarc.serving.errors import APIError
from openarc.serving.sampling import TokenBudget, token_budget


@pytest.mark.parametrize(
    ("requested", "default", "limit", "expected"),
    [
        (None, None, None, (None, None)),  # no bound: the worker fills the rest of the context
        (100, None, None, (100, None)),
        # The model's default and limit are caps the worker lowers to the room left: the client asked for neither.
        (None, 512, None, (None, 512)),
        (100, 512, None, (100, None)),
        (None, None, 256, (None, 256)),
        (None, 512, 256, (None, 256)),
        (None, 128, 256, (None, 128)),
        (256, 512, 256, (256, None)),
    ],
)
def test_output_budget(
    requested: int | None, default: int | None, limit: int | None, expected: tuple[int | None, int | None]
) -> None:
    assert token_budget(requested, default, limit, "max_tokens") == TokenBudget(*expected)


@pytest.mark.parametrize("param", ["max_tokens", "max_completion_tokens"])
def test_asking_beyond_the_limit_is_refused_not_truncated(param: str) -> None:
    with pytest.raises(APIError) as caught:
        token_budget(300, None, 256, param)
    assert (caught.value.status, caught.value.param) == (400, param)
    assert caught.value.message == f"{param} is 300, but this model allows at most 256 tokens per request."
