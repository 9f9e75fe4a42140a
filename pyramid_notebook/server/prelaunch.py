"""The landing notebook's kernel, launched before the Jupyter server is even imported.

Why: a site's kernel loads the whole site as it starts (its INI file, its
models, its database), which takes half a second of CPU or more.  Started
with the landing session once the server listens, that work competes with
the browser loading the notebook page on the same machine, and the page
shows later.  Launched first thing in the daemon, the kernel does its work
on another core while the server initialises (about 0.4 s), and is done, or
nearly, by the time the page asks for it.

jupyter_server then adopts it.  The daemon makes
:class:`~pyramid_notebook.server.provisioner.AdoptingProvisioner` the
default kernel provisioner; when the server starts the landing
session's kernel, the provisioner hands over the process and connection
file already there, provided they are exactly what it would have launched:
the same kernel, the same folder, the same notebook, the same command line
and environment.  Anything else launches as usual, and a kernel launched
ahead that nobody adopted is ended (:func:`discard_waiting_kernel`).

This module imports jupyter_client only when it launches: the daemon
imports it before it detaches, and every import there delays the kernel.
"""
import logging
import os
import subprocess
import uuid
from dataclasses import dataclass
from importlib.metadata import entry_points

logger = logging.getLogger(__name__)

#: The provisioner's name, as registered in the ``jupyter_client.kernel_provisioners`` entry points.
PROVISIONER_NAME = "pyramid-notebook-provisioner"
PROVISIONER_ENTRY_POINTS = "jupyter_client.kernel_provisioners"

#: The kernel the landing notebook gets: jupyter_server's default kernel name.
LANDING_KERNEL_NAME = "python3"

#: Environment variables that jupyter_client sets for each launch; the rest must match.
LAUNCH_VARIABLES = frozenset({"JPY_PARENT_PID"})

#: Seconds to wait for a kernel nobody adopted to end after SIGTERM, before SIGKILL.
END_TIMEOUT = 5.0


#: How the kernel launched ahead is reached: what a launch must ask for to adopt it.
TRANSPORT, IP = "tcp", "127.0.0.1"


@dataclass
class KernelLaunch:
    """What the server is about to launch a kernel with, as far as adopting one goes.

    ``argv`` is the command line without its connection file (see
    :func:`without_connection_file`); ``encrypted`` is true when the server
    wants CurveZMQ keys for the kernel, which a kernel launched ahead has not.
    """

    kernel_name: str
    cwd: str | None
    argv: list[str]
    env: dict[str, str]
    transport: str = TRANSPORT
    ip: str = IP
    encrypted: bool = False


@dataclass
class WaitingKernel:
    """A kernel process launched ahead, and what it was launched with (``argv`` without its connection file)."""

    kernel_name: str
    session_name: str
    cwd: str
    argv: list[str]
    env: dict[str, str]
    connection_file: str
    process: subprocess.Popen

    def refusal(self, launch: KernelLaunch) -> str | None:
        """Why ``launch`` cannot adopt this kernel, or None if it can."""
        if launch.kernel_name != self.kernel_name:
            return "kernel {!r}, not {!r}".format(launch.kernel_name, self.kernel_name)
        if os.path.realpath(launch.cwd or os.getcwd()) != os.path.realpath(self.cwd):
            return "another folder"
        if launch.argv != self.argv:
            return "another command line"
        if (launch.transport, launch.ip) != (TRANSPORT, IP):
            return "another transport or address ({} on {})".format(launch.transport, launch.ip)
        if launch.encrypted:
            return "transport encryption"
        differing = sorted(
            name
            for name in (launch.env.keys() | self.env.keys()) - LAUNCH_VARIABLES
            if launch.env.get(name) != self.env.get(name)
        )
        if differing:
            return "another environment ({})".format(", ".join(differing))
        return None


#: The kernel launched ahead, until it is adopted or discarded: one per daemon.
_waiting: WaitingKernel | None = None


#: Stands for the connection file in a command line compared for adoption: each launch has a file of its own.
CONNECTION_FILE_FIELD = "{connection_file}"


def without_connection_file(argv: list[str], connection_file: str) -> list[str]:
    """``argv`` with the connection file's path put back as its field, so that two launches compare."""
    path = os.path.realpath(connection_file)
    return [arg.replace(path, CONNECTION_FILE_FIELD) for arg in argv]


def provisioner_registered() -> bool:
    """True if jupyter_client can find the adopting provisioner by its name: it looks in the installed packages."""
    return bool(entry_points(group=PROVISIONER_ENTRY_POINTS, name=PROVISIONER_NAME))


def launch_ahead(session_name: str, cwd: str, runtime_dir: str) -> WaitingKernel | None:
    """Launch the kernel for a notebook now, to be adopted when the server starts it.

    ``session_name`` is the notebook's file as jupyter_server names a
    kernel's session (``JPY_SESSION_NAME``): its absolute path; ``cwd`` is
    the folder the server would start the kernel in.

    Call it once the environment is what the server's kernels will inherit.
    Returns None, and launches nothing, when the kernel spec sets variables
    of its own (they are filled in at launch time) or cannot be found: the
    server then launches the kernel as usual.
    """
    global _waiting
    if not provisioner_registered():
        logger.info("jupyter_client does not know %s (pyramid_notebook is not installed)", PROVISIONER_NAME)
        return None
    from jupyter_client.connect import write_connection_file
    from jupyter_client.kernelspec import NoSuchKernel
    from jupyter_client.launcher import launch_kernel
    from jupyter_client.manager import KernelManager
    from jupyter_client.provisioning import KernelProvisionerFactory

    connection_file = os.path.join(runtime_dir, "kernel-{}.json".format(uuid.uuid4()))
    # jupyter_client's own manager finds the kernel spec and fills in its command
    # line, as the server's will; it starts nothing and writes nothing.
    manager = KernelManager(kernel_name=LANDING_KERNEL_NAME, connection_file=connection_file)
    try:
        spec = manager.kernel_spec
    except NoSuchKernel:
        logger.info("No %s kernel spec: the landing kernel starts with the server", LANDING_KERNEL_NAME)
        return None
    finally:
        # Looking the spec up made the provisioner factory, a singleton, without
        # the server's configuration: let the server make its own.
        KernelProvisionerFactory.clear_instance()
    if spec.env:
        logger.info("The %s kernel spec sets variables: the landing kernel starts with the server", LANDING_KERNEL_NAME)
        return None
    write_connection_file(
        connection_file,
        transport=TRANSPORT,
        ip=IP,
        key=str(uuid.uuid4()).encode("ascii"),
        kernel_name=LANDING_KERNEL_NAME,
        jupyter_session=session_name,
    )
    argv = manager.format_kernel_cmd()
    # What the server would pass (compared at adoption), and what its provisioner would launch with.
    env = dict(os.environ, JPY_SESSION_NAME=session_name)
    launch_env = dict(env)
    if (spec.language or "").lower().startswith("python"):
        launch_env.pop("PYTHONEXECUTABLE", None)
    process = launch_kernel(argv, env=launch_env, cwd=cwd)
    _waiting = WaitingKernel(
        LANDING_KERNEL_NAME,
        session_name,
        cwd,
        without_connection_file(argv, connection_file),
        env,
        connection_file,
        process,
    )
    logger.info("Launched the landing kernel ahead of the server (pid %d)", process.pid)
    return _waiting


def claim_waiting_kernel(launch: KernelLaunch) -> WaitingKernel | None:
    """The kernel launched ahead, taken out of waiting, if ``launch`` is for its notebook and may adopt it.

    A launch for the landing notebook that cannot adopt it ends it: nothing
    else would.
    """
    global _waiting
    if _waiting is None or launch.env.get("JPY_SESSION_NAME") != _waiting.session_name:
        return None
    refusal = _waiting.refusal(launch)
    if refusal is not None:
        logger.info("Not adopting the kernel launched ahead: the server launches it with %s", refusal)
        discard_waiting_kernel()
        return None
    waiting, _waiting = _waiting, None
    if waiting.process.poll() is not None:
        logger.warning("The kernel launched ahead has exited (code %s): launching another", waiting.process.returncode)
        return None
    return waiting


def discard_waiting_kernel() -> None:
    """End the kernel launched ahead if nobody adopted it, and remove its connection file."""
    global _waiting
    waiting, _waiting = _waiting, None
    if waiting is None:
        return
    if waiting.process.poll() is None:
        logger.info("Ending the landing kernel launched ahead (pid %d): nobody adopted it", waiting.process.pid)
        waiting.process.terminate()
        try:
            waiting.process.wait(END_TIMEOUT)
        except subprocess.TimeoutExpired:
            waiting.process.kill()
            waiting.process.wait()
    try:
        os.remove(waiting.connection_file)
    except FileNotFoundError:
        pass
