"""What a person does with the account forms, and reads in the emails, through the test client."""

import re
from html import unescape
from urllib.parse import urlsplit

from support.smtp import text_of

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "a brand new passphrase, never used"


class AuthActions:
    """What a person does with the account forms, through the test client.

    With `deliver` and `smtp`, `sign_up` goes on like a person: it lets the
    mail worker send the verification email, reads it from the SMTP server
    and opens its link.
    """

    def __init__(self, client, deliver=None, smtp=None):
        self.client = client
        self.deliver = deliver
        self.smtp = smtp

    def register(self, username="susan", email=None, password=PASSWORD, password2=None):
        return self.client.post(
            "/auth/register",
            data={
                "username": username,
                "email": email or f"{username}@example.com",
                "password": password,
                "password2": password if password2 is None else password2,
            },
        )

    def sign_up(self, username="susan", email=None, password=PASSWORD):
        """Register, verify with the emailed link and the password, then sign out again."""
        email = email or f"{username}@example.com"
        response = self.register(username, email, password)
        assert response.headers["Location"] == "/auth/login", response.text
        self.deliver()
        message = last_email(self.smtp, "Verify your email address")
        verified = self.verify(email_link(message, "verify_email"), password)
        assert verified.headers["Location"] == "/index", verified.text
        self.logout()
        return verified

    def verify(self, link, password=PASSWORD):
        """Open a verification link, then post its form with the password."""
        path = urlsplit(link).path
        page = self.client.get(path)
        assert page.status_code == 200, page.text
        return self.client.post(path, data={"password": password})

    def confirm(self, link):
        """Open an email-change link, then press its one button."""
        path = urlsplit(link).path
        self.client.get(path)
        return self.client.post(path)

    def login(self, username="susan", password=PASSWORD, remember_me=False, next=None):
        url = "/auth/login" + (f"?next={next}" if next else "")
        data = {"username": username, "password": password}
        if remember_me:
            data["remember_me"] = "y"
        return self.client.post(url, data=data)

    def logout(self):
        return self.client.post("/auth/logout")

    def request_reset(self, email="susan@example.com"):
        return self.client.post("/auth/reset_password_request", data={"email": email})


def email_link(message, route):
    """The /auth/<route>/ link of an email, as a person would copy it from the text part."""
    match = re.search(rf"https?://\S+/auth/{route}/\S+", text_of(message))
    assert match, f"no {route} link in the email"
    return unescape(match.group(0))


def last_email(smtp, subject, to=None):
    """The latest email with this subject (after "[Microblog] "), to `to` if given."""
    found = [
        m
        for m in smtp.messages
        if m["Subject"] == f"[Microblog] {subject}" and to in (None, *m.envelope_recipients)
    ]
    assert found, f"no email {subject!r} to {to or 'anyone'}"
    return found[-1]


def reset_link(message):
    """The reset link of an email, as a person would copy it from the text part."""
    return email_link(message, "reset_password")


def flashes(response):
    """The flashed messages shown on a page."""
    return [
        unescape(re.sub(r"<[^>]+>", "", m)).strip()
        for m in re.findall(
            r'<div class="alert[^"]*" role="alert">(.*?)</div>', response.text, re.S
        )
    ]
