"""Large bodies through the proxy, in a real waitress process whose memory is measured."""

import base64
import hashlib
import json
import os

import pytest
import requests

from pyramid_notebook.protocol.workfolder import WorkFolder
from tests.support.servers import peak_rss, reset_peak_rss
from tests.support.site_server import launch, running_site

MB = 1024 * 1024


@pytest.fixture
def site(notebook_folder):
    notebook_folder.mkdir(parents=True)
    with running_site(notebook_folder) as running:
        yield running


def test_large_files_stream_through_the_proxy(site, notebook_folder):
    base, pid = site
    alice = {"X-Test-User": "alice"}
    launch(base, "alice")

    download = WorkFolder(notebook_folder / "alice").notebook_root / "download.bin"
    with open(download, "wb") as stream:
        for _ in range(200):
            stream.write(os.urandom(MB))
    expected = hashlib.sha256(download.read_bytes()).hexdigest()
    before = reset_peak_rss(pid)

    digest, size = hashlib.sha256(), 0
    with requests.get(base + "/notebook/files/download.bin", headers=alice, stream=True, timeout=60) as response:
        response.raise_for_status()
        for chunk in response.iter_content(MB):
            digest.update(chunk)
            size += len(chunk)
    assert size == 200 * MB
    assert digest.hexdigest() == expected
    assert peak_rss(pid) - before < 50 * MB

    # A 50 MB notebook saved through the contents API.
    payload = base64.b64encode(os.urandom(38 * MB)).decode()
    notebook = {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": 1,
                "metadata": {},
                "source": "big_output()",
                "outputs": [{"output_type": "display_data", "metadata": {}, "data": {"text/plain": payload}}],
            }
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    body = json.dumps({"type": "notebook", "format": "json", "content": notebook}).encode()
    assert len(body) > 50 * MB
    response = requests.put(
        base + "/notebook/api/contents/big.ipynb",
        data=body,
        headers={**alice, "Origin": base, "Content-Type": "application/json"},
        timeout=120,
    )
    assert response.status_code == 201, response.text[:500]
    saved = json.loads((WorkFolder(notebook_folder / "alice").notebook_root / "big.ipynb").read_text())
    assert "".join(saved["cells"][0]["outputs"][0]["data"]["text/plain"]) == payload
    assert peak_rss(pid) - before < 50 * MB
