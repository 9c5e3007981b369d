"""How many SMTP connections one process opens: as many as a backlog needs, as the server allows.

`MAIL_WORKERS` sender threads always run (the floor); while they keep
claiming full batches, one more starts at a time (the next once the last
one has its connection), up to `MAIL_MAX_CONNECTIONS` (each thread holds
one connection). When the server
refuses a connection or throttles ("421 too many connections", 451, 454)
while other connections of this process work, the process has found the
server's cap for it: the limit drops to the connections that work, the
thread that was refused gives its messages back and retires, and the limit
is remembered for `MAIL_THROTTLE_MEMORY` seconds before growth is tried
again. Extra threads retire when they find nothing due.
"""

import threading

from microblog import clock


class ConnectionLimit:
    """The adaptive part of the pool: how many threads may run now. Thread-safe."""

    def __init__(self, floor, ceiling, memory):
        self.floor, self.ceiling, self.memory = floor, max(floor, ceiling), memory
        self.found = None  # (cap, until): a cap learned from the server's refusals
        self.running = 0
        self.working = set()  # threads whose connection the server accepted
        self.growing = False  # a thread was added and has not connected yet
        self.lock = threading.Lock()

    def current(self):
        """The number of threads allowed now: the ceiling, or the cap found while it lasts."""
        if self.found is not None and clock.monotonic() >= self.found[1]:
            self.found = None
        return self.ceiling if self.found is None else self.found[0]

    def admit(self, want_more):
        """Count a new thread in if there is room (the floor always has room).

        Growth goes one connection at a time: the server's answer to the last
        one (accepted, or "421 too many") decides whether to try the next.
        """
        with self.lock:
            if self.running < self.floor:
                self.running += 1
                return True
            if want_more and not self.growing and self.running < self.current():
                self.running += 1
                self.growing = True
                return True
            return False

    def leave(self, worker, idle):
        """True if `worker` should retire: above the limit, or idle above the floor."""
        with self.lock:
            if self.running > max(1, self.current()) or (idle and self.running > self.floor):
                self.running -= 1
                self.working.discard(worker)
                self.growing = False
                return True
            return False

    def exit(self, worker):
        """A thread stops for another reason (shutdown)."""
        with self.lock:
            self.running -= 1
            self.working.discard(worker)
            self.growing = False

    def connected(self, worker, working):
        """The server accepted `worker`'s connection (True), or it was closed (False)."""
        with self.lock:
            if working:
                self.working.add(worker)
                self.growing = False
            else:
                self.working.discard(worker)

    def throttled(self, worker):
        """The server refused `worker` while others work: True (the cap is found), else False."""
        with self.lock:
            self.working.discard(worker)
            self.growing = False
            if not self.working:
                return False  # nothing of ours gets through: an outage, not a cap
            self.found = (len(self.working), clock.monotonic() + self.memory)
            return True
