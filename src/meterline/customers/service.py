"""Customers: individuals and organizations, keyed by the app's ``external_id``.

A customer may name a ``parent`` organization (its usage is attributed to, limited by
and billed to the parent). Hierarchies may nest, but never loop; the ``billing root``
of a customer is its top-most ancestor.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session, aliased

from meterline.customers.models import Customer
from meterline.customers.schemas import CustomerCreate, CustomerRead, CustomerUpdate
from meterline.db import dialect_insert, insert_unique
from meterline.errors import AlreadyExists, CustomerHasMembers, NotFound, invalid
from meterline.kit import rawsql
from meterline.kit.pagination import Page, cursor_key, make_page
from meterline.kit.time import utc_now
from meterline.workspaces import terms as workspace_terms

MAX_DEPTH = 16

_Parent = aliased(Customer)


def _live(workspace_id: int) -> Select[Customer, str | None]:
    return (
        select(Customer, _Parent.external_id)
        .outerjoin(_Parent, Customer.parent_id == _Parent.id)
        .where(Customer.workspace_id == workspace_id, Customer.deleted_at.is_(None))
    )


def to_read(customer: Customer, parent_external_id: str | None) -> CustomerRead:
    return CustomerRead(
        external_id=customer.external_id,
        name=customer.name,
        email=customer.email,
        parent=parent_external_id,
        timezone=customer.timezone,
        metadata=customer.attributes,
        stripe_customer_id=customer.stripe_customer_id,
        created_at=customer.created_at,
        updated_at=customer.updated_at,
    )


def find(session: Session, workspace_id: int, external_id: str) -> Customer | None:
    return session.scalar(
        select(Customer).where(
            Customer.workspace_id == workspace_id,
            Customer.external_id == external_id,
            Customer.deleted_at.is_(None),
        )
    )


def get(session: Session, workspace_id: int, external_id: str) -> Customer:
    customer = find(session, workspace_id, external_id)
    if customer is None:
        raise NotFound(f"No customer {external_id!r}.")
    return customer


def read(session: Session, workspace_id: int, external_id: str) -> CustomerRead:
    row = session.execute(_live(workspace_id).where(Customer.external_id == external_id)).first()
    if row is None:
        raise NotFound(f"No customer {external_id!r}.")
    return to_read(row[0], row[1])


def _resolve_parent(
    session: Session, workspace_id: int, parent: str, child: Customer | None
) -> Customer:
    found = find(session, workspace_id, parent)
    if found is None:
        raise invalid("parent", "unknown_parent", f"No customer {parent!r} to be the parent.")
    # Walk up from the new parent: meeting the child itself would close a loop.
    node: Customer | None = found
    depth = 0
    while node is not None:
        if child is not None and node.id == child.id:
            raise invalid(
                "parent",
                "parent_cycle",
                f"{parent!r} is {child.external_id!r} "
                "or one of its members: that would make a loop.",
            )
        depth += 1
        if depth > MAX_DEPTH:
            raise invalid(
                "parent", "parent_too_deep", f"Organizations nest {MAX_DEPTH} deep at most."
            )
        node = session.get(Customer, node.parent_id) if node.parent_id is not None else None
    return found


def create(session: Session, workspace_id: int, data: CustomerCreate) -> CustomerRead:
    parent = _resolve_parent(session, workspace_id, data.parent, None) if data.parent else None
    customer = Customer(
        workspace_id=workspace_id,
        external_id=data.external_id,
        name=data.name,
        email=data.email,
        parent_id=parent.id if parent else None,
        timezone=data.timezone,
        attributes=data.metadata,
        stripe_customer_id=data.stripe_customer_id,
    )
    insert_unique(session, customer, AlreadyExists(f"A customer {data.external_id!r} exists."))
    return to_read(customer, parent.external_id if parent else None)


def list_page(
    session: Session,
    workspace_id: int,
    *,
    limit: int,
    after: str | None,
    parent: str | None = None,
    stripe_customer_id: str | None = None,
    search: str | None = None,
) -> Page[CustomerRead]:
    """Customers in creation order; ``search``: external id or name contains it (any case)."""
    query = _live(workspace_id).order_by(Customer.id).limit(limit + 1)
    if stripe_customer_id is not None:
        query = query.where(Customer.stripe_customer_id == stripe_customer_id)
    if search:
        query = query.where(
            or_(
                Customer.external_id.icontains(search, autoescape=True),
                Customer.name.icontains(search, autoescape=True),
            )
        )
    if (last := cursor_key(after, int)) is not None:
        query = query.where(Customer.id > last)
    if parent is not None:
        query = query.where(_Parent.external_id == parent, _Parent.deleted_at.is_(None))
    page = make_page(session.execute(query).all(), limit, key=lambda row: row[0].id)
    return Page([to_read(c, p) for c, p in page.items], page.next_cursor)


def update(
    session: Session, workspace_id: int, external_id: str, patch: CustomerUpdate
) -> CustomerRead:
    customer = get(session, workspace_id, external_id)
    sent = patch.model_fields_set
    if "name" in sent:
        customer.name = patch.name
    if "email" in sent:
        customer.email = patch.email
    if "timezone" in sent:
        if patch.timezone is None:
            raise invalid("timezone", "invalid_timezone", "timezone cannot be null; use UTC.")
        customer.timezone = patch.timezone
    if "metadata" in sent:
        customer.attributes = patch.metadata or {}
    if "stripe_customer_id" in sent:
        customer.stripe_customer_id = patch.stripe_customer_id
    if "parent" in sent:
        if patch.parent is None:
            customer.parent_id = None
        else:
            customer.parent_id = _resolve_parent(session, workspace_id, patch.parent, customer).id
    customer.updated_at = utc_now()
    session.flush()
    workspace_terms.bump(session, workspace_id)
    return read(session, workspace_id, external_id)


def delete(session: Session, workspace_id: int, external_id: str) -> None:
    """Archive a customer: it disappears from the API; its history stays."""
    customer = get(session, workspace_id, external_id)
    member = session.scalar(
        select(Customer.external_id)
        .where(Customer.parent_id == customer.id, Customer.deleted_at.is_(None))
        .limit(1)
    )
    if member is not None:
        raise CustomerHasMembers(
            f"{external_id!r} still has members (such as {member!r}); move or delete them first."
        )
    customer.deleted_at = utc_now()
    session.flush()
    workspace_terms.bump(session, workspace_id)


def resolve_many(
    session: Session, workspace_id: int, external_ids: set[str], *, create: bool
) -> dict[str, tuple[int, int]]:
    """For each external id: (customer id, billing customer id), creating unknown
    customers when ``create``; unknown ones are left out otherwise.

    The billing customer is the top-most organization above the customer (or itself).
    Creation is ``INSERT … ON CONFLICT DO NOTHING``, so concurrent batches naming the
    same new customer create it once.
    """
    found = _live_ids(session, workspace_id, external_ids)
    missing = external_ids - found.keys()
    if missing and create:
        now = utc_now()
        insert = dialect_insert(session, Customer.__table__).on_conflict_do_nothing(  # type: ignore[arg-type]
            index_elements=["workspace_id", "external_id"],
            index_where=Customer.deleted_at.is_(None),
        )
        session.execute(
            insert,
            [
                {
                    "workspace_id": workspace_id,
                    "external_id": external_id,
                    "timezone": "UTC",
                    "metadata": {},
                    "created_at": now,
                    "updated_at": now,
                }
                for external_id in sorted(missing)
            ],
        )
        found.update(_live_ids(session, workspace_id, missing))
    parents = {cid: parent for cid, parent in found.values() if parent is not None}
    roots = _roots(session, set(parents.values()))
    return {
        external_id: (cid, roots[parent] if parent is not None else cid)
        for external_id, (cid, parent) in found.items()
    }


def _live_ids(
    session: Session, workspace_id: int, external_ids: set[str]
) -> dict[str, tuple[int, int | None]]:
    """(id, parent id) of the live customers named. On every recorded batch, so it
    speaks driver-level SQL (``kit.rawsql``)."""
    found: dict[str, tuple[int, int | None]] = {}
    ordered = sorted(external_ids)
    mark = rawsql.driver(session).mark
    for start in range(0, len(ordered), 500):
        chunk = ordered[start : start + 500]
        rows = rawsql.run(
            session,
            f"SELECT external_id, id, parent_id FROM customers WHERE workspace_id = {mark} "
            f"AND deleted_at IS NULL AND external_id IN ({', '.join([mark] * len(chunk))})",
            (workspace_id, *chunk),
        )
        for external_id, cid, parent in rows:
            found[external_id] = (cid, parent)
    return found


def _roots(session: Session, customer_ids: set[int]) -> dict[int, int]:
    """The top-most ancestor of each customer (itself when it has no parent)."""
    parent_of: dict[int, int | None] = {}
    frontier = set(customer_ids)
    for _ in range(MAX_DEPTH + 1):
        frontier -= parent_of.keys()
        if not frontier:
            break
        for cid, parent in session.execute(
            select(Customer.id, Customer.parent_id).where(Customer.id.in_(frontier))
        ):
            parent_of[cid] = parent
        frontier = {p for p in parent_of.values() if p is not None}
    roots: dict[int, int] = {}
    for cid in customer_ids:
        node = cid
        while parent_of.get(node) is not None:
            node = parent_of[node]  # type: ignore[assignment]
        roots[cid] = node
    return roots


def external_ids(session: Session, customer_ids: set[int]) -> dict[int, str]:
    """External ids for internal ids (archived customers included: history names them)."""
    if not customer_ids:
        return {}
    query = select(Customer.id, Customer.external_id).where(Customer.id.in_(customer_ids))
    return dict(session.execute(query).all())


def lock(session: Session, customer_id: int) -> None:
    """Serialise writers on one customer (row lock on PostgreSQL; SQLite has one writer)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(Customer.id).where(Customer.id == customer_id).with_for_update())


def root_of(session: Session, customer: Customer) -> int:
    """The id of the top-most organization above ``customer`` (or its own)."""
    if customer.parent_id is None:
        return customer.id
    return _roots(session, {customer.id})[customer.id]


def id_for_filter(session: Session, workspace_id: int, external_id: str) -> int:
    """The customer's id for filtering a list by it (-1, matching nothing, if unknown)."""
    found = find(session, workspace_id, external_id)
    return -1 if found is None else found.id


def created_at(session: Session, customer_id: int) -> datetime:
    found = session.scalar(select(Customer.created_at).where(Customer.id == customer_id))
    assert found is not None  # callers pass ids they read
    return found


def zone_of(session: Session, customer_id: int) -> ZoneInfo:
    """The customer's time zone (days, months and periods are counted there)."""
    return zones_of(session, {customer_id})[customer_id]


def zones_of(session: Session, customer_ids: set[int]) -> dict[int, ZoneInfo]:
    rows = session.execute(
        select(Customer.id, Customer.timezone).where(Customer.id.in_(customer_ids))
    )
    return {customer_id: ZoneInfo(name) for customer_id, name in rows}


def scope_of(customer: Customer) -> tuple[int, bool]:
    """Whose usage a query for this customer means: (id, by billing attribution?).

    A customer without a parent sees everything billed to it (its members included);
    a member sees its own usage."""
    return customer.id, customer.parent_id is None


def stripe_mapped(session: Session, workspace_id: int) -> dict[int, tuple[str, str]]:
    """Billed customers (no parent) with a Stripe customer: id → (external id, Stripe id).
    A member's usage is billed to, and reported through, its organization."""
    rows = session.execute(
        select(Customer.id, Customer.external_id, Customer.stripe_customer_id).where(
            Customer.workspace_id == workspace_id,
            Customer.deleted_at.is_(None),
            Customer.parent_id.is_(None),
            Customer.stripe_customer_id.is_not(None),
        )
    )
    return {cid: (external_id, stripe_id or "") for cid, external_id, stripe_id in rows}


def stripe_unmapped(session: Session, workspace_id: int, sample: int) -> tuple[int, list[str]]:
    """How many billed customers have no Stripe customer, and the first ``sample``."""
    where = (
        Customer.workspace_id == workspace_id,
        Customer.deleted_at.is_(None),
        Customer.parent_id.is_(None),
        Customer.stripe_customer_id.is_(None),
    )
    count = session.scalar(select(func.count()).select_from(Customer).where(*where)) or 0
    names = session.scalars(select(Customer.external_id).where(*where).order_by(Customer.id))
    return count, list(names.fetchmany(sample))


def stripe_customer_of(session: Session, customer_id: int) -> str | None:
    found: str | None = session.scalar(
        select(Customer.stripe_customer_id).where(Customer.id == customer_id)
    )
    return found


def billing_roots(session: Session, workspace_id: int) -> list[tuple[int, str, str | None]]:
    """(id, external id, name) of every live customer that is billed itself (no parent)."""
    rows = session.execute(
        select(Customer.id, Customer.external_id, Customer.name)
        .where(
            Customer.workspace_id == workspace_id,
            Customer.parent_id.is_(None),
            Customer.deleted_at.is_(None),
        )
        .order_by(Customer.id)
    )
    return [(cid, external_id, name) for cid, external_id, name in rows]
