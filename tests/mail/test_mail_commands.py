"""`flask mail status|retry|send-pending|purge`: what an operator sees and does."""

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from microblog import clock
from microblog.extensions import db
from microblog.mail.outbox import DROPPED, FAILED, PENDING, SENT, OutboxMessage, new_message
from support.outbox import outbox_rows, queue_emails


@pytest.fixture
def mail(app):
    """Run `flask --app microblog mail ...` against the test's app; its output."""
    runner = app.test_cli_runner()

    def run(*args):
        result = runner.invoke(args=["mail", *args])
        assert result.exit_code == 0, result.output
        return result.output

    return run


def count_of(output, state):
    return int(re.search(rf"^\s*{state}: (\d+)$", output, re.M).group(1))


def test_status_of_an_empty_outbox(mail):
    output = mail("status")
    assert all(count_of(output, state) == 0 for state in ("pending", "sending", "sent", "failed"))
    assert "oldest pending: none" in output


def test_status_counts_by_state_and_shows_the_oldest_waiting(mail, app, smtp, deliver):
    smtp.mailbox.rejected_recipients.add("gone@example.com")
    queue_emails(app, 1, recipients=["gone@example.com"])
    queue_emails(app, 1)
    deliver()
    smtp.mailbox.max_connections = 0
    queue_emails(app, 2)
    deliver()

    output = mail("status")
    assert [count_of(output, s) for s in ("pending", "sent", "failed")] == [2, 1, 1]
    oldest = outbox_rows(app)[2]
    assert f"oldest pending: #{oldest.id} queued" in output
    assert "0 attempt(s)" in output  # refused before it was claimed: not its failure
    assert "last error" not in output


def test_send_pending_delivers_in_this_process(mail, app, smtp):
    queue_emails(app, 3)
    assert mail("send-pending") == "settled 3 message(s); still pending: 0\n"
    assert len(smtp.wait_for(3)) == 3
    assert smtp.mailbox.connections == 1


def test_send_pending_says_what_is_left_when_the_server_refuses(mail, app, smtp):
    smtp.mailbox.max_connections = 0
    queue_emails(app, 2)
    assert mail("send-pending") == "settled 0 message(s); still pending: 2\n"


def test_retry_requeues_failed_messages_with_a_new_deadline(mail, app, smtp):
    smtp.mailbox.rejected_recipients.add("reader@example.com")
    queue_emails(app, 1, recipients=["reader@example.com"])
    mail("send-pending")
    [failed] = outbox_rows(app)
    assert failed.state == "failed"

    smtp.mailbox.rejected_recipients.clear()  # the mailbox exists again
    assert mail("retry") == "requeued 1 failed message(s)\n"
    [requeued] = outbox_rows(app)
    assert requeued.state == "pending"
    assert requeued.deadline_at > failed.deadline_at
    mail("send-pending")
    assert smtp.wait_for(1)[0]["To"] == "reader@example.com"
    assert outbox_rows(app)[0].state == "sent"


def test_purge_deletes_old_settled_messages_and_keeps_the_rest(app, mail):
    """Sent and dropped rows go after --days; failed and pending ones stay to be acted on."""
    old = clock.utcnow() - timedelta(days=40)
    with app.app_context():
        for state in (SENT, DROPPED, FAILED, PENDING):
            row = new_message("s", None, ["a@example.com"], "t", None, state=state)
            row.created_at = old
            db.session.add(row)
        db.session.add(new_message("s", None, ["a@example.com"], "t", None, state=SENT))
        db.session.commit()
    assert "deleted 2 settled message(s)" in mail("purge", "--days", "30")
    with app.app_context():
        states = sorted(db.session.scalars(sa.select(OutboxMessage.state)))
    assert states == [FAILED, PENDING, SENT]
