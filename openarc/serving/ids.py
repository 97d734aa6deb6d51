"""Response ids and the fingerprint of this build."""

from __future__ import annotations

import secrets

from openarc import __version__

SYSTEM_FINGERPRINT = f"fp_openarc_{__version__}"


def response_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(12)}"
