"""An operators' page for the site: the running notebooks, with a stop button for each.

Wire it to an admin route of your own, behind your own permission::

    config.add_route("notebook_admin", "/admin/notebooks")

    @view_config(route_name="notebook_admin", permission="admin")
    def admin_notebooks(request):
        return pyramid_notebook.admin.notebook_admin(request)

Stopping is a POST that carries the site's CSRF token and is checked with
Pyramid's own ``check_csrf_token``.
"""
from html import escape

from pyramid.csrf import check_csrf_token, get_csrf_token
from pyramid.httpexceptions import HTTPFound
from pyramid.request import Request
from pyramid.response import Response

from pyramid_notebook.pages import html_page
from pyramid_notebook.report import COLUMNS, status_row

STOP_FORM = (
    '<form method="post" style="margin:0"><input type="hidden" name="csrf_token" value="{csrf}">'
    '<input type="hidden" name="user" value="{user}"><button type="submit">Stop</button></form>'
)


def notebook_admin(request: Request) -> Response:
    """GET: the table of running notebooks.  POST ``user``: stop that user's notebook, then show the table."""
    manager = request.registry.notebook_manager
    if request.method == "POST":
        check_csrf_token(request)
        manager.stop_notebook(request.POST.get("user", ""))
        return HTTPFound(request.path_url)
    csrf = escape(get_csrf_token(request))
    rows = []
    for status in manager.list_notebooks():
        cells = "".join("<td>{}</td>".format(escape(cell)) for cell in status_row(status))
        rows.append("<tr>{}<td>{}</td></tr>".format(cells, STOP_FORM.format(csrf=csrf, user=escape(status["name"]))))
    heading = "".join("<th>{}</th>".format(escape(column)) for column in COLUMNS)
    body = (
        '<table id="pyramid-notebook-admin" style="border-collapse:collapse" cellpadding="6">'
        "<thead><tr>{}<th></th></tr></thead><tbody>{}</tbody></table>".format(heading, "".join(rows))
        if rows
        else "<p>No notebooks are running.</p>"
    )
    return html_page("Running notebooks", body, 200)
