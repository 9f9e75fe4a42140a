"""How the daemon configures Jupyter Server and where Jupyter and IPython keep their files.

Everything here is decided from the notebook's context; nothing starts a
server.  The token travels in the configuration object, never on the command
line, which any local user can read with ``ps``.
"""
import os
import sys
from pathlib import Path

from traitlets.config import Config

from pyramid_notebook.protocol.context import NotebookContext
from pyramid_notebook.server.prelaunch import PROVISIONER_NAME

#: Templates that replace some of Jupyter Server's own (errors, login) with pages that never show the token.
TEMPLATES = Path(__file__).resolve().parent / "templates"

#: Where IPython and Jupyter keep what they would otherwise keep in the home
#: folder, inside the work folder: two users never share settings or startup scripts.
IPYTHON_DIR_NAME = ".ipython"
JUPYTER_CONFIG_DIR_NAME = ".jupyter"
JUPYTER_DATA_DIR_NAME = ".local"

#: Modules Jupyter can do without that are slow to import (see :func:`skip_slow_optional_imports`).
SLOW_OPTIONAL_MODULES = ("rfc3987_syntax",)


def skip_slow_optional_imports() -> None:
    """Keep Jupyter from importing modules it has no use for here; call before Jupyter is imported.

    jsonschema (imported by nbformat and Jupyter) imports ``rfc3987_syntax``
    when it is installed, which compiles some 35 Lark parsers: about 3 s of a
    4 s start here.  Only the "iri" formats need it; no Jupyter schema does.
    """
    for name in SLOW_OPTIONAL_MODULES:
        sys.modules.setdefault(name, None)


def prepare_jupyter_folders(work_folder: Path) -> dict[str, str]:
    """Create the folders where IPython and Jupyter keep their files; return the environment that points them there.

    The server and its kernels inherit the environment.
    """
    ipython_dir = work_folder / IPYTHON_DIR_NAME
    config_dir = work_folder / JUPYTER_CONFIG_DIR_NAME
    data_dir = work_folder / JUPYTER_DATA_DIR_NAME
    runtime_dir = data_dir / "runtime"
    for folder in (ipython_dir, config_dir, runtime_dir):
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return {
        "IPYTHONDIR": str(ipython_dir),
        "JUPYTER_CONFIG_DIR": str(config_dir),
        "JUPYTER_DATA_DIR": str(data_dir),
        "JUPYTER_RUNTIME_DIR": str(runtime_dir),
    }


def direct_websocket_url(port: int, notebook_path: str) -> str:
    """Where a browser opens its websockets when they go straight to the notebook's own port."""
    return "ws://127.0.0.1:{}{}".format(port, notebook_path)


def page_config(context: NotebookContext) -> dict[str, str]:
    """What the notebook's pages get in their page configuration, beside Jupyter's own.

    Empty when the browser opens its websockets where it loaded the page.
    """
    if not context.websocket_url:
        return {}
    config = {"wsUrl": context.websocket_url}
    if context.direct_websockets:
        # JupyterLab adds the token to websocket URLs only when the page's
        # host name differs from the websocket's, ignoring the port: a site at
        # http://127.0.0.1:9999 would reach the notebook without it.
        config["appendToken"] = "true"
    return config


def server_config(context: NotebookContext, adopt_landing_kernel: bool = False) -> Config:
    """The Jupyter configuration that must not travel on the command line, for a run of ``context``.

    ``adopt_landing_kernel``: the landing notebook's kernel was launched
    ahead (see :mod:`pyramid_notebook.server.prelaunch`) for the server to adopt.
    """
    config = Config()
    config.IdentityProvider.token = context.token
    config.ServerApp.kernel_websocket_connection_class = (
        "pyramid_notebook.server.nodelay.NoDelayKernelWebsocketConnection"
    )
    config.ServerApp.contents_manager_class = "pyramid_notebook.server.contents.ConfinedContentsManager"
    config.ServerApp.kernel_manager_class = "pyramid_notebook.server.kernels.StartingKernelsListed"
    config.ServerApp.extra_template_paths = [str(TEMPLATES)]
    config.ServerApp.open_browser = False
    config.ServerApp.allow_origin = context.allow_origin
    # JupyterLab at /lab would hand the token to the browser; the language
    # server extension finds no servers here and only slows start and stop.
    config.ServerApp.jpserver_extensions = {"jupyterlab": False, "jupyter_lsp": False}
    if adopt_landing_kernel:
        config.KernelProvisionerFactory.default_provisioner_name = PROVISIONER_NAME
    if context.websocket_url:
        # Notebook 7's page templates take wsUrl from ServerApp.websocket_url,
        # over any page_config_data.
        config.ServerApp.websocket_url = context.websocket_url
        config.ServerApp.tornado_settings = {"page_config_data": page_config(context)}
    return config


def server_arguments(port: int, context: NotebookContext, root: Path, extra: list[str]) -> list[str]:
    """Command line arguments for the Jupyter server, serving the notebooks in ``root``; ``extra`` last, to win."""
    arguments = [
        "--no-browser",
        "--ip=127.0.0.1",
        "--port={}".format(port),
        "--port-retries=0",
        "--ServerApp.base_url={}".format(context.notebook_path),
        "--ServerApp.root_dir={}".format(root),
    ]
    if os.geteuid() == 0:
        # Jupyter refuses to run as root without it.
        arguments.append("--allow-root")
    return arguments + list(extra)


def keep_token_out_of_pages(server, context: NotebookContext) -> None:
    """Blank the token that Jupyter would put in its pages' configuration, unless the browser needs it.

    Behind the site's proxy, which adds the token to every request itself,
    the browser has no use for it.  Websockets that go straight to the
    server (``direct_websockets``) need it.  Call once the server is initialised.
    """
    if not context.direct_websockets:
        server.web_app.settings["token"] = ""
