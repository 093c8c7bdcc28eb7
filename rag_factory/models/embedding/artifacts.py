"""Content-addressed model artifacts: store, verify, download with resume, and extract archives safely."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import http.client
import json
import logging
import os
import re
import shutil
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any

from rag_factory.errors import (
    ArtifactIntegrityError,
    DownloadError,
    InvalidArgumentError,
    ModelPathNotFoundError,
)

_CHUNK = 1024 * 1024
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
# Prefix of the text hashed for a directory, so a file can never share a directory's digest.
_DIR_HASH_PREFIX = "rag-factory-directory-v1\n"
MANIFEST = "manifest.json"
CONTENT = "content"
# Work folders under the root: a copy being staged, an archive being extracted, an artifact being deleted.
_WORK_PREFIXES = (".staging-", ".extract-")
_DELETING_PREFIX = ".deleting-"
# A work folder younger than this is never removed: its writer may not have locked it yet.
ABANDONED_AFTER_S = 60.0
# Where folders cannot be locked (some network filesystems), one this old is taken as abandoned.
UNLOCKABLE_ABANDONED_AFTER_S = 24 * 3600.0

logger = logging.getLogger(__name__)


class ArtifactStore:
    """Artifacts under ``<root>/sha256/<digest>/``: ``manifest.json`` plus ``content/``.

    A file is stored as ``content/<its name>`` and its digest is the file's own sha256 (what
    ``sha256sum`` prints). A directory is stored as ``content/`` and its digest is the sha256 of
    its sorted manifest of relative paths and per-file sha256s, so identical content always gets
    the same digest and is stored once.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root) / "sha256"
        self.root.mkdir(parents=True, exist_ok=True)
        self.remove_abandoned()

    def remove_abandoned(self) -> list[str]:
        """Delete the work folders of writers that died (``kill -9``, a power cut); return their names.

        Each writer holds an exclusive ``flock`` on its ``.staging-*`` or ``.extract-*`` folder while it
        works. The kernel drops the lock when the process ends, however it ends, so a folder that can be
        locked has no live writer, on this host or any other sharing the lock. A folder younger than
        ``ABANDONED_AFTER_S`` is kept all the same (its writer creates it, then locks it). A
        ``.deleting-*`` folder was already given up by its owner and goes at once. ``.corrupt-*`` folders
        are kept for inspection. Runs whenever a store is opened, so crashes do not pile up copies.
        """
        removed = []
        for entry in sorted(self.root.iterdir()):
            name = entry.name
            if name.startswith(_DELETING_PREFIX) or (name.startswith(_WORK_PREFIXES) and _abandoned(entry)):
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(name)
        if removed:
            logger.info("removed %d folder(s) left by interrupted writers in %s", len(removed), self.root)
        return removed

    def location(self, digest: str) -> Path:
        """The directory holding artifact ``digest`` (it may not exist)."""
        if not isinstance(digest, str) or not _DIGEST.match(digest):
            raise InvalidArgumentError(f"{digest!r} is not a sha256 hex digest")
        return self.root / digest

    def exists(self, digest: str) -> bool:
        """Whether an artifact with this digest is stored (without checking its content)."""
        return (self.location(digest) / MANIFEST).is_file()

    def digests(self) -> list[str]:
        """Digests of every stored artifact."""
        return sorted(p.name for p in self.root.iterdir() if _DIGEST.match(p.name))

    def put(self, path: str | Path) -> str:
        """Store a file or directory and return its digest; storing the same content again is a no-op.

        The content is copied (and hashed while copying) into a temporary directory on the same
        filesystem, flushed to disk, then renamed into place, so a crash never leaves a half
        artifact under its digest.

        Raises:
            ModelPathNotFoundError: ``path`` does not exist.
            InvalidArgumentError: ``path`` is neither a file nor a directory, or holds a directory symlink.
        """
        source = Path(path)
        if not source.exists():
            raise ModelPathNotFoundError(f"artifact path {str(source)!r} does not exist")
        if not (source.is_file() or source.is_dir()):
            raise InvalidArgumentError(f"artifact path {str(source)!r} is not a file or a directory")
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.root))
        try:
            with _held(staging):
                return self._stage(source, staging)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _stage(self, source: Path, staging: Path) -> str:
        content = staging / CONTENT
        if source.is_file():
            content.mkdir()
            sha, size = _copy_and_hash(source, content / source.name)
            manifest = {"kind": "file", "digest": sha, "files": [_entry(source.name, sha, size)]}
        else:
            manifest = _copy_tree(source, content)
        digest = str(manifest["digest"])
        _write_json(staging / MANIFEST, manifest)
        _fsync_dir(staging)
        self._install(staging, digest)
        return digest

    def _install(self, staging: Path, digest: str) -> None:
        final = self.root / digest
        if (final / MANIFEST).is_file():
            try:
                self.verify(digest)
                return  # already stored and intact
            except ArtifactIntegrityError:
                # Replace a corrupt copy with the good one we just made; keep the bad one aside.
                os.replace(final, final.with_name(f".corrupt-{digest}-{os.getpid()}"))
        try:
            os.replace(staging, final)
        except OSError:
            # Another writer installed the same digest first; theirs is identical content.
            if not (final / MANIFEST).is_file():
                raise
        _fsync_dir(self.root)

    def verify(self, digest: str) -> Path:
        """Re-hash a stored artifact and return its content path (the file, or the directory).

        Raises:
            ArtifactIntegrityError: The artifact is missing, or a file (named in the message) has
                changed, appeared or disappeared.
        """
        base = self.location(digest)
        manifest = self._manifest(digest)
        content = base / CONTENT
        recorded = {str(e["path"]): str(e["sha256"]) for e in manifest["files"]}
        on_disk = _relative_files(content) if content.is_dir() else []
        extras = sorted(set(on_disk) - set(recorded))
        if extras:
            raise ArtifactIntegrityError(
                f"artifact {digest[:12]} has an unexpected file {extras[0]!r}; re-register the model",
                digest=digest,
                file=extras[0],
            )
        for rel, expected in sorted(recorded.items()):
            file = content / rel
            if not file.is_file():
                raise ArtifactIntegrityError(
                    f"artifact {digest[:12]} is missing file {rel!r}; re-register the model",
                    digest=digest,
                    file=rel,
                )
            actual = sha256_file(file)
            if actual != expected:
                raise ArtifactIntegrityError(
                    f"artifact {digest[:12]} file {rel!r} is corrupt: expected sha256 {expected}, "
                    f"found {actual}; re-register the model",
                    digest=digest,
                    file=rel,
                    expected=expected,
                    actual=actual,
                )
        # Guards against an edited manifest: the digest must follow from the files themselves.
        if _manifest_digest(manifest) != digest:
            raise ArtifactIntegrityError(
                f"artifact {digest[:12]} manifest does not match its digest", digest=digest, file=MANIFEST
            )
        return self.content_path(digest)

    def content_path(self, digest: str) -> Path:
        """Path of the stored content, without verifying it.

        Raises:
            ArtifactIntegrityError: The artifact is missing.
        """
        manifest = self._manifest(digest)
        content = self.location(digest) / CONTENT
        return content / str(manifest["files"][0]["path"]) if manifest["kind"] == "file" else content

    def remove(self, digest: str) -> bool:
        """Delete a stored artifact; False if it was not stored."""
        base = self.location(digest)
        if not base.exists():
            return False
        # Rename first so a reader never sees a half-deleted artifact under its digest.
        doomed = base.with_name(f".deleting-{digest}-{os.getpid()}")
        os.replace(base, doomed)
        shutil.rmtree(doomed, ignore_errors=True)
        return True

    def put_archive(self, archive: str | Path) -> str:
        """Extract a ``.tar.gz``/``.tgz``/``.tar``/``.zip`` archive safely and store its content.

        An archive holding a single top-level directory stores that directory's content.
        """
        workdir = Path(tempfile.mkdtemp(prefix=".extract-", dir=self.root))
        try:
            with _held(workdir):
                root = extract_archive(archive, workdir / "x")
                children = list(root.iterdir())
                if len(children) == 1 and children[0].is_dir():
                    root = children[0]
                return self.put(root)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def _manifest(self, digest: str) -> dict[str, Any]:
        path = self.location(digest) / MANIFEST
        try:
            manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ArtifactIntegrityError(
                f"artifact {digest} is missing from {self.root}; re-register the model", digest=digest
            ) from exc
        except (OSError, ValueError) as exc:
            raise ArtifactIntegrityError(
                f"artifact {digest[:12]} has an unreadable manifest: {exc}", digest=digest, file=MANIFEST
            ) from exc
        return manifest


@contextmanager
def _held(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (see ``ArtifactStore.remove_abandoned``) while the block runs."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        # Blocks only while another store decides whether this brand-new folder is abandoned. Where
        # folders cannot be locked, remove_abandoned goes by the folder's age instead.
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock, also when the folder was renamed into place meanwhile


def _abandoned(folder: Path) -> bool:
    """Whether no live writer holds ``folder`` and it is old enough to have been locked."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return False  # gone meanwhile (its writer finished), or not a folder we made
    try:
        age = time.time() - os.fstat(fd).st_mtime
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # a live writer holds it
        except OSError:
            return age > UNLOCKABLE_ABANDONED_AFTER_S
        return age > ABANDONED_AFTER_S
    finally:
        os.close(fd)


def sha256_file(path: str | Path) -> str:
    """The hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _entry(path: str, sha: str, size: int) -> dict[str, Any]:
    return {"path": path, "sha256": sha, "size": size}


def _manifest_digest(manifest: dict[str, Any]) -> str:
    files = manifest["files"]
    if manifest["kind"] == "file":
        return str(files[0]["sha256"])
    lines = "".join(f"{e['sha256']}  {e['path']}\n" for e in sorted(files, key=lambda e: str(e["path"])))
    return hashlib.sha256((_DIR_HASH_PREFIX + lines).encode("utf-8")).hexdigest()


def _relative_files(directory: Path) -> list[str]:
    found: list[str] = []
    for current, dirnames, filenames in os.walk(directory):
        here = Path(current)
        for name in dirnames:
            if (here / name).is_symlink():
                raise InvalidArgumentError(
                    f"{str(here / name)!r} is a symlinked directory; artifacts may not contain one"
                )
        found.extend((here / name).relative_to(directory).as_posix() for name in filenames)
    return sorted(found)


def _copy_tree(source: Path, target: Path) -> dict[str, Any]:
    files = []
    for rel in _relative_files(source):
        destination = target / rel
        destination.parent.mkdir(parents=True, exist_ok=True)
        sha, size = _copy_and_hash(source / rel, destination)  # follows file symlinks (HF caches)
        files.append(_entry(rel, sha, size))
    target.mkdir(exist_ok=True)  # an empty directory is still a valid artifact
    manifest: dict[str, Any] = {"kind": "directory", "files": files}
    manifest["digest"] = _manifest_digest(manifest)
    return manifest


def _copy_and_hash(source: Path, destination: Path) -> tuple[str, int]:
    # Hash the bytes as they are written, so the digest describes exactly what is stored.
    digest = hashlib.sha256()
    size = 0
    with open(source, "rb") as src, open(destination, "wb") as dst:
        while chunk := src.read(_CHUNK):
            digest.update(chunk)
            dst.write(chunk)
            size += len(chunk)
        dst.flush()
        os.fsync(dst.fileno())
    return digest.hexdigest(), size


def _write_json(path: Path, value: Any) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(value, handle, indent=1, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    # Makes a rename durable; some platforms cannot open directories, which is fine to skip.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def extract_archive(archive: str | Path, destination: str | Path) -> Path:
    """Extract a ``.tar.gz``/``.tgz``/``.tar``/``.zip`` archive, refusing entries that escape it.

    Returns:
        ``destination``, created if needed.

    Raises:
        InvalidArgumentError: Unknown archive type, or an entry with an absolute path, ``..``, or
            (for tar) a link or device that tarfile's ``data`` filter refuses.
        ArtifactIntegrityError: The archive is corrupt.
    """
    source, target = Path(archive), Path(destination)
    name = source.name.lower()
    target.mkdir(parents=True, exist_ok=True)
    try:
        if name.endswith((".tar.gz", ".tgz", ".tar")):
            with tarfile.open(source) as tar:
                # "data" refuses absolute paths, "..", links leaving the target and device files.
                tar.extractall(target, filter="data")
        elif name.endswith(".zip"):
            with zipfile.ZipFile(source) as zf:
                for member in zf.namelist():
                    parts = PurePosixPath(member.replace("\\", "/")).parts
                    if member.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
                        raise InvalidArgumentError(f"zip entry {member!r} escapes the extraction directory")
                zf.extractall(target)
        else:
            raise InvalidArgumentError(f"cannot extract {source.name!r}; supported archives: .tar.gz, .tgz, .tar, .zip")
    except tarfile.FilterError as exc:
        raise InvalidArgumentError(f"archive {source.name!r} has an unsafe entry: {exc}") from exc
    except (tarfile.TarError, zipfile.BadZipFile, EOFError) as exc:
        raise ArtifactIntegrityError(f"archive {source.name!r} is corrupt: {exc}", file=source.name) from exc
    return target


def download(
    url: str,
    dest_dir: str | Path,
    *,
    sha256: str | None = None,
    resume: bool = True,
    timeout: float = 60.0,
    filename: str | None = None,
) -> Path:
    """Download ``url`` into ``dest_dir``, resuming a partial ``<name>.part`` with an HTTP Range request.

    Args:
        url: ``http://`` or ``https://`` URL.
        dest_dir: Directory for the file (created if needed).
        sha256: Expected hex digest; the file is checked before it is renamed into place.
        resume: Continue a partial download instead of starting over.
        timeout: Socket timeout in seconds for connecting and for each read.
        filename: Name of the file; defaults to the last segment of the URL path.

    Returns:
        The path of the complete file.

    Raises:
        InvalidArgumentError: Unsupported URL scheme or a bad file name.
        DownloadError: The server or network failed; the partial file is kept for resuming.
        ArtifactIntegrityError: The sha256 does not match; the partial file is removed.
    """
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("http", "https"):
        raise InvalidArgumentError(f"cannot download {url!r}: only http and https URLs are supported")
    name = filename or urllib.parse.unquote(PurePosixPath(parsed.path).name)
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        raise InvalidArgumentError(f"cannot derive a file name from {url!r}; pass filename=")
    expected = sha256.lower() if sha256 else None
    if expected is not None and not _DIGEST.match(expected):
        raise InvalidArgumentError(f"{sha256!r} is not a sha256 hex digest")
    directory = Path(dest_dir)
    directory.mkdir(parents=True, exist_ok=True)
    final, part = directory / name, directory / f"{name}.part"
    if expected is not None and final.is_file() and sha256_file(final) == expected:
        return final  # already downloaded and verified
    if not resume:
        part.unlink(missing_ok=True)
    try:
        _fetch(url, part, timeout)
    except urllib.error.HTTPError as exc:
        if exc.code != 416:
            raise DownloadError(f"download of {url} failed: HTTP {exc.code} {exc.reason}", url=url) from exc
        # 416: our partial file is not a prefix the server can continue; start over once.
        part.unlink(missing_ok=True)
        try:
            _fetch(url, part, timeout)
        except (urllib.error.URLError, http.client.HTTPException, OSError) as retry_exc:
            raise DownloadError(f"download of {url} failed: {retry_exc}", url=url) from retry_exc
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        raise DownloadError(f"download of {url} failed: {exc}", url=url) from exc
    if expected is not None:
        actual = sha256_file(part)
        if actual != expected:
            part.unlink(missing_ok=True)
            raise ArtifactIntegrityError(
                f"download of {url} is corrupt: expected sha256 {expected}, got {actual}",
                url=url,
                file=name,
                expected=expected,
                actual=actual,
            )
    os.replace(part, final)
    return final


def _fetch(url: str, part: Path, timeout: float) -> None:
    offset = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url)
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        status = response.status
        content_range = response.headers.get("Content-Range", "")
        # Append only when the server really continues at our offset; a 200 (Range ignored) or a
        # different start means the body is the whole file, so start over.
        append = offset > 0 and status == 206 and content_range.startswith(f"bytes {offset}-")
        with open(part, "ab" if append else "wb") as handle:
            while chunk := response.read(_CHUNK):
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        expected_length = response.headers.get("Content-Length")
    if expected_length is not None and expected_length.isdigit():
        written = part.stat().st_size - (offset if append else 0)
        if written != int(expected_length):
            raise DownloadError(f"download of {url} ended early: got {written} of {expected_length} bytes", url=url)
