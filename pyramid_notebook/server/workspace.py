"""The layout of a user's work folder: the manager's files beside the notebooks, never among them.

::

    <work folder>/
        notebook.pid, notebook.lock, context.json, *.log   the manager's and daemon's control files
        .ipython/, .jupyter/, .local/                      IPython and Jupyter settings and runtime files
        notebooks/                                         Jupyter's root: all the user sees and edits

Jupyter's contents API and ``/files/`` reach only the root, so the context
file (which holds the notebook's token) and the pid file stay out of the
notebook's reach.  Work folders from before this layout kept the user's
notebooks beside the control files: they are moved into the root when the
notebook starts, and never overwritten or deleted.
"""
import fnmatch
import json
import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)

#: Jupyter's root folder, inside the work folder.
NOTEBOOK_ROOT_NAME = "notebooks"

#: What in a work folder is not the user's: these stay where they are.
CONTROL_NAMES = (
    "notebook.pid",
    "notebook.lock",
    "context.json",
    ".context-*",
    "*.log",
    ".ipython",
    ".jupyter",
    ".local",
    NOTEBOOK_ROOT_NAME,
)

#: Jupyter's atomic save copies the file it overwrites to ``.~<name>`` and
#: removes the copy once the new version is on disk.
SAVE_BACKUP_PREFIX = ".~"


def notebook_root(work_folder: Path) -> Path:
    """Jupyter's root folder for ``work_folder``: where the user's notebooks are."""
    return Path(work_folder) / NOTEBOOK_ROOT_NAME


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


def move_user_files_into_root(work_folder: Path, root: Path) -> list[tuple[str, str]]:
    """Move everything of the user's from ``work_folder`` into ``root``; return (old name, new name) pairs.

    A name that already exists in the root is kept, and the moved file gets
    a name of its own: nothing is overwritten.
    """
    moved = []
    for entry in sorted(os.listdir(work_folder)):
        if is_control_name(entry):
            continue
        target = free_name(root, entry, "moved")
        os.rename(work_folder / entry, target)
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


def prepare_notebook_root(work_folder: Path) -> Path:
    """Create the root folder (owner only), move the user's files in, and clean up after interrupted saves."""
    root = notebook_root(work_folder)
    if root.is_symlink() or (root.exists() and not root.is_dir()):
        # A file of the user's, or a link that would move the root elsewhere:
        # set it aside, it moves into the new root below.
        os.rename(root, free_name(Path(work_folder), root.name, "moved"))
    root.mkdir(mode=0o700, exist_ok=True)
    root.chmod(0o700)
    move_user_files_into_root(Path(work_folder), root)
    clean_save_backups(root)
    return root
