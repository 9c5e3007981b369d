"""Control characters never reach a query: PostgreSQL refuses NUL, and no name or text needs them.

Refused at the edge, once for every route: in path segments and query values
(a 404: no such page) by `refuse_in_url`, and in form fields (a form error)
by the shared form base in microblog/forms.py.
"""

import re

from flask import abort, request

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
