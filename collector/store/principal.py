"""Who calls the HTTP API: roles and the principal an API token authenticates as.

Roles: ``engineer`` and ``service_manager`` (the vendor's people, no customer: they see
every customer; a service manager works cases and sees the desk overview but manages no
tokens, agents or plans), ``customer_admin`` and ``viewer`` (one customer each).
Re-exported by :mod:`collector.store.store`, where it was first defined.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from collector.store.queries import Scope

__all__ = ["ROLES", "STAFF_ROLES", "ApiPrincipal", "Role"]

Role = Literal["engineer", "customer_admin", "viewer", "service_manager"]
ROLES: tuple[Role, ...] = get_args(Role)
STAFF_ROLES: tuple[Role, ...] = ("engineer", "service_manager")
"""The vendor's people: they see every customer (a service manager writes only cases)."""


@dataclass(frozen=True, slots=True)
class ApiPrincipal:
    """Who is calling the HTTP API."""

    token_id: int
    name: str
    role: Role
    customer: str | None

    @property
    def scope(self) -> Scope:
        return Scope.everything() if self.role in STAFF_ROLES else Scope.of(self.customer or "")

    @property
    def can_write(self) -> bool:
        """May change the fleet, plans and tokens (a service manager changes only cases)."""
        return self.role in ("engineer", "customer_admin")

    @property
    def is_staff(self) -> bool:
        """An engineer or a service manager: works cases of every customer."""
        return self.role in STAFF_ROLES
