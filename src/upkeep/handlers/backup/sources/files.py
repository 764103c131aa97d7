"""Files and directories as tar archives (streamed through the artifact writer).

``excludes`` are glob patterns matched against the path inside the archive and against the base
name. The backup directories (destination, copy_to) and every catalogued artifact are ALWAYS left
out, even when a source directory contains them: a backup never contains earlier backups. So are
upkeep's own key files (``admin.key``, ``session.key`` in its data directory), and the run says so.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from upkeep.errors import ConfigError, UserError
from upkeep.handlers.backup.checks import check, compare_counts
from upkeep.handlers.backup.sources.base import Source
from upkeep.private import key_files

if TYPE_CHECKING:  # tarfile is imported where it is used: loading the handlers need not load it
    import tarfile


def _inside(path: Path, roots: Iterable[Path]) -> bool:
    return any(path == r or r in path.parents for r in roots)


def _excluded(arcname: str, patterns: list[str]) -> bool:
    base = arcname.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatch(arcname, p) or fnmatch.fnmatch(base, p) for p in patterns)


def layout(config) -> tuple[str, str]:
    return ".tar", config.compression


def create(ctx, source, config, new_writer, work_dir: Path, never_include: list[Path]) -> dict[str, Any]:
    import tarfile

    paths = [Path(p) for p in (source.spec.get("paths") or [source.spec["path"]])]
    patterns = list(source.spec.get("excludes") or []) + list(config.excludes)
    for p in paths:
        if not p.exists():
            raise UserError(f"backup source path {p} does not exist", field="config.source.paths")
    keys = [p.resolve() for p in key_files(ctx.data_dir)]
    roots = [p.resolve() for p in never_include] + keys
    counts = {"entries": 0, "files": 0, "bytes": 0}
    skipped: list[str] = []
    writer = new_writer("")
    with tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for root in paths:
            _add_tree(ctx, tar, root, root.name or "root", patterns, roots, counts, skipped)
    writer.finish()
    left_keys = [p for p in skipped if Path(p).resolve() in keys]
    if left_keys:
        ctx.warning(
            "key_files_excluded",
            f"left out upkeep's own key files ({', '.join(left_keys)}): a backup never carries them",
            paths=left_keys,
        )
    if skipped:
        ctx.info("excluded", f"left out {len(skipped)} path(s)", paths=skipped[:50])
    return {
        "format": "tar",
        "row_counts": counts,
        "excluded": skipped[:200],
        "excluded_key_files": left_keys,
        "paths": [str(p) for p in paths],
        "tool_versions": {"tarfile": "python"},
    }


def _add_tree(
    ctx,
    tar: tarfile.TarFile,
    root: Path,
    arcroot: str,
    patterns: list[str],
    never: list[Path],
    counts: dict[str, int],
    skipped: list[str],
) -> None:
    def add(path: Path, arcname: str) -> None:
        if _inside(path.resolve(), never):
            skipped.append(str(path))
            return
        info = tar.gettarinfo(str(path), arcname)
        if info is None:  # sockets, fifos
            return
        if info.isreg():
            with open(path, "rb") as fh:
                tar.addfile(info, fh)
            counts["files"] += 1
            counts["bytes"] += info.size
        else:
            tar.addfile(info)
        counts["entries"] += 1

    if root.is_file() or root.is_symlink():
        add(root, arcroot)
        return
    add(root, arcroot)
    for dirpath, dirnames, filenames in os.walk(root):
        ctx.check_cancelled()
        rel = Path(dirpath).relative_to(root)
        keep = []
        for d in sorted(dirnames):
            arc = f"{arcroot}/{rel / d}" if str(rel) != "." else f"{arcroot}/{d}"
            full = Path(dirpath) / d
            if _excluded(arc, patterns) or _inside(full.resolve(), never):
                skipped.append(str(full))
                continue
            keep.append(d)
            add(full, arc)
        dirnames[:] = keep
        for f in sorted(filenames):
            arc = f"{arcroot}/{rel / f}" if str(rel) != "." else f"{arcroot}/{f}"
            if _excluded(arc, patterns):
                skipped.append(str(Path(dirpath) / f))
                continue
            add(Path(dirpath) / f, arc)


def tar_directory(ctx, directory: Path, writer) -> None:
    """Archive a directory (a pg_dump -Fd dump) into ``writer`` with names relative to it."""
    import tarfile

    with tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for entry in sorted(directory.iterdir()):
            ctx.check_cancelled()
            tar.add(str(entry), entry.name)


def extract_tar(archive: Path, target: Path) -> None:
    import tarfile

    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:") as tar:
        tar.extractall(target, filter="data")


def verify(ctx, entry: dict[str, Any], raw: Path) -> list[dict[str, Any]]:
    import tarfile

    counts = {"entries": 0, "files": 0, "bytes": 0}
    try:
        with tarfile.open(raw, "r:") as tar:
            for member in tar:
                ctx.check_cancelled()
                counts["entries"] += 1
                if member.isreg():
                    counts["files"] += 1
                    counts["bytes"] += member.size
                    fh = tar.extractfile(member)
                    if fh is not None:
                        while fh.read(1 << 20):
                            pass
    except (tarfile.TarError, OSError, EOFError) as exc:
        return [check("archive", False, f"archive unreadable: {exc}")]
    return [
        check("archive", True, f"archive readable ({counts['entries']} entries)"),
        compare_counts(entry["manifest"].get("row_counts") or {}, counts, "entry counts"),
    ]


def restore_plan(entry: dict[str, Any], config) -> dict[str, Any]:
    if not config.target_path:
        raise UserError(
            "restoring a files backup needs target_path (an empty or new directory)", field="config.target_path"
        )
    target = Path(config.target_path)
    if target.exists() and any(target.iterdir()):
        raise UserError(
            f"target_path {target} is not empty",
            hint="restore into a new or empty directory",
            field="config.target_path",
        )
    return {
        "target_path": str(target),
        "creates": str(target),
        "drops": None,
        "steps": [f"extract backup {entry['id']} ({entry['manifest']['size']} bytes) into {target}"],
    }


def restore(ctx, entry: dict[str, Any], raw: Path, plan: dict[str, Any]) -> list[dict[str, Any]]:
    extract_tar(raw, Path(plan["target_path"]))
    return [check("extracted", True, f"extracted into {plan['target_path']}")]


class FilesSource(Source):
    type = "files"

    @classmethod
    def check_spec(cls, spec: dict[str, Any], field: str) -> None:
        if not (spec.get("paths") or spec.get("path")):
            raise ConfigError("a files source needs paths: [...]", field=f"{field}.paths")

    @classmethod
    def default_name(cls, spec: dict[str, Any]) -> str:
        paths = spec.get("paths") or [spec.get("path", "files")]
        return Path(str(paths[0])).name or "files"

    def layout(self, config) -> tuple[str, str]:
        return layout(config)

    def create(self, ctx, config, new_writer, work_dir: Path, never_include: list[Path]) -> dict[str, Any]:
        return create(ctx, self, config, new_writer, work_dir, never_include)

    @classmethod
    def verify(cls, ctx, entry, raw, config, work_dir, server, on_restored=None):
        return verify(ctx, entry, raw)

    @classmethod
    def restore_plan(cls, ctx, entry, config, server):
        return restore_plan(entry, config)

    @classmethod
    def restore(cls, ctx, entry, raw, plan, config, server, work_dir):
        return restore(ctx, entry, raw, plan)
