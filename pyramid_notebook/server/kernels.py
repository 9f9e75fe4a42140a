"""jupyter_server's kernel manager, which lists a kernel still starting instead of failing the list.

jupyter_server adds a new kernel to its map when jupyter_client has started
it, and marks its state and last activity only when its own code resumes,
an event loop turn later.  A kernel listing in between (``api/kernels``, and
``api/status``, which every notebook page polls) reads a last activity that
is not set yet and answers 500: seen here with three clients listing while
eight kernels started, 3 to 5 times a run.  Here such a kernel is listed as
"starting", which it is.
"""
from datetime import UTC, datetime

from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager


def is_marked(kernel) -> bool:
    """True once jupyter_server has set the kernel's last activity (reading it before raises)."""
    if kernel.has_trait("last_activity"):
        return kernel.trait_has_value("last_activity")
    return hasattr(kernel, "last_activity")


class StartingKernelsListed(AsyncMappingKernelManager):
    """The stock kernel manager, except for kernels listed between their start and jupyter_server's marks."""

    def kernel_model(self, kernel_id: str) -> dict:
        kernel = self.get_kernel(kernel_id)
        if is_marked(kernel):
            return super().kernel_model(kernel_id)
        return {
            "id": kernel_id,
            "name": kernel.kernel_name,
            "last_activity": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "execution_state": "starting",
            "connections": 0,
        }
