"""The BATCH root must be ours: a real folder, owned by the tap's user, that no one else
can write to.

Why: the loader reads what the BATCH messages name, possibly after the tap has exited,
and the next run removes files there. In a folder another user can write to (or one that
is a link to wherever), a file can be swapped after it was announced (the loader loads
the swap), planted to break every later run, or a name can be made to point elsewhere.
"""

from __future__ import annotations

import contextlib
import os
import stat

from tap_commerce_exports.config.batch import BatchSettings
from tap_commerce_exports.errors import ConfigError

SETTING = "setting 'batch_config.storage.root'"


def check_root(settings: BatchSettings) -> None:
    """Create the root (``0700``) if it is missing; refuse one that is not ours."""
    root = settings.root
    with contextlib.suppress(FileExistsError):
        root.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        root.mkdir(mode=0o700)
    try:
        info = os.lstat(root)
    except OSError as exc:
        raise ConfigError(f"{SETTING}: '{root}' cannot be used ({exc.strerror}): check the path") from None
    if stat.S_ISLNK(info.st_mode):
        raise ConfigError(
            f"{SETTING}: '{root}' is a symbolic link: give the folder's own path ('{os.path.realpath(root)}')"
        )
    if not stat.S_ISDIR(info.st_mode):
        raise ConfigError(f"{SETTING}: '{root}' is not a folder: give a folder of the tap's user")
    if info.st_uid != os.geteuid():
        raise ConfigError(
            f"{SETTING}: '{root}' is owned by another user (uid {info.st_uid}): give a folder of the tap's user"
        )
    if info.st_mode & 0o022:
        raise ConfigError(
            f"{SETTING}: '{root}' can be written by other users (mode {stat.S_IMODE(info.st_mode):04o}): "
            f"run chmod go-w '{root}', or give a folder of the tap's own"
        )
