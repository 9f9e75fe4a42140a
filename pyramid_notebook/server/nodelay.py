"""Kernel websockets that send small messages without waiting.

Tornado leaves Nagle's algorithm on for websocket streams unless the handler
asks otherwise, and jupyter_server never asks.  An execute request answers
with several small messages (``status: busy``, ``execute_input``, the reply);
the second one waits for the client's delayed ACK of the first, which costs
about 40 ms on every round trip on Linux.  Turning on TCP_NODELAY when the
kernel's websocket connects brings the round trip down to a few milliseconds.

The class is plugged in with the supported ``ServerApp.kernel_websocket_connection_class``
option, so nothing in Jupyter is patched.
"""
from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection


class NoDelayKernelWebsocketConnection(ZMQChannelsWebsocketConnection):
    """The stock ZMQ channels connection with TCP_NODELAY set on its stream."""

    def connect(self):
        self.websocket_handler.set_nodelay(True)
        return super().connect()
