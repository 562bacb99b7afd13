"""Who may do what in the dashboard. Every dashboard view names one of these permissions.

Roles (tenants.models.Membership.Role):

- owner   — everything: transcriptions, hotwords, API keys, billing, members (including
            making or removing other owners), settings (retention). A tenant always keeps at least one owner.
- admin   — runs the workspace: transcriptions, hotwords, API keys, billing, members, settings; cannot
            grant the owner role nor change or remove an owner.
- member  — transcribes: uploads, reads, downloads, cancels and deletes jobs; edits hotword
            lists. Sees the balance on the overview (to know whether an upload will fit) but
            not the billing page, the ledger, invoices, API keys or members.
- billing — finance contact: the billing page (balance, buy tokens, ledger, statements,
            invoices) and the overview's balance and usage figures. Does not see
            transcripts, audio, API keys or members.

Anything not listed is denied; a denied page answers 403, a foreign object 404.
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from tenants.models import Membership

Role = Membership.Role

VIEW_OVERVIEW = "view_overview"
VIEW_USAGE = "view_usage"
TRANSCRIBE = "transcribe"  # list, upload, read, download, cancel, delete jobs
MANAGE_HOTWORDS = "manage_hotwords"
MANAGE_KEYS = "manage_keys"
VIEW_BILLING = "view_billing"  # billing page, ledger, statements, buy tokens
MANAGE_MEMBERS = "manage_members"
MANAGE_OWNERS = "manage_owners"
MANAGE_SETTINGS = "manage_settings"  # workspace settings: retention

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    Role.OWNER: frozenset(
        {
            VIEW_OVERVIEW,
            VIEW_USAGE,
            TRANSCRIBE,
            MANAGE_HOTWORDS,
            MANAGE_KEYS,
            VIEW_BILLING,
            MANAGE_MEMBERS,
            MANAGE_OWNERS,
            MANAGE_SETTINGS,
        }
    ),
    Role.ADMIN: frozenset(
        {
            VIEW_OVERVIEW,
            VIEW_USAGE,
            TRANSCRIBE,
            MANAGE_HOTWORDS,
            MANAGE_KEYS,
            VIEW_BILLING,
            MANAGE_MEMBERS,
            MANAGE_SETTINGS,
        }
    ),
    Role.MEMBER: frozenset({VIEW_OVERVIEW, TRANSCRIBE, MANAGE_HOTWORDS}),
    Role.BILLING: frozenset({VIEW_OVERVIEW, VIEW_USAGE, VIEW_BILLING}),
}


def role_has_perm(role: str | None, perm: str) -> bool:
    return bool(role) and perm in ROLE_PERMISSIONS.get(role, frozenset())


def role_perms(role: str | None) -> frozenset[str]:
    return ROLE_PERMISSIONS.get(role or "", frozenset())


def assignable_roles(role: str | None) -> list[str]:
    """Roles the given role may hand out in invitations and role changes."""
    if role_has_perm(role, MANAGE_OWNERS):
        return [Role.OWNER, Role.ADMIN, Role.MEMBER, Role.BILLING]
    if role_has_perm(role, MANAGE_MEMBERS):
        return [Role.ADMIN, Role.MEMBER, Role.BILLING]
    return []


ROLE_LABELS = {
    Role.OWNER: _("Owner"),
    Role.ADMIN: _("Admin"),
    Role.MEMBER: _("Member"),
    Role.BILLING: _("Billing"),
}
