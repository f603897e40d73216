"""A loopback stand-in for the App Store Connect API: it answers from the recorded answers in
``translators/samples/appstoreconnect/api/`` (Apple's JSON:API shapes), and only to a request
whose ``Authorization: Bearer`` token is what Apple accepts: an ES256 JWT over P-256 whose raw
R||S signature verifies with the test key, ``kid`` the key id, ``iss`` the issuer,
``aud`` ``appstoreconnect-v1``, living at most 20 minutes. The check is made with cryptography
directly, not with the JWT library the translator signs with."""

from __future__ import annotations

import base64
import json
import time
from functools import cache
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from tests.fakeapi import Failure, FakeApi
from translators.samples import all_samples

ISSUER = "57246542-96fe-1a63-e053-0824d011072a"
KEY_ID = "2X9R4HXF34"
NOT_AUTHORIZED = json.dumps(
    {
        "errors": [
            {
                "status": "401",
                "code": "NOT_AUTHORIZED",
                "title": "Authentication credentials are missing or invalid.",
                "detail": "Provide a properly configured and signed bearer token, and make sure that it has"
                " not expired.",
            }
        ]
    }
).encode()
NOT_FOUND = json.dumps(
    {"errors": [{"status": "404", "code": "NOT_FOUND", "title": "The specified resource does not exist"}]}
).encode()
__all__ = ["ISSUER", "KEY_ID", "Failure", "FakeAsc", "key_pem"]


@cache
def _key() -> ec.EllipticCurvePrivateKey:
    """A P-256 key made for this test run, as App Store Connect makes them (never a committed one)."""
    return ec.generate_private_key(ec.SECP256R1())


def key_pem() -> str:
    """The test key as an ``AuthKey_*.p8`` file holds it (PKCS#8 PEM)."""
    return (
        _key()
        .private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        .decode("ascii")
    )


def _b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def token_problem(authorization: str | None, now: float | None = None) -> str | None:
    """Why Apple would refuse this Authorization header, or None when it would take it."""
    if not authorization or not authorization.startswith("Bearer "):
        return "no bearer token"
    parts = authorization.removeprefix("Bearer ").split(".")
    if len(parts) != 3:
        return "not a JWT"
    header, claims = json.loads(_b64(parts[0])), json.loads(_b64(parts[1]))
    if header != {"alg": "ES256", "kid": KEY_ID, "typ": "JWT"}:
        return f"header {header}"
    signature = _b64(parts[2])
    if len(signature) != 64:
        return "the signature is not raw R||S"
    der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
    try:
        _key().public_key().verify(der, f"{parts[0]}.{parts[1]}".encode(), ec.ECDSA(hashes.SHA256()))
    except Exception:
        return "bad signature"
    now = time.time() if now is None else now
    if claims.get("iss") != ISSUER or claims.get("aud") != "appstoreconnect-v1":
        return f"claims {claims}"
    if not (claims["iat"] <= now + 60 and now < claims["exp"] <= claims["iat"] + 20 * 60):
        return f"lifetime {claims['iat']}..{claims['exp']} at {now}"
    return None


class FakeAsc(FakeApi):
    refusal = NOT_AUTHORIZED

    def __init__(self) -> None:
        self.answers: dict[str, Any] = {}
        for sample in all_samples():
            recorded = sample.api_answers()
            if sample.source == "appstoreconnect" and recorded is not None:
                self.answers.update(recorded)
        #: Each token the API took, in order.
        self.tokens: list[str] = []
        super().__init__()

    def route(self, path: str, auth: str | None) -> tuple[int, bytes, dict[str, str]]:
        if token_problem(auth) is not None:
            return 401, NOT_AUTHORIZED, {}
        assert auth is not None
        self.tokens.append(auth.removeprefix("Bearer "))
        found = self.answers.get(path)
        if found is None:
            return 404, NOT_FOUND, {}
        headers = {"X-Rate-Limit": "user-hour-lim:3500;user-hour-rem:3499;"}
        return 200, json.dumps(found).encode(), headers
