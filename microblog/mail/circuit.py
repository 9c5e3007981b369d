"""The circuit of one process: while the SMTP server is unavailable, probe it, don't queue at it.

A failure of the server (refused or dropped connection, timeout, 421, a 4xx
greeting or answer to EHLO/MAIL FROM, authentication) says nothing about
the message: every message would fail the same way. So the process stops
claiming mail and one of its workers probes the server instead (connect,
EHLO, NOOP, QUIT). The messages held back stay due, so the first worker to
find the server back, in this process or any other, sends them all at once.

Probes follow a capped back-off while the server answers with refusals (it
is up, and busy); a port nobody listens on, or a host that does not answer,
costs the server nothing, so it is probed every `min_delay` seconds.
"""

import logging
import threading
from contextlib import contextmanager

from microblog import clock

log = logging.getLogger("microblog.mail")


class Circuit:
    """Closed (deliver) or open (probe); thread-safe, one per process and app."""

    def __init__(self, min_delay, max_delay):
        self.min_delay, self.max_delay = min_delay, max_delay
        self.delay = min_delay
        self.opened_at = None
        self.next_probe = 0.0
        self.probing = False
        self.lock = threading.Lock()

    @property
    def is_open(self):
        return self.opened_at is not None

    def trip(self, reason, answered):
        """A server failure: hold mail back and probe in a while. True if it just opened."""
        with self.lock:
            if self.is_open:
                return False
            self.opened_at = clock.monotonic()
            self.schedule(answered)
        log.warning(
            "Mail server unavailable (%s): holding mail back, probing from %.0fs on",
            reason,
            self.next_probe - self.opened_at,
        )
        return True

    @contextmanager
    def claiming(self):
        """Yields whether claiming is allowed; a trip waits until the claim is done.

        So once the circuit is open no worker of this process claims a message:
        the held-back ones are given back only after the trip.
        """
        with self.lock:
            yield not self.is_open

    def schedule(self, answered):
        """The next probe: back off from a server that refuses, not from a silent port."""
        self.next_probe = clock.monotonic() + self.delay
        self.delay = min(self.max_delay, self.delay * 2) if answered else self.min_delay

    def seconds_to_probe(self):
        return max(0.0, self.next_probe - clock.monotonic())

    def take_probe(self):
        """True for exactly one caller once a probe is due: that one probes."""
        with self.lock:
            if not self.is_open or self.probing or self.seconds_to_probe() > 0:
                return False
            self.probing = True
            return True

    def probe_failed(self, answered):
        with self.lock:
            self.probing = False
            self.schedule(answered)

    def close(self):
        """The probe got through: deliver again (the back-off resets at the first send)."""
        with self.lock:
            opened_at, self.opened_at, self.probing = self.opened_at, None, False
        if opened_at is not None:
            log.warning(
                "Mail server back after %.1fs: sending the mail held back",
                clock.monotonic() - opened_at,
            )

    def delivered(self):
        """A message went out: the server is well, the next outage starts from scratch."""
        self.delay = self.min_delay
