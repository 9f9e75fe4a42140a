"""Kernel websocket helpers for the uWSGI tests and the round-trip benchmark.

They speak both kernel protocols: the legacy one (JSON in text frames) and
``v1.kernel.websocket.jupyter.org`` (binary frames), which the browser uses,
and they check the frame type of everything they receive.
"""
import json
import time
import uuid

import requests
import websocket
from jupyter_server.services.kernels.connection.base import deserialize_msg_from_ws_v1, serialize_msg_to_ws_v1

from pyramid_notebook.protocol.context import NotebookContext
from tests.support.kernel_client import execute_request
from tests.support.notebooks import notebook_api, token_header

V1_PROTOCOL = "v1.kernel.websocket.jupyter.org"


def start_kernel(context: NotebookContext) -> str:
    """Start a kernel straight in the notebook described by ``context``; return its id."""
    response = requests.post(
        notebook_api(context) + "api/kernels", json={"name": "python3"}, headers=token_header(context), timeout=60
    )
    response.raise_for_status()
    return response.json()["id"]


def delete_kernel(context: NotebookContext, kernel_id: str) -> None:
    """Shut a kernel down straight in the notebook described by ``context``."""
    requests.delete(notebook_api(context) + "api/kernels/" + kernel_id, headers=token_header(context), timeout=60)


def channels_path(kernel_id: str) -> str:
    """The site path of a kernel's channels websocket, with a new session id."""
    return "/notebook/api/kernels/{}/channels?session_id={}".format(kernel_id, uuid.uuid4().hex)


def open_websocket(
    url: str, headers: dict | None = None, protocols: list[str] | None = None, timeout: float = 60, **options
):
    """A websocket-client connection that offers ``protocols`` without insisting that one is chosen."""
    header = ["{}: {}".format(name, value) for name, value in (headers or {}).items()]
    if protocols:
        header.append("Sec-WebSocket-Protocol: " + ", ".join(protocols))
    return websocket.create_connection(url, header=header, timeout=timeout, **options)


def chosen_protocol(ws) -> str | None:
    """The subprotocol the server chose in the handshake, if any."""
    return (ws.getheaders() or {}).get("sec-websocket-protocol")


class KernelSocket:
    """Execute code over an open kernel channels websocket, with either protocol.

    ``frame_sizes`` collects the size of every data frame received, and
    ``opcodes`` their opcodes, so that tests can check what crossed the proxy.
    """

    def __init__(self, ws, protocol: str | None):
        self.ws = ws
        self.protocol = protocol
        self.session = uuid.uuid4().hex
        self.opcodes: set[int] = set()
        self.frame_sizes: list[int] = []

    def send_execute(self, code: str) -> str:
        """Send an execute_request for ``code`` in this socket's protocol; return its msg_id."""
        text, msg_id = execute_request(code, self.session)
        if self.protocol == V1_PROTOCOL:
            message = json.loads(text)
            parts = [json.dumps(message[key]).encode() for key in ("header", "parent_header", "metadata", "content")]
            self.ws.send_binary(serialize_msg_to_ws_v1(parts, "shell"))
        else:
            self.ws.send(text)
        return msg_id

    def receive(self) -> dict:
        """The next kernel message, as a dict with ``msg_type``, ``parent_header`` and ``content``."""
        opcode, data = self.ws.recv_data()
        self.opcodes.add(opcode)
        self.frame_sizes.append(len(data))
        if self.protocol == V1_PROTOCOL:
            channel, parts = deserialize_msg_from_ws_v1(data)
            header = json.loads(parts[0])
            return {
                "channel": channel,
                "msg_type": header["msg_type"],
                "header": header,
                "parent_header": json.loads(parts[1]),
                "content": json.loads(parts[3]),
            }
        return json.loads(data)

    def execute(self, code: str, timeout: float = 120) -> dict:
        """Run ``code``; collect stdout, stderr, the result's text/plain, displayed text/plain, and the status."""
        msg_id = self.send_execute(code)
        outcome = {"stdout": "", "stderr": "", "result": None, "display": [], "error": None, "status": None}
        deadline = time.monotonic() + timeout
        idle = replied = False
        while not (idle and replied):
            self.ws.settimeout(max(0.1, deadline - time.monotonic()))
            message = self.receive()
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = message["msg_type"], message["content"]
            if kind == "stream":
                outcome[content["name"]] += content["text"]
            elif kind == "execute_result":
                outcome["result"] = content["data"].get("text/plain")
            elif kind == "display_data":
                outcome["display"].append(content["data"].get("text/plain"))
            elif kind == "error":
                outcome["error"] = "{}: {}".format(content["ename"], content["evalue"])
            elif kind == "execute_reply":
                outcome["status"] = content["status"]
                replied = True
            elif kind == "status" and content["execution_state"] == "idle":
                idle = True
        return outcome
