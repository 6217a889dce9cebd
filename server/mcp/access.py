"""Scoped bearer tokens: which namespaces a token may read or write, and the one check every tool calls.

``DEBRIEF_HTTP_TOKENS`` tokens have full access. ``DEBRIEF_HTTP_TOKENS_FILE`` names a JSON file::

    {"tokens": [{"token": "...", "namespaces": ["ns1", "ns2"], "access": "read"}]}

where ``namespaces`` may be ``["*"]`` (every namespace) and ``access`` is ``read`` or ``write`` (write implies
read). The grant travels in the SDK's ``AccessToken.scopes`` and is read back per request; stdio, in-process
and token-less loopback HTTP have no access token and full access.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator

from debrief.server.errors import DebriefError, InvalidInput
from debrief.server.store.models import check_namespace
from debrief.server.store.planning import id_namespace

Access = Literal["read", "write"]
ALL = "*"
_ACCESS_PREFIX, _NAMESPACE_PREFIX = "debrief:", "namespace:"


class AccessDenied(DebriefError):
    """The request's token does not grant this access to this namespace; nothing was read or written."""


class ScopedToken(BaseModel):
    """One entry of the tokens file."""

    token: SecretStr = Field(description="The bearer token (at least 16 characters).")
    namespaces: list[str] = Field(min_length=1, description="Namespaces it may use, or ['*'] for all.")
    access: Access = Field(description="'read', or 'write' (which includes read).")

    @field_validator("token")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value().strip()) < 16:
            raise ValueError("a token must be at least 16 characters")
        return value

    @field_validator("namespaces")
    @classmethod
    def _valid_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if name != ALL:
                check_namespace(name)
        return value


class TokensFile(BaseModel):
    """The JSON document ``DEBRIEF_HTTP_TOKENS_FILE`` names."""

    tokens: list[ScopedToken] = Field(description="Scoped tokens.")


@dataclass(frozen=True, kw_only=True)
class Grant:
    """What one token may do: ``namespaces`` None means every namespace."""

    namespaces: frozenset[str] | None
    write: bool

    def allows(self, namespace: str, access: Access) -> bool:
        """Whether ``access`` to ``namespace`` is granted."""
        in_scope = self.namespaces is None or namespace in self.namespaces
        return in_scope and (access == "read" or self.write)

    def scopes(self) -> list[str]:
        """The grant as OAuth-style scope strings for the SDK's ``AccessToken``."""
        names = [ALL] if self.namespaces is None else sorted(self.namespaces)
        return [f"{_ACCESS_PREFIX}{'write' if self.write else 'read'}", *(f"{_NAMESPACE_PREFIX}{n}" for n in names)]

    @classmethod
    def of_scopes(cls, scopes: Iterable[str]) -> Grant:
        """Read a grant back from scope strings (no namespace scope: none granted)."""
        listed = list(scopes)
        names = {s.removeprefix(_NAMESPACE_PREFIX) for s in listed if s.startswith(_NAMESPACE_PREFIX)}
        return cls(namespaces=None if ALL in names else frozenset(names), write=f"{_ACCESS_PREFIX}write" in listed)


FULL = Grant(namespaces=None, write=True)


def load_tokens_file(path: Path) -> list[tuple[str, Grant]]:
    """The tokens and grants in ``path``.

    Raises:
        InvalidInput: the file is missing, unreadable, not JSON or not in the expected shape.
    """
    try:
        parsed = TokensFile.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidInput(f"DEBRIEF_HTTP_TOKENS_FILE {str(path)!r} cannot be read as JSON: {error}") from None
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise InvalidInput(
            f"DEBRIEF_HTTP_TOKENS_FILE {str(path)!r} is not valid ({problems}); expected "
            '{"tokens": [{"token": "...", "namespaces": ["ns"] or ["*"], "access": "read" or "write"}]}'
        ) from None
    return [
        (
            entry.token.get_secret_value().strip(),
            Grant(
                namespaces=None if ALL in entry.namespaces else frozenset(entry.namespaces),
                write=entry.access == "write",
            ),
        )
        for entry in parsed.tokens
    ]


def experience_namespace(experience_id: str) -> str:
    """The namespace an experience id belongs to.

    Raises:
        InvalidInput: ``experience_id`` is not an experience id.
    """
    namespace = id_namespace(experience_id)
    if namespace is None:
        raise InvalidInput(
            f"experience id {experience_id!r} is not valid: ids look like 'namespace:0123456789ab' "
            "(as returned by add, list or retrieve)"
        )
    return namespace


def grant_of(token: AccessToken | None) -> Grant:
    """The grant of a request's access token; full access when the transport has no token."""
    return FULL if token is None else Grant.of_scopes(token.scopes)


def current_grant() -> Grant:
    """The grant of the request being handled."""
    return grant_of(get_access_token())


def authorize(namespace: str, access: Access) -> None:
    """Refuse the request unless its token grants ``access`` to ``namespace``.

    Raises:
        AccessDenied: the token's scope does not cover it; the message names the namespace.
    """
    grant = current_grant()
    if grant.allows(namespace, access):
        return
    if grant.allows(namespace, "read"):
        raise AccessDenied(f"this token may only read namespace {namespace!r}; writing needs a token with write access")
    raise AccessDenied(f"this token has no access to namespace {namespace!r}; use a token whose scope includes it")


def visible(namespaces: Iterable[str]) -> list[str]:
    """The namespaces among ``namespaces`` the request's token may read."""
    grant = current_grant()
    return [name for name in namespaces if grant.allows(name, "read")]
