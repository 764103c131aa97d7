"""Private artifacts: what upkeep writes belongs to the account it runs as.

Backups, manifests, reports, the store and the keys under the data directory hold data and
secrets, so every file upkeep creates is mode 0600 and every directory it creates 0700, whatever
the umask. A backup destination with a ``group:`` (``targets.backups.NAME.group``) makes them
0640 and 0750 and owned by that group, so its members (an off-site copy job) may read them.
Directories that exist already keep their mode: they are someone else's choice.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from upkeep.errors import ConfigError

ADMIN_KEY_FILE = "admin.key"  # the first admin API key, in the data directory
SESSION_KEY_FILE = "session.key"  # the secret that signs the UI's session cookies


def key_files(data_dir: str | os.PathLike) -> list[Path]:
    """upkeep's own secrets in its data directory: never copied into a backup."""
    return [Path(data_dir) / ADMIN_KEY_FILE, Path(data_dir) / SESSION_KEY_FILE]


@dataclass(frozen=True)
class Private:
    group: str | None = None

    @property
    def file_mode(self) -> int:
        return 0o640 if self.group else 0o600

    @property
    def dir_mode(self) -> int:
        return 0o750 if self.group else 0o700

    def _gid(self) -> int:
        import grp

        assert self.group is not None
        try:
            return grp.getgrnam(self.group).gr_gid
        except KeyError:
            raise ConfigError(
                f"group {self.group!r} does not exist on this host", hint="create it, or remove group: from the target"
            ) from None

    def _own(self, path: str | os.PathLike | int, mode: int) -> None:
        """Set the mode (the umask never widens or narrows it) and the group."""
        if isinstance(path, int):
            os.fchmod(path, mode)
            if self.group:
                os.fchown(path, -1, self._gid())
            return
        os.chmod(path, mode)
        if self.group:
            os.chown(path, -1, self._gid())

    def mkdir(self, path: str | os.PathLike) -> Path:
        """``path`` and its missing parents, each created private; existing ones are left alone."""
        path = Path(path)
        missing = []
        cursor = path
        while not cursor.exists():
            missing.append(cursor)
            if cursor.parent == cursor:
                break
            cursor = cursor.parent
        for directory in reversed(missing):
            try:
                directory.mkdir(mode=self.dir_mode)
            except FileExistsError:
                continue
            self._own(directory, self.dir_mode)
        return path

    def open(self, path: str | os.PathLike, mode: str = "x", *, text: bool = False) -> IO[Any]:
        """A private file for writing: ``x`` a new one (it must not exist), ``w`` truncated, ``a``
        appended to."""
        flags = os.O_WRONLY | os.O_CREAT | {"x": os.O_EXCL, "w": os.O_TRUNC, "a": os.O_APPEND}[mode]
        fd = os.open(path, flags, self.file_mode)
        try:
            self._own(fd, self.file_mode)
        except BaseException:
            os.close(fd)
            raise
        return os.fdopen(fd, ("a" if mode == "a" else "w") + ("" if text else "b"), encoding="utf-8" if text else None)

    def write(self, path: str | os.PathLike, data: str | bytes) -> Path:
        """Write a whole private file (replacing an existing one's content)."""
        with self.open(path, "w", text=isinstance(data, str)) as handle:
            handle.write(data)
        return Path(path)

    def protect(self, path: str | os.PathLike) -> None:
        """Make a file another program created (SQLite, a socket) private."""
        self._own(path, self.dir_mode if Path(path).is_dir() else self.file_mode)


PRIVATE = Private()
