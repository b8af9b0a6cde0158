"""Who is calling: a Cognito token, verified as API Gateway's JWT authoriser verifies it.

Every request but the OpenAPI document carries ``Authorization: Bearer <JWT>``
from the user pool. ``Verifier`` checks it with PyJWT: RS256 only, the
signature against the pool's published keys (JWKS, cached, fetched again for
an unknown key id), the issuer, expiry and issued-at, ``token_use`` (``id``
or ``access``) and the app client (``aud`` of an id token, ``client_id`` of
an access token). Anything else - no token, expired, another issuer or
client, a changed payload, ``alg: none``, a key the pool never published - is
refused with 401 and a reason; the token itself is never logged.

The keys come from ``Settings.keys_url``: in AWS the issuer's
``/.well-known/jwks.json``; locally moto's server publishes the pool's keys at
``<endpoint>/<pool id>/.well-known/jwks.json`` while its tokens name the real
AWS issuer, hence the separate URL.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Literal

import jwt

from lambdas.api.http import Unauthorized
from proctoring.settings import Settings

__all__ = ["ADMIN", "PROCTOR", "STUDENT", "Principal", "Role", "Verifier"]

Role = Literal["admin", "proctor", "student"]
ADMIN: Role = "admin"
PROCTOR: Role = "proctor"
STUDENT: Role = "student"
_ROLES: tuple[Role, ...] = (ADMIN, PROCTOR, STUDENT)  # the group precedence of the template
_LEEWAY_SECONDS = 5


@dataclass(frozen=True)
class Principal:
    """The verified caller: the user's ``sub`` and their groups."""

    user_id: str
    groups: frozenset[str]
    email: str | None = None
    name: str | None = None  # the user's ``name`` attribute, shown to their proctor as text

    @property
    def role(self) -> Role | None:
        """The caller's strongest group (admin > proctor > student), None without one."""
        return next((r for r in _ROLES if r in self.groups), None)

    def is_(self, role: Role) -> bool:
        return role in self.groups


class Verifier:
    """Verifies user pool tokens; see the module docstring."""

    def __init__(self, *, issuer: str, client_id: str, keys_url: str) -> None:
        self._issuer = issuer
        self._client_id = client_id
        self._keys = jwt.PyJWKClient(keys_url, cache_keys=True, lifespan=3600, timeout=10)

    @classmethod
    def from_settings(cls, settings: Settings) -> Verifier:
        if not (settings.issuer and settings.user_pool_client_id and settings.keys_url):
            raise ValueError(
                "PROCTOR_USER_POOL_ID and PROCTOR_USER_POOL_CLIENT_ID are required to verify tokens"
            )
        return cls(
            issuer=settings.issuer,
            client_id=settings.user_pool_client_id,
            keys_url=settings.keys_url,
        )

    async def verify(self, authorization: str | None) -> Principal:
        """The principal of an ``Authorization`` header value, or Unauthorized."""
        if not authorization:
            raise Unauthorized("sign in: no Authorization header", reason="no_token")
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("Authorization must be 'Bearer <token>'", reason="bad_scheme")
        return await self.verify_token(token.strip())

    async def verify_token(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthorized("the token is not a JWT", reason="malformed") from exc
        if header.get("alg") != "RS256":  # refuses alg: none and HMAC keyed with the public key
            raise Unauthorized(
                f"token algorithm {str(header.get('alg'))[:20]!r} is not RS256", reason="bad_alg"
            )
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Unauthorized("the token names no signing key", reason="unknown_key")
        try:
            key = await asyncio.to_thread(self._keys.get_signing_key, kid)
        except jwt.PyJWKClientConnectionError as exc:
            raise Unauthorized("the user pool's keys cannot be fetched", reason="jwks") from exc
        except jwt.PyJWKClientError as exc:
            raise Unauthorized("the token's signing key is unknown", reason="unknown_key") from exc
        claims = self._decode(token, key.key)
        return Principal(
            user_id=str(claims["sub"]),
            groups=frozenset(claims.get("cognito:groups") or ()),
            email=claims.get("email") if isinstance(claims.get("email"), str) else None,
            name=claims["name"][:200] if isinstance(claims.get("name"), str) else None,
        )

    def _decode(self, token: str, key: Any) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                issuer=self._issuer,
                leeway=_LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "iss", "sub", "token_use"], "verify_aud": False},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("the token has expired", reason="expired") from exc
        except jwt.InvalidIssuerError as exc:
            raise Unauthorized("the token is from another issuer", reason="issuer") from exc
        except jwt.InvalidSignatureError as exc:
            raise Unauthorized("the token's signature is invalid", reason="signature") from exc
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"the token is invalid: {exc}", reason="invalid") from exc
        use = claims["token_use"]
        if use == "id":
            audience = claims.get("aud")
            ok = audience == self._client_id or (
                isinstance(audience, list) and self._client_id in audience
            )
        elif use == "access":
            ok = claims.get("client_id") == self._client_id
        else:
            raise Unauthorized(f"token_use {str(use)[:20]!r} is not id or access", reason="use")
        if not ok:
            raise Unauthorized("the token is for another app client", reason="audience")
        return claims
