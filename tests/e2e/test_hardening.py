"""One daemon with every hardening option on: TLS, API and admin keys, CORS, a short request timeout."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import trustme

from tests.server import Server, run_server, write_config

ORIGIN = "http://app.example"
TIMEOUT_SECONDS = 1.5
LONG: dict[str, Any] = {
    "model": "smollm2",
    "messages": [{"role": "user", "content": "Tell me a long story."}],
    # ~40 s of generation: only the request timeout can end it within the test.
    "max_tokens": 4000,
    "extra_body": {"ignore_eos": True},
}


@pytest.fixture(scope="module")
def hardened(smollm2_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("hardened")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(str(tmp / "cert.pem"))
    cert.private_key_pem.write_to_path(str(tmp / "key.pem"))
    ca.cert_pem.write_to_path(str(tmp / "ca.pem"))
    server = {
        "api_keys": ["user-key"],
        "admin_keys": ["admin-key"],
        "cors_allow_origins": [ORIGIN],
        "request_timeout": TIMEOUT_SECONDS,
        "tls_certfile": "cert.pem",
        "tls_keyfile": "key.pem",
    }
    config = write_config(tmp / "config.yaml", [{"id": "smollm2", "source": str(smollm2_gguf)}], server)
    # The harness's own calls (status, readiness) use the admin key, which opens every route.
    with run_server(config, tmp, api_key="admin-key", tls_ca=tmp / "ca.pem") as running:
        yield running


def as_user(server: Server) -> openai.OpenAI:
    return server.client(api_key="user-key")


def test_https_serves_the_sdk_with_the_user_key(hardened: Server) -> None:
    completion = as_user(hardened).chat.completions.create(
        model="smollm2", messages=[{"role": "user", "content": "Hi"}], max_tokens=4
    )
    assert completion.choices[0].message.content
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{hardened.port}/health", timeout=5)
    assert f"serving on https://127.0.0.1:{hardened.port}" in hardened.log()


def test_management_routes_need_the_admin_key(hardened: Server) -> None:
    with httpx.Client(base_url=hardened.url, verify=hardened.verify) as http:
        user = http.get("/openarc/models", headers={"Authorization": "Bearer user-key"})
        assert user.status_code == 403
        assert user.json()["error"]["code"] == "admin_key_required"
        assert http.get("/openarc/models").status_code == 401
        admin = http.get("/openarc/models", headers={"Authorization": "Bearer admin-key"})
        assert admin.status_code == 200
        assert admin.json()["data"][0]["id"] == "smollm2"


def test_cors_allows_only_the_configured_origin(hardened: Server) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type,x-stainless-os",
    }
    with httpx.Client(base_url=hardened.url, verify=hardened.verify) as http:
        allowed = http.options("/v1/chat/completions", headers={"Origin": ORIGIN, **preflight})
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == ORIGIN
        assert "x-stainless-os" in allowed.headers["access-control-allow-headers"].lower()
        refused = http.options("/v1/chat/completions", headers={"Origin": "http://evil.example", **preflight})
        assert refused.status_code == 400
        assert "access-control-allow-origin" not in refused.headers
        # Error responses carry the header too, so a browser app can read why it was refused.
        denied = http.get("/v1/models", headers={"Origin": ORIGIN})
        assert denied.status_code == 401
        assert denied.headers["access-control-allow-origin"] == ORIGIN


def test_request_timeout_stops_a_long_generation(hardened: Server) -> None:
    client = as_user(hardened)
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(**LONG)
    assert caught.value.status_code == 504
    error = caught.value.body
    assert isinstance(error, dict) and error["code"] == "request_timeout", error
    assert f"request_timeout of {TIMEOUT_SECONDS:g} s" in error["message"]

    stream = client.chat.completions.create(**LONG, stream=True)
    with pytest.raises(openai.APIError, match="request_timeout") as in_stream:
        for _ in stream:
            pass
    # After the 200, the error event says what the status would have said.
    body = in_stream.value.body
    assert isinstance(body, dict) and (body["type"], body["code"]) == ("timeout_error", "request_timeout"), body
    # The engine stopped generating for both: the worker is idle again, and a short request answers.
    hardened.wait_until(lambda: hardened.status()["smollm2"]["replicas"][0]["active"] == 0, what="the abort")
    short = client.chat.completions.create(model="smollm2", messages=[{"role": "user", "content": "Hi"}], max_tokens=4)
    assert short.choices[0].finish_reason in ("stop", "length")
