"""How many SMTP connections one process opens: as many as a backlog needs, as the server allows.

`MAIL_WORKERS` sender threads always run (the floor); while they keep
claiming full batches, one more starts at a time (the next once the server
has answered the last one), up to `MAIL_MAX_CONNECTIONS` (each thread holds
one connection). When the server refuses a connection or throttles ("421
too many connections", 451, 454) while other connections of this process
work, the process has found the server's cap for it: the limit drops to
the connections that work and the thread that was refused gives its
messages back and retires.

That cap is only true for a while: a server's cap counts the connections of
every process of the client, so the cap one process finds is what the
others left it at that moment, and it grows when they stop (a burst ends
for them, or their circuit opens). So the cap is kept for a back-off, not a
fixed time: growth is tried again after `retry` seconds (a refused attempt
costs the server one greeting), then after twice as long at each new
refusal, up to `memory` seconds; a growth the server accepts starts the
back-off again from `retry`. Extra threads retire when they find nothing due.
"""

import threading

from microblog import clock


class ConnectionLimit:
    """The adaptive part of the pool: how many threads may run now. Thread-safe."""

    def __init__(self, floor, ceiling, memory, retry):
        self.floor, self.ceiling, self.memory, self.retry = (
            floor,
            max(floor, ceiling),
            memory,
            retry,
        )
        self.found = None  # (cap, until): a cap learned from the server's refusals
        self.backoff = retry  # how long the next cap found is kept
        self.running = 0
        self.working = set()  # threads whose connection the server accepted
        self.growing = None  # the thread added last, until the server answers it
        self.lock = threading.Lock()

    def current(self):
        """The number of threads allowed now: the ceiling, or the cap found while it lasts."""
        if self.found is not None and clock.monotonic() >= self.found[1]:
            self.found = None
        return self.ceiling if self.found is None else self.found[0]

    def admit(self, worker, want_more):
        """Count a new thread in if there is room (the floor always has room).

        Growth goes one connection at a time: the server's answer to the last
        one (accepted, or "421 too many") decides whether to try the next.
        """
        with self.lock:
            if self.running < self.floor:
                self.running += 1
                return True
            if want_more and self.growing is None and self.running < self.current():
                self.running += 1
                self.growing = worker
                return True
            return False

    def leave(self, worker, idle):
        """True if `worker` should retire: above the limit, or idle above the floor.

        Above the limit, a thread whose connection works retires only if the
        connections that work exceed it: a thread still waiting for the
        server's answer may be the one over (it is refused, and retires).
        """
        with self.lock:
            over = len(self.working) if worker in self.working else self.running
            if over > max(1, self.current()) or (idle and self.running > self.floor):
                self.remove(worker)
                return True
            return False

    def exit(self, worker):
        """A thread stops for another reason (shutdown)."""
        with self.lock:
            self.remove(worker)

    def remove(self, worker):
        self.running -= 1
        self.working.discard(worker)
        if self.growing == worker:
            self.growing = None

    def connected(self, worker, working):
        """The server accepted `worker`'s connection (True), or it was closed (False).

        True if `worker` was the thread added last: growth may go on.
        """
        with self.lock:
            if not working:
                self.working.discard(worker)
                return False
            self.working.add(worker)
            if self.growing == worker:
                self.growing = None
                if self.found is None:
                    self.backoff = self.retry  # the server took one more: start afresh
                return True
            return False

    def throttled(self, worker):
        """The server refused `worker` while others work: True (the cap is found; it retires).

        False if nothing of this process gets through: an outage, the
        circuit's business (and `worker` stays).
        """
        with self.lock:
            self.working.discard(worker)
            if not self.working:
                if self.growing == worker:
                    self.growing = None
                return False
            now = clock.monotonic()
            if self.found is None or now >= self.found[1]:  # a new attempt refused: back off
                until, self.backoff = now + self.backoff, min(self.memory, self.backoff * 2)
            else:  # refused alongside the attempt that found the cap: same deadline
                until = self.found[1]
            self.found = (len(self.working), until)
            self.remove(worker)
            return True
