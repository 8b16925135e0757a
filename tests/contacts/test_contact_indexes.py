"""The list's filters are served by indexes led by the organization (decision 0033): the query the
repository builds is explained in a database holding many contacts of one organization and others'."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url

from aisupport.contacts.repository import ContactFilters, contacts_query

ORGANIZATION = uuid.UUID("00000000-0000-4000-8000-00000000c0c0")
NEIGHBOUR = uuid.UUID("00000000-0000-4000-8000-00000000c0c1")


@pytest.fixture(scope="module")
def owner_connection(database_url: str) -> Iterator[psycopg.Connection]:
    """The database owner (not bound by row-level security), with two organizations of 20,000
    contacts each; removed afterwards."""
    url = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url, autocommit=True) as conn:
        for organization in (ORGANIZATION, NEIGHBOUR):
            conn.execute(
                "INSERT INTO organizations (id, name, slug) VALUES (%s, 'plans', %s)",
                (organization, f"plans-{organization.hex[-6:]}"),
            )
            conn.execute(
                "INSERT INTO contacts (id, organization_id, name, email, external_id)"
                " SELECT gen_random_uuid(), %s, 'name ' || md5(n::text), md5(n::text) || '@example.com',"
                " 'ext-' || n FROM generate_series(1, 20000) AS n",
                (organization,),
            )
        conn.execute("ANALYZE contacts")
        try:
            yield conn
        finally:
            conn.execute("DELETE FROM organizations WHERE id IN (%s, %s)", (ORGANIZATION, NEIGHBOUR))


def _plan(conn: psycopg.Connection, filters: ContactFilters) -> str:
    query = contacts_query(ORGANIZATION, filters, after=None, limit=51)
    sql = str(query.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    sql = sql.replace("%%", "%")  # the dialect escapes % for a driver's parameters; none are sent here
    return "\n".join(row[0] for row in conn.execute(f"EXPLAIN {sql}"))  # type: ignore[call-overload]


@pytest.mark.parametrize(
    ("filters", "indexes"),
    [
        (ContactFilters(prefix="name abc"), {"ix_contacts_organization_id_lower_name"}),
        (
            ContactFilters(prefix="abc"),
            {"ix_contacts_organization_id_lower_name", "uq_contacts_organization_id_lower_email"},
        ),
        (ContactFilters(email="ABC@example.com"), {"uq_contacts_organization_id_lower_email"}),
        (ContactFilters(external_id="ext-77"), {"uq_contacts_organization_id_external_id"}),
        (ContactFilters(), {"ix_contacts_organization_id_created_at_id"}),
    ],
)
def test_each_filter_uses_its_index(
    owner_connection: psycopg.Connection, filters: ContactFilters, indexes: set[str]
) -> None:
    plan = _plan(owner_connection, filters)
    assert "Seq Scan" not in plan, plan
    for index in indexes:
        assert index in plan, plan
