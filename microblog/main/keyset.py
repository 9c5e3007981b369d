"""Keyset (cursor) pagination: a page costs the same at the first post and the millionth.

A page is read from an index, starting just past the last row the reader
saw: `WHERE (timestamp, id) < cursor ORDER BY timestamp DESC, id DESC LIMIT n+1`.
No OFFSET to skip over and no COUNT(*): the database touches n+1 rows, plus one
LIMIT 1 probe for a newer page when the reader came from one.

Cursors are opaque to readers (base64 of the key) and checked strictly: anything
that is not a key this app could have written is a 404, never a database error.
"""

import base64
import binascii
import operator
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import abort, request, url_for

from microblog.extensions import db
from microblog.hostile_input import LARGEST_INTEGER

EPOCH = datetime(1970, 1, 1)
MAX_CURSOR_LENGTH = 64


@dataclass
class Page:
    """The rows of one page and the URLs of its neighbours (None where there is none)."""

    items: list
    next_url: str | None  # older
    prev_url: str | None  # newer


def encode(key):
    """A key tuple (datetimes and integers) as a short URL-safe token."""
    parts = []
    for value in key:
        if isinstance(value, datetime):
            value = (value - EPOCH) // timedelta(microseconds=1)
        parts.append(str(value))
    return base64.urlsafe_b64encode(":".join(parts).encode()).decode().rstrip("=")


def decode(token, kinds):
    """The key a token carries, shaped by `kinds` (datetime or int), or a 404."""
    if len(token) > MAX_CURSOR_LENGTH:
        abort(404)
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        abort(404)
    parts = text.split(":")
    if len(parts) != len(kinds) or not all(part.isdigit() and part.isascii() for part in parts):
        abort(404)
    key = []
    for kind, part in zip(kinds, parts, strict=True):
        number = int(part)
        if number > LARGEST_INTEGER:
            abort(404)
        if kind is datetime:
            try:
                key.append(EPOCH + timedelta(microseconds=number))
            except OverflowError:
                abort(404)
        else:
            key.append(number)
    return tuple(key)


def paginate(query, columns, row_key, per_page, endpoint, **values):
    """One page of `query` in descending order of `columns`, from the request's cursor.

    `?before=` (older) or `?after=` (newer) carries the cursor; neither is the
    newest page. `row_key(item)` gives an item's key, in the order of `columns`.
    """
    kinds = [datetime if isinstance(column.type, sa.DateTime) else int for column in columns]

    def fetch(bound, descending, limit):
        return rows(bounded(query, columns, bound), columns, descending, limit)

    return paginate_fetched(fetch, kinds, row_key, per_page, endpoint, **values)


def bounded(query, columns, bound):
    """`query` past the cursor: `bound` is None or (comparison, key), e.g. (operator.lt, key)."""
    if bound is None:
        return query
    compare, cursor = bound
    return query.where(compare(sa.tuple_(*columns), cursor))


def paginate_fetched(fetch, kinds, row_key, per_page, endpoint, **values):
    """A page from `fetch(bound, descending, limit)`, the items past a bound in key order.

    For pages read from more than one source (the home timeline merges two):
    `fetch` returns at most `limit` items, descending or ascending by key.
    """
    before, after = request.args.get("before"), request.args.get("after")
    if before is not None:
        cursor = decode(before, kinds)
        items = fetch((operator.lt, cursor), True, per_page + 1)
        has_older = len(items) > per_page
        items = items[:per_page]
        has_newer = bool(fetch((operator.ge, cursor), False, 1))
    elif after is not None:
        cursor = decode(after, kinds)
        items = fetch((operator.gt, cursor), False, per_page + 1)
        has_newer = len(items) > per_page
        items = list(reversed(items[:per_page]))
        has_older = bool(fetch((operator.le, cursor), True, 1))
    else:
        items = fetch(None, True, per_page + 1)
        has_older, has_newer = len(items) > per_page, False
        items = items[:per_page]
    next_url = prev_url = None
    if items and has_older:
        next_url = url_for(endpoint, before=encode(row_key(items[-1])), **values)
    if items and has_newer:
        prev_url = url_for(endpoint, after=encode(row_key(items[0])), **values)
    elif has_newer:  # past the end (e.g. everything older was deleted): back to the start
        prev_url = url_for(endpoint, **values)
    return Page(items, next_url, prev_url)


def rows(query, columns, descending, limit):
    order = [column.desc() if descending else column.asc() for column in columns]
    return db.session.scalars(query.order_by(*order).limit(limit)).all()
