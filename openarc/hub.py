"""Hugging Face Hub sources: `hf://OWNER/REPO[@REVISION]` (an OpenVINO IR repo, or with a GGUF `filename`).

Downloads go through `huggingface_hub` into its cache (or a configured models dir): progress bars, resume of a cut
download, HF_TOKEN for private repos and HF_HUB_OFFLINE (cache only) all come from it, as does HF_ENDPOINT.
"""

from __future__ import annotations

import re
from pathlib import Path

HF_SCHEME = "hf://"
_REPO = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?:@(?P<revision>[\w./-]+))?$")


class HubError(Exception):
    """A download or lookup failed; the message is for the user."""


def is_hub_source(source: str) -> bool:
    return source.startswith(HF_SCHEME)


def parse_repo(text: str) -> tuple[str, str | None]:
    """`OWNER/REPO[@REVISION]` (with or without hf://) → (repo id, revision or None); ValueError when malformed."""
    match = _REPO.match(text.removeprefix(HF_SCHEME))
    if match is None:
        raise ValueError(f"expected hf://OWNER/REPO[@REVISION], got {text!r}")
    return match["repo"], match["revision"]


def pull(repo: str, filename: str | None = None, cache_dir: str | None = None) -> Path:
    """The local path of a hub model, downloaded (or resumed) if needed: the GGUF file, or the repo's folder."""
    # Imported on demand: only pulls need it, and it is slow to import.
    from huggingface_hub import hf_hub_download, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    repo_id, revision = parse_repo(repo)
    try:
        if filename is not None:
            return Path(hf_hub_download(repo_id, filename, revision=revision, cache_dir=cache_dir))
        return Path(snapshot_download(repo_id, revision=revision, cache_dir=cache_dir))
    except LocalEntryNotFoundError as exc:
        raise HubError(f"{repo_id} is not in the cache and cannot be downloaded (offline?): {exc}") from None
    except HfHubHTTPError as exc:
        raise HubError(f"cannot download {repo_id}: {exc}") from None
    except Exception as exc:
        # A cut connection surfaces as the HTTP library's own error; the partial file stays for the next try.
        raise HubError(
            f"download of {repo_id} interrupted ({type(exc).__name__}: {exc}); run it again to resume"
        ) from None
