"""The kernel provisioner of a notebook's server: jupyter_client's own, which can adopt the landing kernel.

jupyter_client finds it through the ``jupyter_client.kernel_provisioners``
entry point that ``setup.py`` registers; the daemon makes it the default
when it launched the landing kernel ahead (see
:mod:`pyramid_notebook.server.prelaunch`).
"""
import logging
import os

from jupyter_client.provisioning import LocalProvisioner

from pyramid_notebook.server.prelaunch import KernelLaunch, WaitingKernel, claim_waiting_kernel, without_connection_file

logger = logging.getLogger(__name__)


class AdoptingProvisioner(LocalProvisioner):
    """jupyter_client's local provisioner, which adopts the kernel launched ahead when it is the one asked for.

    Adopting means taking over the running process and its connection file
    (its ports and key) in place of launching: to the server the kernel
    looks like any other, and restarts, interrupts and shutdowns work on it
    as usual.  Only a kernel's first launch may adopt; a restart launches.
    """

    tried_adopting = False
    adopting: WaitingKernel | None = None

    async def pre_launch(self, **kwargs):
        km = self.parent
        if km is not None and not self.tried_adopting:
            self.tried_adopting = True
            command = km.format_kernel_cmd(extra_arguments=list(kwargs.get("extra_arguments", [])))
            launch = KernelLaunch(
                kernel_name=km.kernel_name,
                cwd=kwargs.get("cwd"),
                argv=without_connection_file(command, km.connection_file),
                env=dict(kwargs.get("env", os.environ)),
                transport=km.transport,
                ip=km.ip,
                encrypted=kwargs.get("transport_encryption", getattr(km, "transport_encryption", "disabled"))
                not in ("disabled", False, None, ""),
            )
            self.adopting = claim_waiting_kernel(launch)
            if self.adopting is not None:
                # The kernel's own connection file, its ports and key, become the
                # manager's: it removes the file when the kernel ends, and a
                # restart reuses it.  LocalProvisioner would pick new ports.
                km.connection_file = self.adopting.connection_file
                km.load_connection_file()
                self.ports_cached = True
        return await super().pre_launch(**kwargs)

    async def launch_kernel(self, cmd: list[str], **kwargs):
        adopting, self.adopting = self.adopting, None
        if adopting is None:
            return await super().launch_kernel(cmd, **kwargs)
        logger.info("Adopted the landing kernel launched ahead (pid %d)", adopting.process.pid)
        self.process = adopting.process
        self.pid = adopting.process.pid
        self.pgid = os.getpgid(self.pid)
        self.cwd = adopting.cwd
        return self.connection_info
