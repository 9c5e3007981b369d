"""No request breaks the app: every route, GET and POST, signed in and out, with hostile values.

The routes come from the app's own URL map, so a new route is driven as soon
as it exists. The only thing asserted is what must hold for any input: the
answer is never a 5xx (a form error, a 404, a 413 or a redirect are fine).
"""

import re
from urllib.parse import quote, urlencode

import pytest
from flask_wtf import FlaskForm

from microblog.forms import CONTROL_CHARACTER_ERROR, Form
from support.auth import PASSWORD

HOSTILE = [
    "\x00",
    "a\x00b",
    "\x01\x08\x1b[31m\x7f",
    "\u0085\u009f",  # C1 controls
    "9223372036854775807",
    "99999999999999999999999999",
    "-1",
    "0",
    "NaN",
    "1e308",
    "\u202egnp.exe\ufeff\u200b",  # direction override, BOM, zero-width space
    "e\u0301" * 300 + "\U0001d54f",  # combining marks and an astral character
    "x" * 20_000,
    "../../../../etc/passwd",
    "%2e%2e%2f%00",
    "<script>alert(1)</script>",
    "' OR 1=1 --",
    "%s%n{0}",
    "\\\\evil.example",
]
FIELD_NAMES = [
    "username",
    "email",
    "password",
    "password2",
    "current_password",
    "remember_me",
    "post",
    "about_me",
    "locale",
    "token",
    "next",
    "page",
]
QUERY_NAMES = ["page", "next", "lang", "q"]
NAME_ATTRIBUTE = re.compile(r'\sname="([^"]+)"')
VALUE_MARK = re.compile(r"<[^>]+>")


def routes(app):
    """Every rule of the app as (path template, methods), sign-out last (it ends the session)."""
    rules = sorted(app.url_map.iter_rules(), key=lambda rule: rule.endpoint == "auth.logout")
    return [(rule.rule, rule.methods & {"GET", "POST"}) for rule in rules]


def fill(template, value):
    """The rule's path with every variable part set to the value, percent-encoded."""
    return VALUE_MARK.sub(lambda _: quote(value, safe=""), template) if "<" in template else None


def concrete(template):
    """The rule's path with plausible values (a real user, post 1) for its variable parts."""
    return VALUE_MARK.sub(lambda m: "1" if "int" in m.group(0) else "susan", template)


def field_names(client, path):
    """The form fields the page at `path` shows, plus the usual names of every form."""
    shown = NAME_ATTRIBUTE.findall(client.get(path).text)
    return sorted(set(shown) | set(FIELD_NAMES))


def drive(client, app, failures):
    """Every route, GET and POST, with every hostile value in path, query and form."""
    for template, methods in routes(app):
        path = concrete(template)
        names = field_names(client, path) if "GET" in methods else FIELD_NAMES
        for value in HOSTILE:
            query = urlencode(dict.fromkeys(QUERY_NAMES, value))
            targets = [f"{path}?{query}"]
            if filled := fill(template, value):
                targets.append(filled)
            for target in targets:
                for method in sorted(methods):
                    data = dict.fromkeys(names, value) if method == "POST" else None
                    status = client.open(target, method=method, data=data).status_code
                    if status >= 500:
                        failures.append(f"{method} {template} with {value[:30]!r}: {status}")


def sign_in(client, make_user):
    make_user("susan")
    response = client.post("/auth/login", data={"username": "susan", "password": PASSWORD})
    assert response.headers["Location"] == "/index"


def test_no_hostile_value_anywhere_gets_a_5xx_signed_out(app, client, make_user):
    make_user("susan")
    failures = []
    drive(client, app, failures)
    assert failures == []


def test_no_hostile_value_anywhere_gets_a_5xx_signed_in(app, client, make_user):
    sign_in(client, make_user)
    failures = []
    drive(client, app, failures)
    assert failures == []


BODIES = {
    "over MAX_CONTENT_LENGTH": (
        "application/x-www-form-urlencoded",
        b"post=" + b"x" * (1024 * 1024 + 1),
        413,
    ),
    "one multipart field over MAX_FORM_MEMORY_SIZE": (
        "multipart/form-data; boundary=b",
        b'--b\r\nContent-Disposition: form-data; name="post"\r\n\r\n'
        + b"x" * (65 * 1024)
        + b"\r\n--b--\r\n",
        413,
    ),
    "over MAX_FORM_PARTS": (
        "multipart/form-data; boundary=b",
        b"".join(
            b'--b\r\nContent-Disposition: form-data; name="f%d"\r\n\r\nx\r\n' % n
            for n in range(150)
        )
        + b"--b--\r\n",
        413,
    ),
    "multipart without a boundary": ("multipart/form-data", b"--x\r\n\r\n", None),
    "multipart cut short": (
        "multipart/form-data; boundary=b",
        b'--b\r\nContent-Disposition: form-data; name="post"\r\n\r\nunfinished',
        None,
    ),
    "multipart garbage": ("multipart/form-data; boundary=b", b"\x00\xff" * 500, None),
    "a file where a field belongs": (
        "multipart/form-data; boundary=b",
        b'--b\r\nContent-Disposition: form-data; name="post"; filename="../../x"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n" + b"\x00" * 1000 + b"\r\n--b--\r\n",
        None,
    ),
    "invalid UTF-8": ("application/x-www-form-urlencoded", b"username=%ff%fe%00&post=%c0", None),
}


@pytest.mark.parametrize(("content_type", "body", "expected"), BODIES.values(), ids=BODIES.keys())
def test_malformed_and_oversized_bodies_are_refused_cleanly(
    app, client, make_user, content_type, body, expected
):
    sign_in(client, make_user)
    for template, methods in routes(app):
        if "POST" not in methods:
            continue
        response = client.post(concrete(template), data=body, content_type=content_type)
        assert response.status_code < 500, (template, response.status_code)
        if expected is not None and template == "/index":  # a view that reads its form
            assert response.status_code == expected, template


def test_an_oversized_body_gets_the_413_page_on_every_route(app, client, make_user):
    """Declared too large: refused before any view, even one that would never read it."""
    sign_in(client, make_user)
    body = {"username": "x" * (1024 * 1024)}
    for template, _methods in routes(app):
        response = client.open(concrete(template), method="POST", data=body)
        assert response.status_code == 413, template
        assert "larger than this site accepts" in response.text


@pytest.mark.parametrize("path", ["/user/a%00b", "/explore?page=1%00", "/follow/a%01b"])
def test_a_control_character_in_a_url_is_a_404(client, path):
    assert client.get(path).status_code == 404


@pytest.mark.parametrize("cursor", ["9223372036854775807", "-1", "0", "10000000000", "%FF%FE"])
def test_an_impossible_cursor_is_a_404(client, make_user, cursor):
    """Pages are keyset cursors now (main/keyset.py); a forged one is not a page."""
    make_user("susan")
    for query in ("after", "before"):
        assert client.get(f"/explore?{query}={cursor}").status_code == 404
        assert client.get(f"/user/susan?{query}={cursor}").status_code == 404


def test_an_int_path_segment_past_64_bits_is_a_404(app, client):
    """For routes like /post/<int:id>: SQLite cannot take such a number as a parameter."""
    app.add_url_rule("/number/<int:number>", view_func=lambda number: str(number))
    assert client.get("/number/9223372036854775807").text == "9223372036854775807"
    assert client.get("/number/9223372036854775808").status_code == 404


def test_a_control_character_in_a_form_field_is_a_form_error(client, make_user):
    sign_in(client, make_user)
    response = client.post("/index", data={"post": "hello\x00world"})
    assert response.status_code == 200
    assert CONTROL_CHARACTER_ERROR in response.text
    assert "hello" not in client.get("/explore").text  # nothing was saved
    kept = client.post("/index", data={"post": "two\r\nlines\tand a tab"})
    assert kept.headers["Location"] == "/index"


def every_form_class(cls=FlaskForm):
    for subclass in cls.__subclasses__():
        yield subclass
        yield from every_form_class(subclass)


def test_every_form_of_the_app_refuses_control_characters():
    """All forms derive from the shared base, so no validator sees a control character."""
    ours = [form for form in every_form_class() if form.__module__.startswith("microblog.")]
    assert ours
    assert [form for form in ours if not issubclass(form, Form)] == []
