"""The temporary_access_pass task's way to authn: ``POST /v1/users/{id}/access-passes``.

authn issues the pass and answers its code once (workflows/effects.py mails it and forgets
it). The orchestrator calls as a service with an Accord API token that holds
``mfa:manage`` (``accord tokens create``), read from a file at each call so that a rotated
token is used without a restart (a mounted secret). Configured by ``ACCORD_AUTHN_URL``
(authn's base URL) and ``ACCORD_AUTHN_TOKEN_FILE``.

Answers: 201 -> the pass; 429, 5xx, a timeout or a connection failure -> transient
(Retry-After kept); any other answer (401/403: the token; 400: the lifetime; 404) ->
permanent. The code never reaches a log line, an exception or a repr.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import quote

import httpx

from accord.orchestrator.adapters.service_api import ServiceApi, UnreadableToken
from accord.orchestrator.workflows.effects import AccessPassError, IssuedPass
from accord.runtime.retry_after import retry_after_seconds


class HttpAccessPasses(ServiceApi):
    """AccessPasses over authn's HTTP API."""

    service = "authn"

    async def issue(self, user_id: str, *, lifetime: timedelta, one_time: bool) -> IssuedPass:
        url = f"{self._base}/v1/users/{quote(user_id, safe='')}/access-passes"
        body = {"lifetime": lifetime.total_seconds(), "one_time": one_time}
        headers = {"Authorization": f"Bearer {self._token()}"}
        try:
            response = await self._client.post(url, json=body, headers=headers)
        except httpx.TimeoutException:
            raise AccessPassError("authn did not answer in time", retryable=True) from None
        except httpx.TransportError as error:
            raise AccessPassError(
                f"cannot reach authn: {type(error).__name__}", retryable=True
            ) from None
        status = response.status_code
        if status == 201:
            try:
                document = response.json()
                return IssuedPass(
                    code=str(document["code"]),
                    expires_at=datetime.fromisoformat(str(document["expires_at"])),
                )
            except (ValueError, KeyError, TypeError):
                raise AccessPassError("authn's answer is not a pass", retryable=False) from None
        if status == 429 or status >= 500:
            retry_after = retry_after_seconds(
                response.headers.get("Retry-After", ""), self._clock()
            )
            raise AccessPassError(
                f"authn answered {status}", retryable=True, retry_after_s=retry_after
            )
        raise AccessPassError(f"authn refused the pass: {status}", retryable=False)

    def _token(self) -> str:
        try:
            return self._read_token()
        except UnreadableToken as error:
            raise AccessPassError(str(error), retryable=False) from None
