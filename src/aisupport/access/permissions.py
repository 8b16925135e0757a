"""Who may do what: the permission matrix, in one place.

Routes declare what they need with `Depends(requires(Permission.X))` (or the `public` marker);
docs/permissions.md is rendered from this table (`render_matrix`) and a test keeps the two equal.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """Support-team roles, most powerful first."""

    OWNER = "owner"
    ADMIN = "admin"
    AGENT = "agent"
    VIEWER = "viewer"

    @property
    def rank(self) -> int:
        """Higher is more powerful: owner 3, admin 2, agent 1, viewer 0."""
        return len(Role) - 1 - list(Role).index(self)

    def at_most(self, other: Role) -> Role:
        """The weaker of two roles (a token minted for one role never acts above it)."""
        return self if self.rank <= other.rank else other


class Permission(StrEnum):
    ACCOUNT = "account"
    ORG_READ = "org:read"
    ORG_UPDATE = "org:update"
    ORG_DELETE = "org:delete"
    MEMBERS_READ = "members:read"
    MEMBERS_MANAGE = "members:manage"
    INVITATIONS_MANAGE = "invitations:manage"
    API_KEYS_MANAGE = "api_keys:manage"
    AUDIT_READ = "audit:read"
    INBOXES_READ = "inboxes:read"
    INBOXES_MANAGE = "inboxes:manage"
    TEAMS_MANAGE = "teams:manage"
    AVAILABILITY_SET = "availability:set"
    CONTACTS_READ = "contacts:read"
    CONTACTS_WRITE = "contacts:write"
    CONTACTS_ERASE = "contacts:erase"
    CONVERSATIONS_READ = "conversations:read"
    CONVERSATIONS_WORK = "conversations:work"
    TAGS_MANAGE = "tags:manage"
    WEBHOOKS_MANAGE = "webhooks:manage"
    KNOWLEDGE_READ = "knowledge:read"
    KNOWLEDGE_WRITE = "knowledge:write"
    KNOWLEDGE_CONFIGURE = "knowledge:configure"
    AI_READ = "ai:read"
    AI_USE = "ai:use"
    AI_CONFIGURE = "ai:configure"

    @property
    def description(self) -> str:
        return DESCRIPTIONS[self]


DESCRIPTIONS = {
    Permission.ACCOUNT: "manage your own account: profile, sessions, password, email, organizations",
    Permission.ORG_READ: "see the organization",
    Permission.ORG_UPDATE: "rename the organization, change its slug and settings",
    Permission.ORG_DELETE: "delete the organization and all its data",
    Permission.MEMBERS_READ: "list the members and their roles",
    Permission.MEMBERS_MANAGE: "change members' roles and remove members (never above your own role)",
    Permission.INVITATIONS_MANAGE: "invite people (never above your own role), list and revoke invitations",
    Permission.API_KEYS_MANAGE: "create, list and revoke API keys",
    Permission.AUDIT_READ: "read the audit log",
    Permission.INBOXES_READ: "see the inboxes, SLA policies, teams and their members, and who is available",
    Permission.INBOXES_MANAGE: "create, change and delete inboxes and SLA policies; rotate an inbox's "
    "identity secret",
    Permission.TEAMS_MANAGE: "create, rename and delete teams; add and remove their members",
    Permission.AVAILABILITY_SET: "set your own availability (online, away, offline)",
    Permission.CONTACTS_READ: "see and list contacts (the organization's customers)",
    Permission.CONTACTS_WRITE: "create, update and merge contacts",
    Permission.CONTACTS_ERASE: "erase a contact's personal data (right to erasure)",
    Permission.CONVERSATIONS_READ: "see and list conversations and their messages (notes included)",
    Permission.CONVERSATIONS_WORK: "open conversations, post messages and notes; change a conversation's "
    "status, priority, assignee, team, tags (a tag new to the organization joins its tags), subject and "
    "attributes",
    Permission.TAGS_MANAGE: "create, rename, describe and delete the organization's tags (a rename or "
    "deletion applies to every conversation carrying the tag)",
    Permission.WEBHOOKS_MANAGE: "create, change, test and delete webhook endpoints, rotate their signing "
    "secrets, list and replay their deliveries",
    Permission.KNOWLEDGE_READ: "see the knowledge base's sources (internal ones included) and search it",
    Permission.KNOWLEDGE_WRITE: "write, change and delete articles; add the questions an article answered",
    Permission.KNOWLEDGE_CONFIGURE: "set and remove the embedding model search uses (its provider and key)",
    Permission.AI_READ: "see the AI's drafts, triage and summaries of conversations, and its settings (never "
    "the provider's key)",
    Permission.AI_USE: "ask the AI for a draft reply, send or discard it; turn the AI back on in a "
    "conversation it handed off",
    Permission.AI_CONFIGURE: "set the AI's provider and key, budget, thresholds and sensitive topics; manage "
    "triage categories and their examples; run evaluations; read usage",
}

_EVERYONE = {
    Permission.ACCOUNT,
    Permission.ORG_READ,
    Permission.MEMBERS_READ,
    Permission.INBOXES_READ,
    Permission.AVAILABILITY_SET,
    Permission.CONTACTS_READ,
    Permission.CONVERSATIONS_READ,
    Permission.KNOWLEDGE_READ,
    Permission.AI_READ,
}
# Agents work the inbox: its customers and conversations.
_AGENTS = _EVERYONE | {
    Permission.CONTACTS_WRITE,
    Permission.CONVERSATIONS_WORK,
    Permission.KNOWLEDGE_WRITE,
    Permission.AI_USE,
}
_MANAGERS = _AGENTS | {
    Permission.ORG_UPDATE,
    Permission.MEMBERS_MANAGE,
    Permission.INVITATIONS_MANAGE,
    Permission.API_KEYS_MANAGE,
    Permission.AUDIT_READ,
    Permission.INBOXES_MANAGE,
    Permission.TEAMS_MANAGE,
    Permission.CONTACTS_ERASE,
    Permission.TAGS_MANAGE,
    Permission.WEBHOOKS_MANAGE,
    Permission.KNOWLEDGE_CONFIGURE,
    Permission.AI_CONFIGURE,
}
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.OWNER: frozenset(_MANAGERS | {Permission.ORG_DELETE}),
    Role.ADMIN: frozenset(_MANAGERS),
    Role.AGENT: frozenset(_AGENTS),
    Role.VIEWER: frozenset(_EVERYONE),
}

# An API key acts as a non-human member with its role, minus everything about people, keys and the
# organization itself: a leaked key cannot lock the humans out or mint more keys. A key is nobody, so it
# has no availability, and it does not put people in teams; an admin key may set up inboxes and SLA
# policies (provisioning an integration), identity secrets included.
API_KEY_EXCLUDED = frozenset(
    {
        Permission.ACCOUNT,
        Permission.ORG_UPDATE,
        Permission.ORG_DELETE,
        Permission.MEMBERS_MANAGE,
        Permission.INVITATIONS_MANAGE,
        Permission.API_KEYS_MANAGE,
        Permission.TEAMS_MANAGE,
        Permission.AVAILABILITY_SET,
    }
)
API_KEY_ROLES = (Role.ADMIN, Role.AGENT, Role.VIEWER)


def permissions_of(role: Role, *, api_key: bool = False) -> frozenset[Permission]:
    granted = ROLE_PERMISSIONS[role]
    return granted - API_KEY_EXCLUDED if api_key else granted


def render_matrix() -> str:
    """The permission matrix as the Markdown table of docs/permissions.md."""
    columns = [*Role, "API key (admin)"]
    lines = [
        "| permission | what it allows | " + " | ".join(str(column) for column in columns) + " |",
        "|---|---|" + "---|" * len(columns),
    ]
    for permission in Permission:
        cells = ["yes" if permission in permissions_of(role) else "" for role in Role]
        cells.append("yes" if permission in permissions_of(Role.ADMIN, api_key=True) else "")
        lines.append(f"| `{permission}` | {permission.description} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
