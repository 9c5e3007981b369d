"""The hashing threads run at PASSWORD_HASH_NICE or nicer, never ahead of the pages.

Threads inherit the nice value of the thread that starts them: a server
started with `nice -n 15` must not have its hashes put back at 10, which
Linux allows a root process to do.
"""

import os
import threading

import pytest

from microblog.auth import passwords


def priority():
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


@pytest.mark.settings(PASSWORD_HASH_NICE=11)  # a hashing pool of its own, started below
def test_hashing_threads_keep_the_nicer_priority_of_the_server(app):
    seen = []

    def a_server_started_with_nice_15():
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), max(15, priority()))
        with app.app_context():
            seen.append((priority(), passwords.bounded(priority)))

    server = threading.Thread(target=a_server_started_with_nice_15)
    server.start()
    server.join(10)
    [(own, hashing)] = seen
    assert own >= 15
    assert hashing >= own
