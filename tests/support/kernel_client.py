"""A minimal Jupyter kernel client over the notebook server's websocket, for tests and benchmarks.

It speaks the legacy JSON websocket protocol (no subprotocol), which every
jupyter_server accepts, and talks to a server directly or through a proxy.
"""

import json
import time
import uuid

import requests
import websocket

from pyramid_notebook.protocol.context import NotebookContext


def start_kernel(http_base: str, token: str | None = None, headers: dict | None = None) -> str:
    """Start a kernel through the REST API under ``http_base`` (``http://host:port/notebook/``); return its id."""
    headers = dict(headers or {})
    if token:
        headers["Authorization"] = "token " + token
    response = requests.post(http_base + "api/kernels", json={"name": "python3"}, headers=headers, timeout=30)
    response.raise_for_status()
    return response.json()["id"]


def connect(ws_base: str, kernel_id: str, token: str | None = None, headers: dict | None = None, **options):
    """Open the kernel's channels websocket; ``ws_base`` is like ``ws://host:port/notebook/``."""
    header = ["{}: {}".format(name, value) for name, value in (headers or {}).items()]
    if token:
        header.append("Authorization: token " + token)
    url = "{}api/kernels/{}/channels?session_id={}".format(ws_base, kernel_id, uuid.uuid4().hex)
    return websocket.create_connection(url, header=header, timeout=30, **options)


def execute_request(code: str, session: str) -> tuple[str, str]:
    """An execute_request message as JSON text, and its msg_id."""
    msg_id = uuid.uuid4().hex
    message = {
        "header": {
            "msg_id": msg_id,
            "username": "test",
            "session": session,
            "msg_type": "execute_request",
            "version": "5.3",
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
        "parent_header": {},
        "metadata": {},
        "content": {
            "code": code,
            "silent": False,
            "store_history": False,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        },
        "channel": "shell",
        "buffers": [],
    }
    return json.dumps(message), msg_id


def execute(ws, code: str, timeout: float = 60) -> dict:
    """Run ``code`` over a legacy-protocol kernel websocket and collect its results until the kernel is idle.

    Returns ``stdout``, ``stderr``, ``result`` (text/plain of the last
    expression), ``display``, ``error`` (``ename: evalue``) and ``status``.
    """
    from tests.support.ws_client import KernelSocket

    return KernelSocket(ws, None).execute(code, timeout)


def run_in_notebook(context: NotebookContext, code: str, timeout: float = 60) -> dict:
    """Start a kernel in the notebook described by ``context``, run ``code`` in it, and shut the kernel down."""
    base = "127.0.0.1:{}{}".format(context.http_port, context.notebook_path)
    kernel_id = start_kernel("http://" + base, context.token)
    try:
        ws = connect("ws://" + base, kernel_id, context.token)
        try:
            return execute(ws, code, timeout)
        finally:
            ws.close()
    finally:
        requests.delete(
            "http://{}api/kernels/{}".format(base, kernel_id),
            headers={"Authorization": "token " + context.token},
            timeout=30,
        )
