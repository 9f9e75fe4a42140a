"""The user's side of a work folder: the notebook root, the landing notebook, and moving old folders in.

::

    <work folder>/
        notebook.pid, notebook.lock, context.json, *.log   the manager's and daemon's control files
        .ipython/, .jupyter/, .local/                      IPython and Jupyter settings and runtime files
        notebooks/                                         Jupyter's root: all the user sees and edits

The names are :mod:`pyramid_notebook.protocol.workfolder`'s and
:mod:`.jupyter`'s.  Jupyter's contents API and ``/files/`` reach only the
root, so the context file (which holds the notebook's token) and the pid
file stay out of the notebook's reach.  Work folders from before this layout
kept the user's notebooks beside the control files: they are moved into the
root when the notebook starts, and never overwritten or deleted.
"""
import fnmatch
import json
import logging
import os
from pathlib import Path

from pyramid_notebook.protocol.context import NotebookContext
from pyramid_notebook.protocol.workfolder import (
    CONTEXT_FILE_NAME,
    LOCK_FILE_NAME,
    NOTEBOOK_ROOT_NAME,
    PID_FILE_NAME,
    WorkFolder,
)
from pyramid_notebook.server.jupyter import IPYTHON_DIR_NAME, JUPYTER_CONFIG_DIR_NAME, JUPYTER_DATA_DIR_NAME

logger = logging.getLogger(__name__)

#: What in a work folder is not the user's: these stay where they are.
#: ``.context-*`` are the context file's temporary copies while it is
#: replaced; ``*.log`` covers the logs (a user's own ``.log`` file stays too).
CONTROL_NAMES = (
    PID_FILE_NAME,
    LOCK_FILE_NAME,
    CONTEXT_FILE_NAME,
    ".context-*",
    "*.log",
    IPYTHON_DIR_NAME,
    JUPYTER_CONFIG_DIR_NAME,
    JUPYTER_DATA_DIR_NAME,
    NOTEBOOK_ROOT_NAME,
)

#: Jupyter's atomic save copies the file it overwrites to ``.~<name>`` and
#: removes the copy once the new version is on disk.
SAVE_BACKUP_PREFIX = ".~"


def is_control_name(name: str) -> bool:
    """True if ``name`` in a work folder is one of the manager's or the daemon's own files."""
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in CONTROL_NAMES)


def free_name(folder: Path, name: str, note: str) -> Path:
    """A path in ``folder`` for ``name`` that nothing uses yet, marked with ``note`` if ``name`` is taken.

    ``report.ipynb`` becomes ``report (moved).ipynb``, then ``report (moved 2).ipynb``.
    """
    candidate = folder / name
    stem, suffix = (name, "") if name.startswith(".") or "." not in name else name.rsplit(".", 1)
    suffix = "." + suffix if suffix else ""
    number = 1
    while os.path.lexists(candidate):
        label = note if number == 1 else "{} {}".format(note, number)
        candidate = folder / "{} ({}){}".format(stem, label, suffix)
        number += 1
    return candidate


def move_user_files_into_root(work_folder: WorkFolder) -> list[tuple[str, str]]:
    """Move everything of the user's from the work folder into its notebook root; return (old name, new name) pairs.

    A name that already exists in the root is kept, and the moved file gets
    a name of its own: nothing is overwritten.
    """
    root = work_folder.notebook_root
    moved = []
    for entry in sorted(os.listdir(work_folder.path)):
        if is_control_name(entry):
            continue
        target = free_name(root, entry, "moved")
        os.rename(work_folder.path / entry, target)
        moved.append((entry, target.name))
        logger.warning("Moved %s from the work folder into %s/ as %s", entry, root.name, target.name)
    return moved


def is_complete_notebook(path: Path) -> bool:
    """True if ``path`` holds a whole notebook document (a cut-off write is not valid JSON)."""
    try:
        with open(path, encoding="utf-8") as stream:
            return isinstance(json.load(stream), dict)
    except (OSError, ValueError):
        return False


def resolve_save_backup(backup: Path) -> None:
    """Deal with a backup an interrupted save left behind, losing nothing.

    No file beside it: the backup is the file, put it back.  A complete
    notebook beside it: the save finished, the backup is stale.  Anything
    else (a cut-off notebook, any other file, which cannot be checked): keep
    both, the backup under a visible name.
    """
    target = backup.with_name(backup.name[len(SAVE_BACKUP_PREFIX) :])
    if not os.path.lexists(target):
        os.rename(backup, target)
        logger.warning("Restored %s from the backup an interrupted save left", target)
    elif target.suffix == ".ipynb" and is_complete_notebook(target):
        backup.unlink()
        logger.info("Removed %s: the save it backed up had finished", backup)
    else:
        kept = free_name(backup.parent, target.name, "before an interrupted save")
        os.rename(backup, kept)
        logger.warning("An interrupted save left %s: kept the earlier version as %s", target, kept.name)


def clean_save_backups(root: Path) -> None:
    """Resolve every backup that an interrupted save left anywhere under ``root``."""
    for folder, folders, files in os.walk(root):
        folders[:] = [name for name in folders if not os.path.islink(os.path.join(folder, name))]
        for name in files:
            if name.startswith(SAVE_BACKUP_PREFIX) and len(name) > len(SAVE_BACKUP_PREFIX):
                resolve_save_backup(Path(folder) / name)


def prepare_notebook_root(work_folder: WorkFolder) -> Path:
    """Create the root folder (owner only), move the user's files in, and clean up after interrupted saves."""
    root = work_folder.notebook_root
    if root.is_symlink() or (root.exists() and not root.is_dir()):
        # A file of the user's, or a link that would move the root elsewhere:
        # set it aside, it moves into the new root below.
        os.rename(root, free_name(work_folder.path, root.name, "moved"))
    root.mkdir(mode=0o700, exist_ok=True)
    root.chmod(0o700)
    move_user_files_into_root(work_folder)
    clean_save_backups(root)
    return root


def write_default_notebook(path: Path, context: NotebookContext) -> None:
    """Create the landing notebook unless the user already has it.

    An existing file is never touched: it may hold the user's own work.
    The kernelspec metadata matters: without it Notebook 7 opens a
    "Select Kernel" dialog instead of the notebook.
    """
    if path.exists():
        return
    # Imported here, once the daemon has kept slow optional modules out (see .jupyter).
    import nbformat

    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    notebook.metadata["language_info"] = {"name": "python"}
    welcome = (
        "# Welcome\n\n"
        "This notebook runs on the web site's own server, with the site's code and data. "
        "Whatever you run here runs there: take care."
    )
    notebook.cells.append(nbformat.v4.new_markdown_cell(welcome))
    if context.greeting:
        notebook.cells.append(nbformat.v4.new_markdown_cell(context.greeting))
    notebook.cells.append(nbformat.v4.new_code_cell(""))
    nbformat.write(notebook, str(path))
