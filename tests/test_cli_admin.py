"""Operators' tools: who stopped a notebook, when, and where it was launched from; bad admin input.

tests/test_lifecycle.py covers listing and stopping itself; these tests cover
the stop reasons, ``list --all``, the launch URL column and the admin page's
answers to a bad form.
"""
import time

import pytest

from pyramid_notebook import cli
from pyramid_notebook.protocol.context import STOPPED_BY_ADMIN, STOPPED_BY_CLI, STOPPED_IDLE, NotebookContext
from pyramid_notebook.protocol.workfolder import WorkFolder
from pyramid_notebook.waiting import wait_for
from tests.support.site import as_user

LAUNCH_URL = "http://site.example/projects/7/shell?tab=2"


def write_stopped(notebook_folder, name: str, launch_url: str, reason: str, stopped_at: float) -> None:
    """A user folder as a stopped notebook leaves it, without starting one."""
    folder = WorkFolder(notebook_folder / name)
    folder.path.mkdir(parents=True)
    NotebookContext(launch_url=launch_url, stopped_at=stopped_at, stopped_reason=reason, http_port=42001).write(
        folder.context_file
    )


@pytest.fixture
def config_file(settings, tmp_path):
    """The test site's INI file, as an operator would pass it to ``pyramid-notebook``."""
    path = tmp_path / "site.ini"
    path.write_text(
        "[app:main]\nuse = call:tests.support.site:main\n"
        + "".join("{} = {}\n".format(k, v) for k, v in settings.items())
    )
    return path


def run_cli(capsys, config_file, *arguments) -> tuple[int, str, str]:
    """Run the command line in this process: its exit code, standard output and standard error."""
    code = cli.main([str(config_file), *arguments])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def stopped_section(listing: str) -> list[str]:
    """The lines of ``list --all``'s table of notebooks that do not run, heading first."""
    return listing.split("\n\nNot running:\n", 1)[1].splitlines()


# The command line


def test_list_all_shows_stopped_notebooks_newest_first(capsys, config_file, notebook_folder):
    now = time.time()
    write_stopped(notebook_folder, "alice", LAUNCH_URL, STOPPED_BY_CLI, now - 3600)
    write_stopped(notebook_folder, "bob", "http://site.example/other", STOPPED_IDLE, now - 30)
    code, out, err = run_cli(capsys, config_file, "list")
    assert code == 0, err
    assert out.splitlines() == ["user  pid  port  started  last activity  memory  launch URL"]
    code, out, err = run_cli(capsys, config_file, "list", "--all")
    assert code == 0, err
    heading, bob, alice = stopped_section(out)
    assert heading.split() == ["user", "state", "stopped", "reason", "launch", "URL"]
    assert bob.split()[:2] == ["bob", "stopped"]
    assert STOPPED_IDLE in bob and bob.endswith("http://site.example/other")
    assert alice.split()[:2] == ["alice", "stopped"]
    assert time.strftime("%Y-%m-%d %H:%M", time.localtime(now - 3600)) in alice
    assert "(60 min ago)" in alice
    assert STOPPED_BY_CLI in alice
    assert alice.endswith(LAUNCH_URL)


def test_cli_stops_record_the_command_line_as_the_reason(capsys, config_file, notebook_folder, manager):
    manager.start_notebook_on_demand("alice", {"launch_url": LAUNCH_URL})
    manager.start_notebook_on_demand("bob", {"launch_url": "http://site.example/bob"})

    code, out, err = run_cli(capsys, config_file, "list")
    assert code == 0, err
    heading, alice, bob = out.splitlines()
    assert heading.split()[-2:] == ["launch", "URL"]
    assert alice.startswith("alice ") and alice.endswith(LAUNCH_URL)
    assert bob.endswith("http://site.example/bob")

    assert run_cli(capsys, config_file, "stop", "alice")[0] == 0
    context = manager.get_context("alice")
    assert context.stopped_reason == STOPPED_BY_CLI
    assert context.stopped_at == pytest.approx(time.time(), abs=60)
    code, out, err = run_cli(capsys, config_file, "list", "--all")
    running = out.split("\n\nNot running:\n")[0].splitlines()
    assert [line.split()[0] for line in running] == ["user", "bob"]
    assert stopped_section(out)[1].split()[0] == "alice"
    assert STOPPED_BY_CLI in stopped_section(out)[1] and stopped_section(out)[1].endswith(LAUNCH_URL)

    assert run_cli(capsys, config_file, "stop-all") == (0, "Stopped 1 notebook(s): bob\n", "")
    assert manager.get_context("bob").stopped_reason == STOPPED_BY_CLI


def test_cli_reads_the_site_at_the_end_of_a_pipeline(capsys, settings, tmp_path, notebook_folder):
    """As in the shipped uwsgi.ini: ``main`` is a pipeline of filters before the site, and has no settings itself."""
    write_stopped(notebook_folder, "alice", LAUNCH_URL, STOPPED_IDLE, time.time())
    config_file = tmp_path / "pipeline.ini"
    config_file.write_text(
        "[pipeline:main]\npipeline = connection-close site\n\n"
        "[filter:connection-close]\nuse = call:pyramid_notebook.connection_close:filter_factory\n\n"
        "[app:site]\nuse = call:tests.support.site:main\n"
        + "".join("{} = {}\n".format(k, v) for k, v in settings.items())
    )
    code, out, err = run_cli(capsys, config_file, "list", "--all")
    assert code == 0, err
    assert "alice" in stopped_section(out)[1]


def test_cli_stop_with_a_bad_user_name_says_why(capsys, config_file):
    code, out, err = run_cli(capsys, config_file, "stop", "../alice")
    assert code == 2
    assert out == ""
    assert "must not contain a slash" in err


# The admin page


def admin_page(app):
    return app.get("/admin/notebooks", headers=as_user("admin"), status=200)


def test_admin_page_shows_stopped_notebooks_with_escaped_launch_urls(app, notebook_folder):
    hostile = 'http://site.example/shell?x="><script>alert(1)</script>'
    stopped_at = time.time() - 10
    write_stopped(notebook_folder, "carol", hostile, STOPPED_BY_ADMIN, stopped_at)
    page = admin_page(app)
    assert "No notebooks are running." in page.text
    assert "<script>alert" not in page.text
    table = page.html.find(id="pyramid-notebook-stopped")
    assert [cell.text for cell in table.find_all("th")] == ["user", "state", "stopped", "reason", "launch URL"]
    user, state, stopped, reason, launch = table.find("tbody").find_all("td")
    assert (user.text, state.text, reason.text, launch.text) == ("carol", "stopped", STOPPED_BY_ADMIN, hostile)
    assert launch.find("a")["href"] == hostile
    assert time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stopped_at)) in stopped.text


def test_admin_page_does_not_link_a_launch_url_that_is_not_a_web_address(app, notebook_folder):
    write_stopped(notebook_folder, "dave", "javascript:alert(1)", STOPPED_BY_ADMIN, time.time())
    launch = admin_page(app).html.find(id="pyramid-notebook-stopped").find("tbody").find_all("td")[-1]
    assert launch.text == "javascript:alert(1)"
    assert launch.find("a") is None


def test_admin_stop_records_the_reason_and_refuses_bad_names(app):
    response = app.get("/launch", headers=as_user("alice"), status=302)
    manager = app.app.registry.notebook_manager
    assert wait_for(lambda: manager.get_state("alice")[0] == "running", 60)
    page = admin_page(app)
    running = page.html.find(id="pyramid-notebook-admin")
    cells = running.find("tbody").find_all("td")
    assert [cell.text for cell in running.find_all("th")][-2] == "launch URL"
    assert cells[len(cells) - 2].find("a")["href"] == "http://localhost/launch"
    assert manager.get_context("alice").context_hash not in page.text

    form = page.forms[0]
    csrf = form["csrf_token"].value
    for bad_name, why in [("", "user field is empty"), ("../alice", "slash"), (".hidden", "dot")]:
        refused = app.post(
            "/admin/notebooks", {"csrf_token": csrf, "user": bad_name}, headers=as_user("admin"), status=400
        )
        assert why in refused.text
    assert manager.get_state("alice")[0] == "running"

    form.submit(headers=as_user("admin"), status=302)
    context = manager.get_context("alice")
    assert context.stopped_reason == STOPPED_BY_ADMIN
    assert context.launch_url == response.request.url
    stopped = admin_page(app).html.find(id="pyramid-notebook-stopped").find("tbody").find_all("td")
    assert [stopped[0].text, stopped[3].text, stopped[4].text] == ["alice", STOPPED_BY_ADMIN, "http://localhost/launch"]
