"""The audit trail: what happened to which account, on one logger (`microblog.audit`).

A line is an event name and its fields, `login.success user=42`: an operator
follows an account by its id. Addresses are masked before they get here.
The flows record; views never do, so one layer says what is in the trail.
"""

import logging

log = logging.getLogger("microblog.audit")


def record(event, **fields):
    """An INFO line: something happened as it should."""
    _emit(logging.INFO, event, fields)


def warning(event, **fields):
    """A WARNING line: something was refused or cut short (a pause, a limit, a reused link)."""
    _emit(logging.WARNING, event, fields)


def _emit(level, event, fields):
    # The fields stay logging arguments, formatted only if a handler wants the line.
    line = " ".join([event, *(f"{name}=%s" for name in fields)])
    log.log(level, line, *fields.values())
