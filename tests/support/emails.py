"""Every kind of email the site sends, rendered in every language, for tests of the wire form."""

from datetime import timedelta

from flask_babel import lazy_gettext as _l

from microblog import clock, i18n
from microblog.auth.emails import render_email
from microblog.extensions import db
from microblog.mail import send_email
from microblog.models import User

SITE = "https://blog.example"
LINK = f"{SITE}/auth/reset_password/eyJhbGciOiJIUzI1NiJ9.eyJyZXNldCI6MX0.c2lnbmF0dXJl"


def every_email():
    """(template, subject, context) of each kind of email auth sends, with typical values.

    The subjects are the composers' own msgids, translated when rendered.
    """
    user = User(id=1, username="susan", email="susan@example.com", password_hash="")
    now = clock.utcnow()
    return [
        ("reset_password", _l("Reset your password"), {"user": user, "link": LINK}),
        (
            "password_changed",
            _l("Your password was changed"),
            {"user": user, "link": LINK, "when": now},
        ),
        (
            "login_paused",
            _l("Sign-in to your account is paused"),
            {
                "user": user,
                "paused_at": now,
                "paused_until": now + timedelta(minutes=15),
                "addresses": ["203.0.113.0/24"],
                "link": LINK,
                "limit": 10,
            },
        ),
        (
            "new_sign_in",
            _l("New sign-in to your account"),
            {
                "user": user,
                "when": now,
                "device": "Firefox on Linux",
                "address": "203.0.113.7",
                "sessions": f"{SITE}/auth/sessions",
                "change_password": f"{SITE}/auth/change_password",
            },
        ),
        ("verify_email", _l("Verify your email address"), {"user": user, "link": LINK}),
        (
            "address_taken",
            _l("Someone tried to use your email address"),
            {
                "user": user,
                "attempt": "register",
                "login": f"{SITE}/auth/login",
                "reset": f"{SITE}/auth/reset_password_request",
            },
        ),
        ("change_email", _l("Confirm your new email address"), {"user": user, "link": LINK}),
        (
            "email_change_notice",
            _l("A change of your email address was requested"),
            {"user": user, "new_address": "s***@example.org", "link": LINK},
        ),
        ("account_deleted", _l("Your account was deleted"), {"username": "susan"}),
    ]


def queue_every_email(app, recipient="susan@example.com"):
    """Queue each kind in each language; [(locale, template, (subject, text, html))] in order."""
    queued = []
    with app.test_request_context():
        for locale in i18n.languages():
            for template, subject, context in every_email():
                rendered = render_email(locale, subject, template, **context)
                title, text, html = rendered
                send_email(title, None, [recipient], text, html, tag=template)
                queued.append((locale, template, rendered))
        db.session.commit()
    return queued
