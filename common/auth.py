"""Bearer-token auth for admin endpoints (the service's ``/admin/*``, the observability admin page and API).

Framework-free: :func:`check_bearer` returns the HTTP status an adapter should answer (200 = allowed, 401 = no
credentials, 403 = wrong token); the FastAPI apps turn it into their response. The token comes from an
environment variable or a secret file named in the config, never from the config file itself, and is compared in
constant time (:func:`hmac.compare_digest`) so its bytes cannot be learned from response timings.
"""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass
from pathlib import Path

from common.errors import ConfigError

DEFAULT_TOKEN_ENV = "TRENDFLOW_ADMIN_TOKEN"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


@dataclass(frozen=True)
class AdminAuth:
    """Where the admin token comes from.

    Attributes:
        token_env: environment variable holding the token.
        token_file: file holding the token (first line, stripped); used when the variable is unset.
    """

    token_env: str = DEFAULT_TOKEN_ENV
    token_file: str | None = None

    def token(self) -> str | None:
        """The configured token, or None when admin auth is not configured."""
        value = os.environ.get(self.token_env)
        if value:
            return value.strip()
        if self.token_file:
            path = Path(self.token_file).expanduser()
            try:
                value = path.read_text().strip()
            except OSError as exc:
                raise ConfigError(f"admin token file {path} cannot be read: {exc.strerror}",
                                  code="admin_token_unreadable") from None
            if not value:
                raise ConfigError(f"admin token file {path} is empty", code="admin_token_unreadable")
            return value
        return None

    @property
    def configured(self) -> bool:
        return self.token() is not None


def check_bearer(authorization: str | None, auth: AdminAuth) -> int:
    """200 when ``authorization`` (the request's ``Authorization`` header) carries the configured token.

    401 when there is no bearer credential, or when admin auth is not configured at all (admin endpoints are then
    closed, not open); 403 when the credential is wrong.
    """
    expected = auth.token()
    scheme, _, given = (authorization or "").partition(" ")
    if expected is None or scheme.lower() != "bearer" or not given.strip():
        return 401
    return 200 if hmac.compare_digest(given.strip().encode(), expected.encode()) else 403


def require_loopback_unless_configured(host: str, auth: AdminAuth) -> None:
    """Refuse to listen on a non-loopback address while admin auth is not configured."""
    if host not in LOOPBACK_HOSTS and not auth.configured:
        raise ConfigError(f"refusing to listen on {host}: admin auth is not configured (set ${auth.token_env} "
                          "or admin.token_file), so /admin/* would be reachable from the network without a token",
                          code="admin_auth_required")
