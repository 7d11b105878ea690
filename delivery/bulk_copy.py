"""Many new rows written by COPY on PostgreSQL: a bulk invite's jobs (``services.email_enqueue``)
and its invitations (``invitations.services.organizer``).

A bulk invite writes ten thousand jobs of a few kilobytes each, and as many invitations. Through
``bulk_create`` (an INSERT of UNNESTed arrays) psycopg quotes every array element in Python:
200-470 ms per thousand jobs here, the largest part of the request. COPY into a scratch table
and one ``INSERT ... SELECT`` from it takes about 100 ms; with ``skip_conflicts`` the INSERT says
``ON CONFLICT DO NOTHING``, so an idempotency key the outbox has is skipped exactly as
``bulk_create(..., ignore_conflicts=True)`` skips it. Fewer rows, or another database:
``bulk_create`` (``can_copy``).
"""

from __future__ import annotations

import datetime as dt
import functools
import operator
from collections.abc import Sequence

from django.db import connection, models

# Below this many rows the one INSERT of bulk_create costs no more than the scratch table.
COPY_FROM = 100


def can_copy(count: int) -> bool:
    return connection.vendor == "postgresql" and count >= COPY_FROM


def copy_insert(
    model: type[models.Model],
    objs: Sequence[models.Model],
    *,
    key: str,
    returning: Sequence[str],
    skip_conflicts: bool = False,
) -> dict[str, tuple]:
    """INSERT ``objs`` by COPY; return {``key`` column's value: the ``returning`` columns} of
    the rows written (a row skipped for a conflict is not among them). Runs in the caller's
    transaction, which must be open."""
    fields = _fields(model)
    columns = ", ".join(connection.ops.quote_name(field.column) for field, _, _ in fields)
    scratch = f"gpmas_copy_{model._meta.db_table}"
    with connection.cursor() as cursor:
        # A scratch table for the transaction: created by the first batch, emptied by the INSERT
        # that moves its rows, gone at commit or rollback.
        cursor.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {scratch} ON COMMIT DROP AS "
            f"SELECT {columns} FROM {model._meta.db_table} WITH NO DATA"
        )
        with cursor.cursor.copy(f"COPY {scratch} ({columns}) FROM STDIN") as copy:
            for obj in objs:
                # What bulk_create does per value: auto_now(_add) stamps, then the stored form.
                copy.write_row(
                    [
                        _db_value(field, field.pre_save(obj, True) if stamped else obj_value(obj))
                        for field, stamped, obj_value in fields
                    ]
                )
        cursor.execute(
            f"WITH moved AS (DELETE FROM {scratch} RETURNING *) "
            f"INSERT INTO {model._meta.db_table} ({columns}) SELECT {columns} FROM moved "
            + ("ON CONFLICT DO NOTHING " if skip_conflicts else "")
            + "RETURNING "
            + ", ".join(connection.ops.quote_name(name) for name in (key, *returning))
        )
        return {row[0]: row[1:] for row in cursor.fetchall()}


def instance(model: type[models.Model], **values) -> models.Model:
    """``model(**values)`` by the positional path Django's own ``from_db`` takes, for rows built
    by the thousand: keyword construction costs about 45 us a row here against 18, and a
    10,000-guest invite builds 20,000 rows. ``values`` go by attribute name (``event_id``, not
    ``event``); every other field gets its default, exactly as ``Model.__init__`` gives it."""
    args = [
        values.pop(field.attname) if field.attname in values else field.get_default()
        for field in model._meta.concrete_fields
    ]
    if values:
        raise TypeError(f"{model.__name__} has no field {', '.join(sorted(values))}")
    return model(*args)


def insert_all(model: type[models.Model], objs: list, *, key: str) -> list:
    """``model.objects.bulk_create(objs)``, by COPY where ``can_copy``: each object gets its
    row's id, found by its ``key`` (a unique column)."""
    if not can_copy(len(objs)):
        return model.objects.bulk_create(objs)
    ids = copy_insert(model, objs, key=key, returning=("id",))
    for obj in objs:
        [obj.pk] = ids[getattr(obj, key)]
        obj._state.adding, obj._state.db = False, connection.alias
    return objs


def _db_value(field, value):
    # Values psycopg stores as they are skip get_db_prep_save's checks: they were a third of the
    # COPY's time (JSON, enums and anything else still go through it).
    if value is None or type(value) in (str, int, bool):
        return value
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value
    return field.get_db_prep_save(value, connection)


@functools.cache
def _fields(model: type[models.Model]) -> list[tuple]:
    """(field, whether its ``pre_save`` stamps a value, a getter of its value as it is). Only
    ``auto_now``/``auto_now_add`` dates and fields with a ``pre_save`` of their own need the call;
    for the rest it is the getter, a fifth of the COPY's Python time when it was called."""
    return [
        (field, _stamps(field), operator.attrgetter(field.attname))
        for field in model._meta.concrete_fields
        if not field.primary_key
    ]


def _stamps(field) -> bool:
    if isinstance(field, models.DateField):
        return field.auto_now or field.auto_now_add
    return type(field).pre_save is not models.Field.pre_save
