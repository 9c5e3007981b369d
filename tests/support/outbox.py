"""The outbox as the mail tests see it: emails queued the way views queue them, rows read back."""

import sqlalchemy as sa

from microblog.extensions import db
from microblog.mail import send_email
from microblog.mail.outbox import OutboxMessage


def queue_emails(app, count, recipients=None, commit_each=False):
    """Queue `count` emails the way views do: send_email, then the caller's commit."""
    with app.app_context():
        for n in range(count):
            send_email(
                f"Message {n}",
                None,
                recipients or [f"reader{n}@example.com"],
                f"Body of message {n}",
                f"<p>Body of message {n}</p>",
                tag="test",
            )
            if commit_each:
                db.session.commit()
        db.session.commit()


def outbox_rows(app):
    """Every outbox row, freshly read, in the order they were queued."""
    with app.app_context():
        rows = db.session.scalars(sa.select(OutboxMessage).order_by(OutboxMessage.id)).all()
        db.session.expunge_all()
        return rows
