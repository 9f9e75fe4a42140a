"""The few pages pyramid_notebook shows itself, outside the notebook.

By default they are plain HTML with inline styles, so that they work on any
site without templates or static files being set up.  A site that wants them
in its own layout names a template of its own in the
``pyramid_notebook.page_renderer`` setting (e.g.
``myapp:templates/notebook_page.jinja2``); it gets ``title``, ``content``
(the page's HTML, marked safe for Jinja2 and Chameleon) and ``back_url``
(the site's front page).
"""
import json
from html import escape

from pyramid.csrf import get_csrf_token
from pyramid.renderers import render_to_response
from pyramid.request import Request
from pyramid.response import Response

PAGE = """<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 46rem; margin: 4rem auto; padding: 0 1rem; color: #222; }}
pre {{ background: #f4f4f4; padding: 1rem; font-size: 0.85rem; white-space: pre-wrap; overflow-wrap: anywhere; }}
a.button, button {{ display: inline-block; padding: 0.5rem 1rem; background: #1565c0; color: #fff;
  text-decoration: none; border: 0; border-radius: 4px; font: inherit; cursor: pointer; }}
button.danger {{ background: #c62828; }}
form {{ display: inline-block; margin: 0 0.5rem 0 0; }}
</style></head>
<body>
<h1>{title}</h1>
{body}
<p><a id="pyramid-notebook-back" href="{back_url}">Back to the site</a></p>
</body>
</html>
"""

#: The field a confirmation form posts back to a launch view: a launch that
#: carries it (and the site's CSRF token) may start or restart the notebook.
CONFIRM_FIELD = "pyramid_notebook.confirm"

BANNER = """<div id="pyramid-notebook-banner" style="position:fixed;right:12px;bottom:12px;z-index:10000;
font:13px system-ui,sans-serif;background:#fff;border:1px solid #bbb;border-radius:4px;padding:4px 10px;
box-shadow:0 1px 4px rgba(0,0,0,.2)"><form method="post" action="{url}" style="margin:0">
<input type="hidden" name="csrf_token" value="{csrf_token}"><button id="pyramid-notebook-shutdown" type="submit"
style="color:#c62828;background:none;border:0;padding:0;font:inherit;cursor:pointer;text-decoration:underline">
Shut down notebook and return to the site</button></form></div>"""

POST_FORM = """<form method="post" action="{action}"><input type="hidden" name="csrf_token" value="{csrf_token}">
{fields}<button type="submit" id="{button_id}" class="{button_class}">{label}</button></form>"""


class Html(str):
    """Text that is HTML already: templates (Jinja2, Chameleon) insert it unescaped."""

    def __html__(self) -> str:
        return self


def html_page(request: Request, title: str, body_html: str, status: int) -> Response:
    """One of the library's pages, in the site's template if it names one; ``body_html`` must already be escaped."""
    back_url = request.application_url + "/"
    renderer = request.registry.notebook_settings.page_renderer
    if renderer:
        value = {"title": title, "content": Html(body_html), "back_url": back_url}
        response = render_to_response(renderer, value, request=request, response=Response())
    else:
        response = Response(
            content_type="text/html",
            charset="utf-8",
            text=PAGE.format(title=escape(title), body=body_html, back_url=escape(back_url)),
        )
    response.status = status
    response.cache_control = "no-store"
    return response


def not_running_page(request: Request, launch_url: str) -> Response:
    """Shown for a notebook page when the user has no notebook running."""
    body = (
        "<p>Your notebook is not running. It may have been shut down, timed out, or stopped.</p>"
        '<p><a class="button" href="{}">Start it again</a></p>'.format(escape(launch_url))
    )
    return html_page(request, "Notebook not running", body, 503)


#: The steps of a start, as the status JSON names them, and what the page calls them.
START_STEPS = (
    ("process", "Notebook process started"),
    ("server", "Notebook server answering"),
    ("kernel", "Kernel ready, with the site loaded"),
)

STARTING_SCRIPT = """<script>
(function () {{
  var started = Date.now();
  // Milliseconds to the next look: often at first, when most starts end
  // (in well under a second); less and less often for a slow start, so that
  // many users starting at once do not load the site; and soon once the
  // server answers, since its kernel follows within moments.
  function nextPoll(status, elapsed) {{
    if ((status.steps || {{}}).server) {{ return 50; }}
    return Math.min(100 + elapsed / 10, 1000);
  }}
  function poll() {{
    fetch({status_url}, {{credentials: "same-origin", cache: "no-store"}})
      .then(function (response) {{ return response.json(); }})
      .then(function (status) {{
        Object.keys(status.steps || {{}}).forEach(function (step) {{
          var item = document.getElementById("pyramid-notebook-step-" + step);
          if (item && status.steps[step]) {{ item.className = "done"; }}
        }});
        var elapsed = status.elapsed || (Date.now() - started) / 1000;
        document.getElementById("elapsed").textContent = Math.round(elapsed) + " s";
        if (status.state === "starting") {{
          setTimeout(poll, nextPoll(status, Date.now() - started));
        }} else {{
          window.location.reload();
        }}
      }})
      .catch(function () {{ setTimeout(poll, 1000); }});
  }}
  poll();
}})();
</script>"""

STEPS_STYLE = """<style>
#pyramid-notebook-steps li { color: #888; }
#pyramid-notebook-steps li.done { color: #2e7d32; }
#pyramid-notebook-steps li.done::before { content: "\\2713  "; }
</style>"""


def starting_page(request: Request, status_url: str) -> Response:
    """Shown while the user's notebook starts: each step as it is done and the time so far; it opens the notebook."""
    steps = "".join(
        '<li id="pyramid-notebook-step-{}">{}</li>'.format(step, escape(label)) for step, label in START_STEPS
    )
    body = (
        STEPS_STYLE
        + '<p id="pyramid-notebook-starting">Starting your notebook… <span id="elapsed"></span></p>'
        + '<ul id="pyramid-notebook-steps">{}</ul>'.format(steps)
        + "<p>This takes a few seconds. The page moves on by itself.</p>"
        + STARTING_SCRIPT.format(status_url=json.dumps(status_url))
    )
    response = html_page(request, "Starting your notebook", body, 200)
    response.headers["Retry-After"] = "1"
    return response


def start_failed_page(request: Request, reason: str) -> Response:
    """Shown to the owner of a notebook that did not start, with the log lines that say why."""
    body = "<p>Your notebook could not be started.</p><pre>{}</pre>".format(escape(reason))
    return html_page(request, "Notebook did not start", body, 500)


def banner(shutdown_url: str, csrf_token: str) -> str:
    """The control added to notebook pages that shuts the notebook down and goes back to the site.

    It is a form that POSTs the site's CSRF token: stopping a notebook
    throws its kernels' state away, so no link on another web site may do it.
    """
    return BANNER.format(url=escape(shutdown_url), csrf_token=escape(csrf_token))


def post_form(
    action: str, csrf_token: str, label: str, button_id: str, fields: dict | None = None, danger: bool = False
) -> str:
    """A one-button form that POSTs to ``action`` with the site's CSRF token and ``fields``."""
    hidden = "".join(
        '<input type="hidden" name="{}" value="{}">'.format(escape(name), escape(value))
        for name, value in (fields or {}).items()
    )
    return POST_FORM.format(
        action=escape(action),
        csrf_token=escape(csrf_token),
        fields=hidden,
        button_id=escape(button_id),
        button_class="danger" if danger else "",
        label=escape(label),
    )


def describe_age(seconds: float) -> str:
    """``seconds`` ago in words a person reads at a glance: "just now", "3 minutes ago", "2 hours ago"."""
    if seconds < 60:
        return "just now"
    minutes = int(seconds // 60)
    if minutes < 120:
        return "{} minute{} ago".format(minutes, "" if minutes == 1 else "s")
    return "{} hours ago".format(minutes // 60)


def confirm_restart_page(
    request: Request, running_url: str, running_from: str | None, last_used_ago: float
) -> Response:
    """Asked when a page would restart a notebook that is in use with another context.

    A restart throws away every variable the user's kernels hold, so it
    never happens on a GET alone: a link on another web site could send one.
    The restart button posts back to this page's launch view.
    """
    where = (
        'opened from <a href="{0}" id="pyramid-notebook-running-from">{0}</a>'.format(escape(running_from))
        if running_from
        else "opened from another page"
    )
    body = (
        '<p id="pyramid-notebook-confirm-restart">Your notebook is running with another context '
        "({}, last used {}).</p>"
        "<p>Restarting it with this page's context ends its kernels: unsaved variables are lost. "
        "Saved notebooks stay.</p>"
        '<p><a class="button" id="pyramid-notebook-open-running" href="{}">Open the running notebook</a></p>'
        "<p>{}</p>".format(
            where,
            escape(describe_age(last_used_ago)),
            escape(running_url),
            post_form(
                request.url,
                get_csrf_token(request),
                "Restart with this page's context",
                "pyramid-notebook-restart",
                {CONFIRM_FIELD: "restart"},
                danger=True,
            ),
        )
    )
    return html_page(request, "Your notebook is running with another context", body, 200)


def confirm_start_page(request: Request) -> Response:
    """Asked when a launch arrives from another web site: starting a notebook is the user's decision."""
    body = (
        '<p id="pyramid-notebook-confirm-start">A link from another web site asks to open a notebook shell '
        "on this site.</p>"
        "<p>Start it only if you meant to.</p><p>{}</p>".format(
            post_form(
                request.url,
                get_csrf_token(request),
                "Start the notebook",
                "pyramid-notebook-start",
                {CONFIRM_FIELD: "start"},
            )
        )
    )
    return html_page(request, "Start a notebook?", body, 200)


def confirm_shutdown_page(request: Request) -> Response:
    """The answer to a GET of the shutdown URL: a form, since a shutdown must be a POST."""
    body = (
        '<p id="pyramid-notebook-confirm-shutdown">Shut down your notebook? Its kernels end; saved notebooks stay.</p>'
        "<p>{}</p>".format(
            post_form(
                request.url,
                get_csrf_token(request),
                "Shut down",
                "pyramid-notebook-confirm-shutdown-button",
                danger=True,
            )
        )
    )
    return html_page(request, "Shut down your notebook?", body, 200)
