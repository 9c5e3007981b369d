"""What goes on the wire: 7-bit unless the server announced 8BITMIME, and then declared.

Every message is automated (Auto-Submitted), dated, identified on the
site's domain, and `multipart/alternative` (text and HTML) with no `mixed`
wrapper around it.
"""

import pytest
import sqlalchemy as sa

from microblog.auth.recovery import request_password_reset
from microblog.extensions import db
from microblog.mail import send_email
from microblog.models import User
from support.emails import queue_every_email
from support.smtp import html_of, text_of

RUSSIAN_SUBJECT = "[Microblog] Сброс пароля: ссылка действует один час, не пересылайте её никому"
RUSSIAN_TEXT = "Здравствуйте, Сьюзан!\n\nЧтобы сбросить пароль, откройте ссылку.\n"
RUSSIAN_HTML = "<p>Здравствуйте, Сьюзан!</p>"


def read(text):
    """Decoded text, its line ends as written (base64 carries MIME's canonical CRLF)."""
    return text.replace("\r\n", "\n")


def queue(app, subject=RUSSIAN_SUBJECT, text=RUSSIAN_TEXT, html=RUSSIAN_HTML):
    with app.app_context():
        send_email(subject, None, ["susan@example.com"], text, html, tag="test")
        db.session.commit()


def test_without_8bitmime_a_russian_email_is_ascii_and_reads_as_russian(app, smtp, deliver):
    smtp.mailbox.offers_8bitmime = False
    queue(app)
    assert deliver() == 1
    (message,) = smtp.wait_for(1)
    assert message.wire.isascii()
    assert "BODY=8BITMIME" not in message.mail_options
    assert message["Subject"] == RUSSIAN_SUBJECT
    assert read(text_of(message)) == RUSSIAN_TEXT
    assert read(html_of(message)).strip() == RUSSIAN_HTML
    for part in message.iter_parts():
        assert part["Content-Transfer-Encoding"] in {"quoted-printable", "base64"}


def test_with_8bitmime_russian_goes_8_bit_and_says_so_in_mail_from(app, smtp, deliver):
    queue(app)
    assert deliver() == 1
    (message,) = smtp.wait_for(1)
    assert not message.wire.isascii()
    assert "BODY=8BITMIME" in message.mail_options
    assert read(text_of(message)) == RUSSIAN_TEXT
    assert message["Subject"] == RUSSIAN_SUBJECT


def test_english_mail_is_7_bit_and_declares_nothing_even_with_8bitmime(app, smtp, deliver):
    queue(app, "[Microblog] Reset your password", "Hello Susan.\n", "<p>Hello Susan.</p>")
    assert deliver() == 1
    (message,) = smtp.wait_for(1)
    assert message.wire.isascii()
    assert not any(option.startswith("BODY=") for option in message.mail_options)


@pytest.mark.parametrize("eight_bit", [True, False])
def test_a_real_account_email_in_russian_arrives_whole(app, smtp, deliver, make_user, eight_bit):
    smtp.mailbox.offers_8bitmime = eight_bit
    make_user()
    with app.app_context():
        db.session.execute(sa.update(User).values(locale="ru"))
        request_password_reset("susan@example.com")
    assert deliver() == 1
    (message,) = smtp.wait_for(1)
    # Lines longer than 78 characters (the link) are encoded even when 8-bit may go.
    assert ("BODY=8BITMIME" in message.mail_options) is (not message.wire.isascii())
    if not eight_bit:
        assert message.wire.isascii()
    assert message["Subject"] == "[Microblog] Сброс пароля"
    assert "/auth/reset_password/" in text_of(message)
    assert "Здравствуйте" in text_of(message)


def test_every_email_says_it_is_automated_and_carries_date_and_message_id(app, smtp, deliver):
    queue(app)
    assert deliver() == 1
    (message,) = smtp.wait_for(1)
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Date"].datetime is not None
    assert message["Message-ID"].endswith("@localhost>")  # SERVER_NAME of the tests


@pytest.mark.settings(SERVER_NAME=None, MAIL_DEFAULT_SENDER="Microblog <no-reply@blog.example>")
def test_without_server_name_the_message_id_is_on_the_senders_domain(app, smtp, deliver):
    with app.test_request_context():
        send_email("Hello", None, ["susan@example.com"], "Hello.\n", None, tag="test")
        db.session.commit()
    assert deliver() == 1
    (message,) = smtp.wait_for(1)
    assert message["Message-ID"].endswith("@blog.example>")


def test_text_and_html_are_one_alternative_with_no_mixed_wrapper(app, smtp, deliver):
    queue(app)
    assert deliver() == 1
    (message,) = smtp.wait_for(1)
    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.iter_parts()] == [
        "text/plain",
        "text/html",
    ]
    assert all(part["MIME-Version"] is None for part in message.iter_parts())


def test_text_alone_is_a_single_part(app, smtp, deliver):
    queue(app, html=None)
    assert deliver() == 1
    (message,) = smtp.wait_for(1)
    assert message.get_content_type() == "text/plain"
    assert read(text_of(message)) == RUSSIAN_TEXT


def test_without_8bitmime_every_email_in_every_language_is_ascii_and_reads_right(
    app, smtp, deliver
):
    smtp.mailbox.offers_8bitmime = False
    queued = queue_every_email(app)
    assert {locale for locale, _, _ in queued} == {"en", "ru"}
    russian = [subject for locale, _, (subject, _, _) in queued if locale == "ru"]
    assert "[Microblog] Сброс пароля" in russian
    assert deliver() == len(queued)
    arrived = smtp.wait_for(len(queued))
    for (locale, template, (subject, text, html)), message in zip(queued, arrived, strict=True):
        assert message.wire.isascii(), (locale, template)
        assert "BODY=8BITMIME" not in message.mail_options
        assert message["Subject"] == subject
        assert read(text_of(message)).rstrip() == text.rstrip()
        assert read(html_of(message)).rstrip() == html.rstrip()
        assert message["Auto-Submitted"] == "auto-generated"


def test_a_line_break_in_a_subject_cannot_add_a_header(app, smtp, deliver):
    queue(app, "Hello\r\nBcc: victim@example.com", "Hello.\n", None)
    assert deliver() == 1
    (message,) = smtp.wait_for(1)
    assert message["Bcc"] is None
    assert message["Subject"] == "Hello Bcc: victim@example.com"
