from __future__ import annotations

import pytest

from openarc.serving.errors import APIError
from openarc.serving.sampling import bounded_max_tokens


@pytest.mark.parametrize(
    ("requested", "default", "limit", "expected"),
    [
        (None, None, None, None),  # no bound: the worker fills the rest of the context
        (100, None, None, 100),
        (None, 512, None, 512),
        (100, 512, None, 100),
        (None, None, 256, 256),
        (None, 512, 256, 256),
        (256, 512, 256, 256),
    ],
)
def test_output_budget(requested: int | None, default: int | None, limit: int | None, expected: int | None) -> None:
    assert bounded_max_tokens(requested, default, limit) == expected


def test_asking_beyond_the_limit_is_refused_not_truncated() -> None:
    with pytest.raises(APIError) as caught:
        bounded_max_tokens(300, None, 256)
    assert (caught.value.status, caught.value.param) == (400, "max_tokens")
    assert "at most 256 tokens" in caught.value.message
