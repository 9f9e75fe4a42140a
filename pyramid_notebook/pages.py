"""The few pages pyramid_notebook shows itself, outside the notebook.

They are plain HTML with inline styles, so that they work on any site
without templates or static files being set up.
"""
import json
from html import escape

from pyramid.response import Response

PAGE = """<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 46rem; margin: 4rem auto; padding: 0 1rem; color: #222; }}
pre {{ background: #f4f4f4; padding: 1rem; overflow-x: auto; font-size: 0.85rem; }}
a.button {{ display: inline-block; padding: 0.5rem 1rem; background: #1565c0; color: #fff; text-decoration: none;
  border-radius: 4px; }}
</style></head>
<body>
<h1>{title}</h1>
{body}
</body>
</html>
"""

BANNER = """<div id="pyramid-notebook-banner" style="position:fixed;right:12px;bottom:12px;z-index:10000;
font:13px system-ui,sans-serif;background:#fff;border:1px solid #bbb;border-radius:4px;padding:4px 10px;
box-shadow:0 1px 4px rgba(0,0,0,.2)"><a id="pyramid-notebook-shutdown" href="{url}" style="color:#c62828">
Shut down notebook and return to the site</a></div>"""


def html_page(title: str, body_html: str, status: int) -> Response:
    """A small self-contained HTML page; ``body_html`` must already be escaped."""
    return Response(
        status=status,
        content_type="text/html",
        charset="utf-8",
        text=PAGE.format(title=escape(title), body=body_html),
        cache_control="no-store",
    )


def not_running_page(launch_url: str) -> Response:
    """Shown for a notebook page when the user has no notebook running."""
    body = (
        "<p>Your notebook is not running. It may have been shut down, timed out, or stopped.</p>"
        '<p><a class="button" href="{}">Start it again</a></p>'.format(escape(launch_url))
    )
    return html_page("Notebook not running", body, 503)


STARTING_SCRIPT = """<script>
(function () {{
  var started = Date.now();
  function poll() {{
    fetch({status_url}, {{credentials: "same-origin", cache: "no-store"}})
      .then(function (response) {{ return response.json(); }})
      .then(function (status) {{
        if (status.state === "starting") {{
          document.getElementById("elapsed").textContent = Math.round((Date.now() - started) / 1000) + " s";
          setTimeout(poll, 400);
        }} else {{
          window.location.reload();
        }}
      }})
      .catch(function () {{ setTimeout(poll, 1000); }});
  }}
  poll();
}})();
</script>"""


def starting_page(status_url: str) -> Response:
    """Shown while the user's notebook starts; it follows progress and opens the notebook when it answers."""
    body = (
        '<p id="pyramid-notebook-starting">Starting your notebook… <span id="elapsed"></span></p>'
        "<p>This takes a few seconds. The page moves on by itself.</p>"
        + STARTING_SCRIPT.format(status_url=json.dumps(status_url))
    )
    response = html_page("Starting your notebook", body, 200)
    response.headers["Retry-After"] = "1"
    return response


def start_failed_page(reason: str) -> Response:
    """Shown to the owner of a notebook that did not start, with the log lines that say why."""
    body = "<p>Your notebook could not be started.</p><pre>{}</pre>".format(escape(reason))
    return html_page("Notebook did not start", body, 500)


def banner(shutdown_url: str) -> str:
    """The link added to notebook pages that shuts the notebook down and goes back to the site."""
    return BANNER.format(url=escape(shutdown_url))
