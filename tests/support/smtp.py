"""A real SMTP server for the tests: aiosmtpd on loopback, with a mailbox to read back.

It can also misbehave the ways real servers do: be slow, hold a message until
the test lets it go, not announce 8BITMIME, refuse recipients with a 5xx or defer them with a 4xx,
or refuse connections beyond a limit with a 421.
"""

import asyncio
import email
import socket
import threading
from email import policy

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from support.ports import free_port  # aiosmtpd cannot bind port 0


class Mailbox:
    """The handler: keeps every accepted message, parsed with the email package."""

    def __init__(self):
        self.messages = []
        self.arrived = threading.Condition()
        self.delay = 0.0
        self.rejected_recipients = set()
        self.deferred_recipients = set()  # answered "450 try later", as greylisting does
        # A message's DATA is held until `gate` is set (when there is one): a send in progress.
        self.gate = None
        self.receiving = threading.Event()  # set when a DATA starts
        self.max_connections = None
        self.active = 0
        self.peak = 0
        self.refused = 0
        self.connections = 0
        self.offers_8bitmime = True  # False: a server that does not announce 8BITMIME

    def clear(self):
        with self.arrived:
            self.messages.clear()
        self.delay, self.max_connections = 0.0, None
        self.rejected_recipients.clear()
        self.deferred_recipients.clear()
        self.gate = None
        self.receiving.clear()
        self.peak = self.refused = self.connections = 0
        self.offers_8bitmime = True

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if not self.offers_8bitmime:
            responses = [line for line in responses if line != "250-8BITMIME"]
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.rejected_recipients:
            return "550 5.1.1 Mailbox unavailable"
        if address in self.deferred_recipients:
            return "450 4.2.1 Mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.receiving.set()
        if self.gate is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.gate.wait)
        if self.delay:
            await asyncio.sleep(self.delay)
        message = email.message_from_bytes(envelope.original_content, policy=policy.default)
        message.envelope_recipients = list(envelope.rcpt_tos)
        message.envelope_sender = envelope.mail_from
        message.mail_options = list(envelope.mail_options)
        message.wire = envelope.original_content  # the bytes as they came after DATA
        with self.arrived:
            self.messages.append(message)
            self.arrived.notify_all()
        return "250 Message accepted for delivery"

    def wait_for(self, count, timeout=10):
        """Block until `count` messages arrived; fail the test if they do not."""
        with self.arrived:
            arrived = self.arrived.wait_for(lambda: len(self.messages) >= count, timeout)
            assert arrived, f"expected {count} message(s), got {len(self.messages)}"
            return list(self.messages)


class LimitedSMTP(SMTP):
    """Answers 421 and hangs up past the mailbox's connection limit."""

    counted = False

    def connection_made(self, transport):
        mailbox = self.event_handler
        super().connection_made(transport)
        if mailbox.max_connections is not None and mailbox.active >= mailbox.max_connections:
            mailbox.refused += 1
            transport.write(b"421 4.7.0 Too many connections, try again later\r\n")
            transport.close()
            return
        self.counted = True
        mailbox.connections += 1
        mailbox.active += 1
        mailbox.peak = max(mailbox.peak, mailbox.active)

    def connection_lost(self, error):
        if self.counted:
            self.event_handler.active -= 1
            self.counted = False
        super().connection_lost(error)


class SmtpServer:
    """Start, stop and restart a server on one port, keeping the same mailbox."""

    def __init__(self, mailbox=None, port=None):
        self.mailbox = mailbox or Mailbox()
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.controller = None

    def start(self):
        controller = Controller(self.mailbox, hostname=self.host, port=self.port)
        controller.factory = lambda: LimitedSMTP(self.mailbox, **controller.SMTP_kwargs)
        controller.start()
        self.controller = controller
        return self

    def stop(self):
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    @property
    def messages(self):
        return self.mailbox.messages

    def wait_for(self, count, timeout=10):
        return self.mailbox.wait_for(count, timeout)


def text_of(message):
    """The text/plain part of a parsed message."""
    return message.get_body(preferencelist=("plain",)).get_content()


def html_of(message):
    return message.get_body(preferencelist=("html",)).get_content()


class RawServer:
    """A TCP server on loopback that says `greeting` (or nothing) and hangs up, or not."""

    def __init__(self, greeting=None):
        self.greeting = greeting
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.host, self.port = self.listener.getsockname()
        self.connections = []
        self.accepted = threading.Semaphore(0)  # released once per accepted connection
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return  # closed
            self.connections.append(connection)
            self.accepted.release()
            if self.greeting is None:
                continue  # accepted, never a word: the client must give up on its own
            with connection:
                connection.sendall(self.greeting)

    def close(self):
        self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() in progress
        self.listener.close()
        self.thread.join(2)
        for connection in self.connections:
            connection.close()
