"""The bytes of an email as they go on the wire, and the envelope they go in.

Built with the standard library's `EmailMessage`, not Flask-Mail's
`Message`: Flask-Mail registers UTF-8 for the whole process with no body
encoding, so every non-ASCII body would leave as 8-bit whether or not the
server announced 8BITMIME (RFC 6152). Flask-Mail still owns the connection.

The body is 7-bit (quoted-printable or base64, whichever is shorter) unless
the server announced 8BITMIME and nothing signs the message: a DKIM
signature covers the body's bytes, and a relay further on that has to
downgrade an 8-bit body would break it. When 8-bit goes out, MAIL FROM says
so (`BODY=8BITMIME`). Addresses are ASCII (IDNA), so SMTPUTF8 is never needed.
"""

from datetime import UTC
from email import policy
from email.header import Header
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr

from microblog import clock

SEVEN_BIT = policy.SMTP.clone(cte_type="7bit")
EIGHT_BIT = policy.SMTP  # cte_type "8bit": UTF-8 bodies as they are


def build(sender, recipients, subject, text_body, html_body, message_id, eight_bit=False):
    """The message: text alone, or text and HTML as `multipart/alternative` (no `mixed`).

    Every message says it is automated (RFC 3834), so that vacation
    responders do not answer it, and carries its `Date` and `Message-ID`.
    """
    rules = EIGHT_BIT if eight_bit else SEVEN_BIT
    message = EmailMessage(policy=rules)
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    # Written on flattening (see `as_bytes`): the email package's folding loses spaces.
    message.subject_line = b"Subject: " + encoded_subject(subject).encode("ascii") + b"\r\n"
    message["Date"] = format_datetime(clock.utcnow().replace(tzinfo=UTC))
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(text_body)
    if html_body:
        message.add_alternative(html_body, subtype="html")
        for part in message.iter_parts():
            del part["MIME-Version"]  # the message's header, not each part's (RFC 2045)
    return message


def as_bytes(message):
    """The message flattened with its own policy: CRLF lines, 7-bit unless built 8-bit."""
    return message.subject_line + message.as_bytes(policy=message.policy)


def encoded_subject(subject):
    """A subject outside ASCII as RFC 2047 encoded words, folded to fit the line.

    Left to the email package (3.11), a Russian subject folded over two lines
    can lose the space at the seam of two encoded words ("адрес электронной"
    arrives as "адресэлектронной"): the space ends up between the words,
    where RFC 2047 says to ignore it. `Header` keeps it inside an encoded word.
    """
    subject = " ".join(subject.splitlines())  # a line break would start a header of its own
    if subject.isascii():
        return subject
    return Header(subject, "utf-8", header_name="Subject").encode(linesep="\r\n")


def mail_options(data):
    """`BODY=8BITMIME` when the bytes are not all ASCII (RFC 6152), else nothing."""
    return [] if data.isascii() else ["BODY=8BITMIME"]


def address_of(sender):
    """The bare address of a From value ("Name <a@b>" -> "a@b")."""
    return parseaddr(sender)[1]
