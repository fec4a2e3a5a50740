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

__all__ = ["CUSTOMER_CHANNELS", "ROLES", "STAFF_ROLES", "ApiPrincipal", "Role"]

Role = Literal["engineer", "customer_admin", "viewer", "service_manager"]
ROLES: tuple[Role, ...] = get_args(Role)
STAFF_ROLES: tuple[Role, ...] = ("engineer", "service_manager")
"""The vendor's people: they see every customer (a service manager writes only cases)."""
CUSTOMER_CHANNELS = ("remote", "email")
"""How a customer admin's own requests come in (it cannot pose as the hotline or on-site)."""


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

    # The rules below are the one place the API (``collector.http``) and the dashboard
    # (``collector.web``) read who may do what; each surface words its own refusal.

    @property
    def adds_notes(self) -> bool:
        """May add notes to the cases it can see (everyone but viewers)."""
        return self.role != "viewer"

    def may_open_case(self, channel: str) -> bool:
        """May open a case through ``channel``: staff through any, a customer admin through
        :data:`CUSTOMER_CHANNELS` (its own customer: the scope sees to that), viewers never."""
        if self.role == "viewer":
            return False
        return self.is_staff or channel in CUSTOMER_CHANNELS

    @property
    def requests_sessions(self) -> bool:
        """May request a remote session (engineers; they connect only to their own)."""
        return self.role == "engineer"

    @property
    def approves_sessions(self) -> bool:
        """May approve or deny a remote session of its customer (its customer admin only)."""
        return self.role == "customer_admin"

    @property
    def revokes_sessions(self) -> bool:
        """May end a remote session now (the vendor's people and the customer's admin)."""
        return self.role != "viewer"
