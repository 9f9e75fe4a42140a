"""User names as folder names: checked before anything touches the disk.

Names are used as they are, so an administrator can find
``mikko@example.com``'s folder at a glance.  Anything that could lead out of
the notebook folder, or clash with the manager's own files, is refused with
a ValueError that says what was wrong (the views answer it with a 400).
"""
from pathlib import Path

from pyramid_notebook.protocol.workfolder import WorkFolder

#: Longest user name, in bytes: a folder name may not exceed 255.
MAX_NAME_BYTES = 200


def check_name(name: str) -> str:
    """Return ``name`` if it can safely be used as a folder name, else raise ValueError saying why."""
    if not isinstance(name, str) or not name:
        raise ValueError("Notebook user name must be a non-empty string, got {!r}".format(name))
    if "/" in name or "\\" in name:
        raise ValueError("Notebook user name {!r} must not contain a slash".format(name))
    if any(ord(character) < 32 or ord(character) == 127 for character in name):
        raise ValueError("Notebook user name {!r} must not contain control characters".format(name))
    if name.startswith("."):
        raise ValueError("Notebook user name {!r} must not start with a dot".format(name))
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise ValueError("Notebook user name {!r} is longer than {} bytes".format(name, MAX_NAME_BYTES))
    return name


def user_work_folder(notebook_folder: Path, name: str) -> WorkFolder:
    """The work folder of user ``name`` under ``notebook_folder`` (not created here); ValueError for a bad name."""
    return WorkFolder(Path(notebook_folder) / check_name(name))


def user_names(notebook_folder: Path) -> list[str]:
    """The users with a work folder under ``notebook_folder``, sorted; anything else there is skipped."""
    names = []
    for folder in sorted(Path(notebook_folder).iterdir()):
        if not folder.is_dir() or folder.name.startswith("."):
            continue
        try:
            names.append(check_name(folder.name))
        except ValueError:
            continue
    return names
