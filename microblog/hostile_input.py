"""What no route has to think about: control characters and numbers no column can hold.

Control characters never reach a query (PostgreSQL refuses NUL, and no name
or text needs them): refused at the edge, once for every route, in path
segments and query values (a 404: no such page) by `refuse_in_url`, and in
form fields (a form error) by the shared form base in microblog/forms.py.
An `<int:...>` path segment past 64 bits is a 404 too (`BoundedInt`):
SQLite raises OverflowError on such a parameter.
"""

import re

from flask import abort, request
from werkzeug.routing import IntegerConverter

# The one 64-bit bound: SQLite's INTEGER, PostgreSQL's bigint (routes, cursors, ids).
LARGEST_INTEGER = 2**63 - 1

# C0 and C1 controls and DEL; tab, newline and carriage return are ordinary text.
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def contains_control_characters(values):
    """True when any of the strings holds a control character other than tab, CR or LF."""
    return any(isinstance(value, str) and CONTROL.search(value) for value in values)


def refuse_in_url():
    """A before_request hook: a path segment or query value with a control character is a 404."""
    values = list((request.view_args or {}).values())
    for key, value in request.args.items(multi=True):
        values += (key, value)
    if contains_control_characters(values) or CONTROL.search(request.path):
        abort(404)


class BoundedInt(IntegerConverter):
    """Flask's `int` converter, with a maximum that every database column can compare with."""

    def __init__(self, map, fixed_digits=0, min=None, max=LARGEST_INTEGER, signed=False):
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)
