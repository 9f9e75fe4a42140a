"""One user abusing the site, for the starvation test and benchmark: stalled downloads and a frozen notebook.

User A (``user``) does the abusing; user B (``user2``) is everybody else.
"""
import os
from contextlib import contextmanager
from pathlib import Path

import psutil
import requests

from pyramid_notebook.manager import NotebookManager

USER_A = "user"
USER_B = "user2"

MB = 1024 * 1024
#: Larger than everything between the notebook and a client that stops
#: reading (waitress buffers 16 MB per connection, the sockets a few MB), so
#: that a stalled download really holds its thread.
DOWNLOAD_SIZE = 96 * MB
DOWNLOAD_NAME = "download.bin"


def notebook_pid(notebook_folder: Path, username: str) -> int:
    """The pid of the user's running notebook server; fails if none runs."""
    pid = NotebookManager(notebook_folder).get_pid(username)
    assert pid is not None, "no notebook runs for {}".format(username)
    return pid


def write_download(notebook_folder: Path, username: str) -> str:
    """A large file among the user's notebooks; returns its path on the site."""
    root = NotebookManager(notebook_folder).work_folder(username).notebook_root
    with open(root / DOWNLOAD_NAME, "wb") as stream:
        for _ in range(DOWNLOAD_SIZE // MB):
            stream.write(os.urandom(MB))
    return "/notebook/files/" + DOWNLOAD_NAME


def stalled_downloads(session: requests.Session, url: str, count: int) -> list[requests.Response]:
    """Start ``count`` downloads and read nothing of their bodies, as a stuck client would.

    Returns every response, the refused ones included; close them to end the downloads.
    """
    return [session.get(url, stream=True, timeout=30) for _ in range(count)]


@contextmanager
def frozen(pid: int):
    """The process stopped with SIGSTOP; continued however the block ends."""
    process = psutil.Process(pid)
    process.suspend()
    try:
        yield
    finally:
        process.resume()
