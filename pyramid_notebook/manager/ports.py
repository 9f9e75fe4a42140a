"""Handing out localhost ports to notebooks.

A port is given to a notebook when it is launched, before its server
binds it, so "is anything listening?" alone cannot tell a free port from
one another start is about to use: the ports the store says are claimed are
skipped too.  The caller holds the store's port lock from the pick until the
port is recorded, so that no two starts pick the same one.
"""
import socket
from collections.abc import Collection

from pyramid_notebook.manager.errors import NotebookStartError


def port_is_free(port: int) -> bool:
    """True if nothing listens on 127.0.0.1:``port``, as Tornado would bind it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class PortAllocator:
    """The ports ``min_port`` to ``min_port + port_range - 1``, handed out lowest free first."""

    def __init__(self, min_port: int, port_range: int):
        self.min_port = min_port
        self.port_range = port_range

    def pick(self, claimed: Collection[int]) -> int:
        """A port in the range that is not in ``claimed`` and that nothing listens on.

        Raises NotebookStartError, naming the setting to raise, when every port is taken.
        """
        for port in range(self.min_port, self.min_port + self.port_range):
            if port not in claimed and port_is_free(port):
                return port
        raise NotebookStartError(
            "No free notebook port between {} and {}: raise pyramid_notebook.port_range".format(
                self.min_port, self.min_port + self.port_range - 1
            )
        )
