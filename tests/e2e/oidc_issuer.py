"""A tiny OIDC issuer for tests: an RSA key, its JWKS served over real HTTP, and a minter."""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

AUDIENCE = "accord"


class LocalIssuer:
    """Serves /jwks.json on 127.0.0.1 and signs access tokens with its key."""

    def __init__(self) -> None:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = uuid.uuid4().hex[:8]
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self._key.public_key()))
        jwks = json.dumps({"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}]})

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = jwks.encode()
                self.send_response(200 if self.path == "/jwks.json" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.issuer = f"{self.url}/realms/test"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/jwks.json"

    def env(self) -> dict[str, str]:
        """The settings that make services trust this issuer."""
        return {
            "ACCORD_OIDC_ISSUER": self.issuer,
            "ACCORD_OIDC_AUDIENCE": AUDIENCE,
            "ACCORD_OIDC_JWKS_URL": self.jwks_url,
            "ACCORD_OIDC_ROLES_CLAIM": "realm_access.roles",
        }

    def mint(self, subject: str, roles: list[str], **overrides: Any) -> str:
        """A signed access token; overrides replace or add claims."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": subject,
            "iat": now,
            "exp": now + 300,
            "jti": uuid.uuid4().hex,
            "realm_access": {"roles": roles},
        }
        claims.update(overrides)
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self.kid})
