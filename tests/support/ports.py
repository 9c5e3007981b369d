"""A free port on loopback, for servers that cannot bind port 0 and report it."""

import socket


def free_port():
    """Ask the kernel for a free port; the server binds it right after."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
