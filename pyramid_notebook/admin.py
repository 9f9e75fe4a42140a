"""An operators' page for the site: the running notebooks with a stop button each, then the others.

Wire it to an admin route of your own, behind your own permission::

    config.add_route("notebook_admin", "/admin/notebooks")

    @view_config(route_name="notebook_admin", permission="admin")
    def admin_notebooks(request):
        return pyramid_notebook.admin.notebook_admin(request)

Stopping is a POST that carries the site's CSRF token and is checked with
Pyramid's own ``check_csrf_token``.  Each notebook shows its launch URL, the
site page its shell was opened from; a stopped one shows when and why it ended.
"""
from html import escape
from urllib.parse import urlsplit

from pyramid.csrf import check_csrf_token, get_csrf_token
from pyramid.httpexceptions import HTTPBadRequest, HTTPFound
from pyramid.request import Request
from pyramid.response import Response

from pyramid_notebook.manager import check_name
from pyramid_notebook.pages import html_page
from pyramid_notebook.protocol.context import STOPPED_BY_ADMIN
from pyramid_notebook.report import COLUMNS, STOPPED_COLUMNS, split_statuses, status_row, stopped_row

STOP_FORM = (
    '<form method="post" style="margin:0"><input type="hidden" name="csrf_token" value="{csrf}">'
    '<input type="hidden" name="user" value="{user}"><button type="submit">Stop</button></form>'
)

TABLE = (
    '<table id="{table_id}" style="border-collapse:collapse" cellpadding="6">'
    "<thead><tr>{heading}</tr></thead><tbody>{rows}</tbody></table>"
)


def launch_link(url: str) -> str:
    """The launch URL as a link when it is a web address, else as plain text; escaped either way."""
    if urlsplit(url).scheme in ("http", "https"):
        return '<a href="{0}">{0}</a>'.format(escape(url))
    return escape(url)


def table_cells(row: tuple[str, ...]) -> str:
    """A report row as table cells; the last cell, the launch URL, becomes a link."""
    *cells, launch_url = row
    return "".join("<td>{}</td>".format(escape(cell)) for cell in cells) + "<td>{}</td>".format(launch_link(launch_url))


def heading_cells(columns: tuple[str, ...], extra: int = 0) -> str:
    """Table heading cells for ``columns``, then ``extra`` empty ones."""
    return "".join("<th>{}</th>".format(escape(column)) for column in columns) + "<th></th>" * extra


def stop_from_form(request: Request) -> None:
    """Stop the notebook of the user the POST names; a missing or impossible name is a 400, not a crash."""
    check_csrf_token(request)
    name = request.POST.get("user", "")
    if not name:
        raise HTTPBadRequest("Say whose notebook to stop: the form's user field is empty.")
    try:
        check_name(name)
    except ValueError as error:
        raise HTTPBadRequest(str(error)) from None
    request.registry.notebook_manager.stop_notebook(name, reason=STOPPED_BY_ADMIN)


def notebook_admin(request: Request) -> Response:
    """GET: the running notebooks, then those that stopped.  POST ``user``: stop that user's notebook."""
    if request.method == "POST":
        stop_from_form(request)
        return HTTPFound(request.path_url)
    running, stopped = split_statuses(request.registry.notebook_manager.list_notebooks(include_stopped=True))
    csrf = escape(get_csrf_token(request))
    rows = "".join(
        "<tr>{}<td>{}</td></tr>".format(
            table_cells(status_row(status)), STOP_FORM.format(csrf=csrf, user=escape(status["name"]))
        )
        for status in running
    )
    body = (
        TABLE.format(table_id="pyramid-notebook-admin", heading=heading_cells(COLUMNS, extra=1), rows=rows)
        if running
        else "<p>No notebooks are running.</p>"
    )
    if stopped:
        stopped_rows = "".join("<tr>{}</tr>".format(table_cells(stopped_row(status))) for status in stopped)
        body += "<h2>Not running</h2>" + TABLE.format(
            table_id="pyramid-notebook-stopped", heading=heading_cells(STOPPED_COLUMNS), rows=stopped_rows
        )
    return html_page(request, "Notebooks", body, 200)
