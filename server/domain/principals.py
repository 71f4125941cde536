"""Who is calling: a principal's name, which owns what it creates, and the scopes its credentials carry.

`read` lets a principal read (Get, List, Progress, ReadFile, Export, Diff, ...), `write` lets it
make and change versions (Generate, Tweak, Iterate, Upload, Merge, Cancel, ...), and `admin` lets
it do both to every principal's data, not only its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from server.config import MAX_PRINCIPAL_LENGTH, SCOPES
from server.domain.errors import PermissionDenied

READ, WRITE, ADMIN = SCOPES


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    scopes: frozenset[str]

    @classmethod
    def of(cls, name: str, scopes: Iterable[str]) -> Principal:
        """A principal, its name and scopes checked (ValueError says what is wrong)."""
        if not name or len(name) > MAX_PRINCIPAL_LENGTH:
            raise ValueError(f"a principal's name is 1 to {MAX_PRINCIPAL_LENGTH} characters")
        granted = frozenset(scopes)
        unknown = sorted(granted - set(SCOPES))
        if unknown:
            raise ValueError(f"unknown scopes {unknown}; the scopes are {', '.join(SCOPES)}")
        return cls(name, granted)

    @property
    def is_admin(self) -> bool:
        return ADMIN in self.scopes

    @property
    def owner_filter(self) -> str | None:
        """The only owner whose data this principal may find: its own name, or None (every owner's)
        for an admin. Every storage query the domain makes for a caller passes this."""
        return None if self.is_admin else self.name

    def require(self, scope: str) -> None:
        """Raises PermissionDenied (reason SCOPE_REQUIRED) unless the principal holds `scope`;
        `admin` holds every scope."""
        if scope in self.scopes or self.is_admin:
            return
        held = " ".join(sorted(self.scopes)) or "none"
        raise PermissionDenied(
            f"this call needs the {scope!r} scope; the caller's credentials carry {held}",
            reason="SCOPE_REQUIRED",
            metadata={"scope": scope, "principal": self.name},
        )
