"""A contents manager that never reaches outside the notebook's root folder.

Jupyter's file contents manager checks API paths against its root without
resolving symbolic links: a link that the user (or code in a kernel)
creates inside the root, pointing at ``../context.json`` or at ``..``, would
be read, written (saves write through links) or deleted through the
contents API.  This one resolves every path first and refuses anything
whose real location is outside the root.
"""
import errno
import os

from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from tornado import web


class OutsideRootError(web.HTTPError, PermissionError):
    """A path that resolves outside the root folder.

    Requests get the same 404 as for a path that does not exist.  It is also
    a PermissionError, which the folder listing treats like a file it may
    not read: it leaves the entry out instead of failing the whole listing.
    """

    def __init__(self, path: str):
        web.HTTPError.__init__(self, 404, "%s is outside root contents directory", path)
        self.errno = errno.EACCES


class ConfinedContentsManager(AsyncLargeFileManager):
    """Jupyter's default contents manager, confined to the real location of its root folder."""

    def _get_os_path(self, path):
        os_path = super()._get_os_path(path)
        root = os.path.realpath(self.root_dir)
        real_path = os.path.realpath(os_path)
        if real_path != root and not real_path.startswith(root + os.path.sep):
            self.log.warning("Refused %r: it leads outside the notebook folder", path)
            raise OutsideRootError(path)
        return os_path
