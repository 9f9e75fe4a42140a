"""The manager's own files are out of the notebook's reach.

Jupyter's root is ``<work folder>/notebooks``; the pid, lock, context (with
the notebook's token) and log files sit beside it.  Neither the contents API
nor ``/files/`` may read or change them: not by name, not through ``..`` or
``%2e%2e``, not through a symbolic link the user makes in their folder, not
by absolute path.  These requests go straight to the notebook's port with
its token, as anything running in the user's browser tab could.
"""

import http.client
import json
import os
from pathlib import Path

import pytest

from pyramid_notebook.manager import NotebookManager
from pyramid_notebook.protocol.context import NotebookContext
from pyramid_notebook.protocol.workfolder import WorkFolder
from pyramid_notebook.server.workspace import clean_save_backups, move_user_files_into_root, prepare_notebook_root
from tests.support.notebooks import stop_all

CONTROL_FILES = ("context.json", "notebook.pid", "notebook.lock", "notebook.stderr.log")


class Notebook:
    """Raw HTTP requests to one notebook server: the path is sent exactly as written, dots and escapes included."""

    def __init__(self, context: NotebookContext, work_folder: WorkFolder):
        self.context = context
        self.work_folder = work_folder.path
        self.root = work_folder.notebook_root

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.context.http_port, timeout=30)
        try:
            headers = {"Authorization": "token " + self.context.token}
            data = None
            if body is not None:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
            connection.request(method, "/notebook/" + path, body=data, headers=headers)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def control_files(self) -> dict[str, object]:
        """The control files' contents, less what the server itself keeps updating.

        The server records its last use in the context file (the requests
        made here count as use) and keeps writing to its log: only the log's
        first line is kept, and the context without ``last_activity``.
        """
        contents = {name: (self.work_folder / name).read_bytes() for name in CONTROL_FILES}
        contents["notebook.stderr.log"] = contents["notebook.stderr.log"].split(b"\n", 1)[0]
        context = json.loads(contents["context.json"])
        context.pop("last_activity")
        contents["context.json"] = context
        return contents


@pytest.fixture
def manager(notebook_folder):
    """A manager on ports of this module's own, apart from other test modules running at the same time."""
    notebook_manager = NotebookManager(notebook_folder, min_port=24100, port_range=100, kill_timeout=600)
    yield notebook_manager
    stop_all(notebook_manager)


@pytest.fixture
def notebook(manager):
    context, _ = manager.start_notebook_on_demand("alice", {})
    work_folder = manager.work_folder("alice")
    (work_folder.notebook_root / "mine.txt").write_text("the user's own file")
    return Notebook(context, work_folder)


def test_the_notebook_root_is_a_folder_of_its_own(notebook):
    assert notebook.root == notebook.work_folder / "notebooks"
    assert oct(notebook.root.stat().st_mode & 0o777) == "0o700"
    assert (notebook.root / notebook.context.notebook_name).is_file()
    for name in CONTROL_FILES:
        assert (notebook.work_folder / name).exists(), name
    status, body = notebook.request("GET", "api/contents")
    assert status == 200
    listed = {entry["name"] for entry in json.loads(body)["content"]}
    assert listed == {notebook.context.notebook_name, "mine.txt"}


ROUTES = [
    "{}",
    "../{}",
    "%2e%2e/{}",
    "%2E%2E%2F{}",
    "..%2f{}",
    "x/../../{}",
    "./%2e%2e/{}",
    "{work_folder}/{}",
    "/{work_folder}/{}",
    "%2F{work_folder}%2F{}",
]


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("name", ["context.json", "notebook.pid"])
def test_control_files_cannot_be_read(notebook, route, name):
    path = route.format(name, work_folder=str(notebook.work_folder).lstrip("/"))
    for prefix in ("api/contents/", "files/"):
        status, body = notebook.request("GET", prefix + path)
        assert status in (400, 403, 404), "{}{} answered {}".format(prefix, path, status)
        assert notebook.context.token.encode() not in body


@pytest.mark.parametrize("route", ["{}", "../{}", "%2e%2e/{}", "..%2f{}"])
def test_control_files_cannot_be_changed(notebook, route):
    before = notebook.control_files()
    for name in CONTROL_FILES:
        path = "api/contents/" + route.format(name)
        notebook.request("DELETE", path)
        notebook.request("PUT", path, {"type": "file", "format": "text", "content": "overwritten"})
        notebook.request("PATCH", path, {"path": "stolen-" + name})
        if route != "{}":
            # Moving a file of the user's over a control file; by its bare name it would only be renamed in the root.
            notebook.request("PATCH", "api/contents/mine.txt", {"path": route.format(name)})
    assert notebook.control_files() == before
    assert (notebook.root / "mine.txt").read_text() == "the user's own file"


def test_symlinks_out_of_the_root_lead_nowhere(notebook):
    before = notebook.control_files()
    (notebook.root / "token.json").symlink_to(notebook.work_folder / "context.json")
    (notebook.root / "relative.json").symlink_to(Path("..") / "context.json")
    (notebook.root / "up").symlink_to("..")
    (notebook.root / "outside").symlink_to(notebook.work_folder)

    for path in ("token.json", "relative.json", "up/context.json", "outside/context.json", "up/notebook.pid"):
        for prefix in ("api/contents/", "files/"):
            status, body = notebook.request("GET", prefix + path)
            assert status in (403, 404), "{}{} answered {}".format(prefix, path, status)
            assert notebook.context.token.encode() not in body
        notebook.request("PUT", "api/contents/" + path, {"type": "file", "format": "text", "content": "overwritten"})
        notebook.request("DELETE", "api/contents/" + path)
        notebook.request("PATCH", "api/contents/" + path, {"path": "stolen.json"})
    notebook.request("PATCH", "api/contents/mine.txt", {"path": "up/mine.txt"})
    notebook.request("PUT", "api/contents/up/new.txt", {"type": "file", "format": "text", "content": "escaped"})

    assert notebook.control_files() == before
    assert not (notebook.work_folder / "new.txt").exists()
    assert not (notebook.work_folder / "mine.txt").exists()
    assert not (notebook.root / "stolen.json").exists()
    # The folder still lists, without the links that lead out of it.
    status, body = notebook.request("GET", "api/contents")
    assert status == 200
    listed = {entry["name"] for entry in json.loads(body)["content"]}
    assert "mine.txt" in listed
    assert not listed & {"token.json", "relative.json", "up", "outside"}


def test_links_inside_the_root_still_work(notebook):
    (notebook.root / "data").mkdir()
    (notebook.root / "data" / "table.csv").write_text("a,b\n1,2\n")
    (notebook.root / "table-link.csv").symlink_to(Path("data") / "table.csv")
    status, body = notebook.request("GET", "files/table-link.csv")
    assert (status, body) == (200, b"a,b\n1,2\n")
    status, body = notebook.request("GET", "api/contents/table-link.csv")
    assert status == 200
    assert json.loads(body)["content"] == "a,b\n1,2\n"


def test_an_existing_work_folder_keeps_its_notebooks(manager):
    """A work folder from before: the user's files beside the control files move into the root, none is lost."""
    work_folder = manager.get_work_folder("alice")
    (work_folder / "notebooks").mkdir(parents=True)
    (work_folder / "notebooks" / "report.ipynb").write_text("newer report")
    (work_folder / "report.ipynb").write_text("older report")
    (work_folder / "analysis.py").write_text("print('hello')")
    (work_folder / "data").mkdir()
    (work_folder / "data" / "table.csv").write_text("a,b\n")
    (work_folder / ".ipynb_checkpoints").mkdir()
    (work_folder / ".ipynb_checkpoints" / "report-checkpoint.ipynb").write_text("checkpoint")
    (work_folder / "notebook.stderr.log").write_text("an old log\n")

    manager.start_notebook_on_demand("alice", {})

    root = work_folder / "notebooks"
    assert (root / "report.ipynb").read_text() == "newer report"
    assert (root / "report (moved).ipynb").read_text() == "older report"
    assert (root / "analysis.py").read_text() == "print('hello')"
    assert (root / "data" / "table.csv").read_text() == "a,b\n"
    assert (root / ".ipynb_checkpoints" / "report-checkpoint.ipynb").read_text() == "checkpoint"
    assert not {"report.ipynb", "analysis.py", "data", ".ipynb_checkpoints"} & set(os.listdir(work_folder))
    assert (work_folder / "notebook.stderr.log").read_text().startswith("an old log\n")


def test_moving_in_never_overwrites(tmp_path):
    root = tmp_path / "notebooks"
    root.mkdir()
    for name in ("a.ipynb", "a (moved).ipynb", "folder", "context.json", "x.log", ".context-1.tmp"):
        (tmp_path / name).write_text("old " + name)
    (root / "a.ipynb").write_text("kept")
    (root / "a (moved).ipynb").write_text("kept too")
    (root / "folder").mkdir()

    moved = dict(move_user_files_into_root(WorkFolder(tmp_path)))

    assert moved == {
        "a.ipynb": "a (moved 2).ipynb",
        "a (moved).ipynb": "a (moved) (moved).ipynb",
        "folder": "folder (moved)",
    }
    assert (root / "a.ipynb").read_text() == "kept"
    assert (root / "a (moved 2).ipynb").read_text() == "old a.ipynb"
    assert (root / "folder (moved)").read_text() == "old folder"
    assert sorted(os.listdir(tmp_path)) == [".context-1.tmp", "context.json", "notebooks", "x.log"]


def test_backups_of_interrupted_saves_are_resolved_without_loss(tmp_path):
    (tmp_path / "done.ipynb").write_text(json.dumps({"cells": [], "metadata": {}}))
    (tmp_path / ".~done.ipynb").write_text("the version before the save")
    (tmp_path / ".~lost.ipynb").write_text("the only copy")
    (tmp_path / "cut.ipynb").write_text('{"cells": [{"source": "half')
    (tmp_path / ".~cut.ipynb").write_text("the version before the cut save")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "script.py").write_text("new")
    (tmp_path / "sub" / ".~script.py").write_text("old")

    clean_save_backups(tmp_path)

    assert sorted(os.listdir(tmp_path)) == [
        "cut (before an interrupted save).ipynb",
        "cut.ipynb",
        "done.ipynb",
        "lost.ipynb",
        "sub",
    ]
    assert (tmp_path / "lost.ipynb").read_text() == "the only copy"
    assert (tmp_path / "cut (before an interrupted save).ipynb").read_text() == "the version before the cut save"
    assert sorted(os.listdir(tmp_path / "sub")) == ["script (before an interrupted save).py", "script.py"]


def test_a_file_or_link_named_like_the_root_is_set_aside(tmp_path):
    (tmp_path / "notebooks").write_text("a file of the user's")
    root = prepare_notebook_root(WorkFolder(tmp_path))
    assert root.is_dir() and not root.is_symlink()
    assert (root / "notebooks (moved)").read_text() == "a file of the user's"

    (tmp_path / "second").mkdir()
    os.rename(root, tmp_path / "second" / "old-root")
    (tmp_path / "notebooks").symlink_to("/")
    root = prepare_notebook_root(WorkFolder(tmp_path))
    assert root.is_dir() and not root.is_symlink()
    assert os.readlink(root / "notebooks (moved)") == "/"
