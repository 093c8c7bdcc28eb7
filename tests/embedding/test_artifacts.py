"""Content-addressed artifacts: storing, verifying, safe extraction and resumable downloads."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from rag_factory.errors import ArtifactIntegrityError, DownloadError, InvalidArgumentError
from rag_factory.models.embedding.artifacts import ArtifactStore, download, extract_archive, sha256_file

PAYLOAD = bytes(range(256)) * 400  # 100 KiB, several read chunks on the server side
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(tmp_path / "artifacts")


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "model"
    (directory / "1_Pooling").mkdir(parents=True)
    (directory / "config.json").write_text('{"dim": 8}')
    (directory / "model.safetensors").write_bytes(b"\x00\x01" * 64)
    (directory / "1_Pooling" / "config.json").write_text('{"mode": "mean"}')
    return directory


def flip_byte(path: Path, index: int = 0) -> None:
    data = bytearray(path.read_bytes())
    data[index] ^= 0xFF
    path.write_bytes(bytes(data))


# -- the store -------------------------------------------------------------------------------------


def test_file_digest_is_its_sha256(store: ArtifactStore, tmp_path: Path) -> None:
    file = tmp_path / "model.onnx"
    file.write_bytes(b"onnx bytes")
    digest = store.put(file)
    assert digest == hashlib.sha256(b"onnx bytes").hexdigest()
    assert store.verify(digest).read_bytes() == b"onnx bytes"
    assert store.verify(digest).name == "model.onnx"


def test_directory_round_trips_with_manifest(store: ArtifactStore, model_dir: Path) -> None:
    digest = store.put(model_dir)
    stored = store.verify(digest)
    assert (stored / "1_Pooling" / "config.json").read_text() == '{"mode": "mean"}'
    assert (store.location(digest) / "manifest.json").is_file()


def test_same_content_is_stored_once(store: ArtifactStore, model_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    copy.mkdir()
    for file in model_dir.rglob("*"):
        if file.is_file():
            target = copy / file.relative_to(model_dir)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(file.read_bytes())
    assert store.put(model_dir) == store.put(copy)
    assert len([p for p in store.root.iterdir() if not p.name.startswith(".")]) == 1


def test_different_content_gets_a_different_digest(store: ArtifactStore, model_dir: Path) -> None:
    first = store.put(model_dir)
    (model_dir / "config.json").write_text('{"dim": 9}')
    assert store.put(model_dir) != first


def test_modified_byte_names_file_and_both_hashes(store: ArtifactStore, model_dir: Path) -> None:
    digest = store.put(model_dir)
    target = store.verify(digest) / "model.safetensors"
    expected = sha256_file(target)
    flip_byte(target, 5)
    with pytest.raises(ArtifactIntegrityError, match="model.safetensors") as info:
        store.verify(digest)
    assert expected in info.value.message and sha256_file(target) in info.value.message


@pytest.mark.parametrize("change", ["delete", "add"], ids=["missing-file", "unexpected-file"])
def test_changed_file_set_is_detected(store: ArtifactStore, model_dir: Path, change: str) -> None:
    digest = store.put(model_dir)
    stored = store.verify(digest)
    if change == "delete":
        (stored / "config.json").unlink()
    else:
        (stored / "extra.bin").write_bytes(b"x")
    with pytest.raises(ArtifactIntegrityError, match="config.json" if change == "delete" else "extra.bin"):
        store.verify(digest)


def test_missing_artifact_raises_integrity_error(store: ArtifactStore) -> None:
    with pytest.raises(ArtifactIntegrityError, match="missing"):
        store.verify("0" * 64)


def test_bad_digest_is_invalid_argument(store: ArtifactStore) -> None:
    with pytest.raises(InvalidArgumentError):
        store.verify("../etc")


def test_putting_again_repairs_a_corrupt_copy(store: ArtifactStore, model_dir: Path) -> None:
    digest = store.put(model_dir)
    flip_byte(store.verify(digest) / "config.json")
    assert store.put(model_dir) == digest
    store.verify(digest)


# -- archives --------------------------------------------------------------------------------------


def test_tar_gz_of_model_directory_is_imported(store: ArtifactStore, model_dir: Path, tmp_path: Path) -> None:
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(model_dir, arcname="model")
    assert store.put_archive(archive) == store.put(model_dir)


def test_zip_of_model_directory_is_imported(store: ArtifactStore, model_dir: Path, tmp_path: Path) -> None:
    archive = tmp_path / "model.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for file in sorted(model_dir.rglob("*")):
            if file.is_file():
                zf.write(file, file.relative_to(model_dir).as_posix())
    assert store.put_archive(archive) == store.put(model_dir)


@pytest.mark.parametrize("name", ["../evil.txt", "/abs/evil.txt", "ok/../../evil.txt"], ids=str)
def test_zip_entry_escaping_target_is_refused(tmp_path: Path, name: str) -> None:
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(name, "pwned")
    with pytest.raises(InvalidArgumentError, match="escapes"):
        extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()


def test_tar_entry_escaping_target_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "bad.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("../evil.txt")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"pwned"))
    with pytest.raises(InvalidArgumentError, match="unsafe"):
        extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()


def test_unknown_archive_type_is_refused(tmp_path: Path) -> None:
    (tmp_path / "model.rar").write_bytes(b"x")
    with pytest.raises(InvalidArgumentError, match=".tar.gz"):
        extract_archive(tmp_path / "model.rar", tmp_path / "out")


# -- downloads -------------------------------------------------------------------------------------
# A real HTTP server on 127.0.0.1 stands in for the remote artifact server (object store, model
# hub) that this machine cannot reach; it speaks the same Range protocol.


@dataclass
class FakeRemote:
    url: str
    range_headers: list[str | None] = field(default_factory=list)
    honour_range: bool = True


@pytest.fixture
def remote() -> Iterator[FakeRemote]:
    state = FakeRemote(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if self.path != "/model.bin":
                self.send_error(404)
                return
            header = self.headers.get("Range")
            state.range_headers.append(header)
            start = 0
            if header and state.honour_range:
                start = int(header.removeprefix("bytes=").split("-")[0])
                if start >= len(PAYLOAD):
                    self.send_error(416)
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD) - start))
            self.end_headers()
            self.wfile.write(PAYLOAD[start:])

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep test output quiet

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def test_download_verifies_and_places_file(remote: FakeRemote, tmp_path: Path) -> None:
    path = download(f"{remote.url}/model.bin", tmp_path, sha256=PAYLOAD_SHA)
    assert path == tmp_path / "model.bin" and path.read_bytes() == PAYLOAD
    assert not (tmp_path / "model.bin.part").exists()


def test_download_resumes_partial_file_with_range(remote: FakeRemote, tmp_path: Path) -> None:
    (tmp_path / "model.bin.part").write_bytes(PAYLOAD[:30_000])
    path = download(f"{remote.url}/model.bin", tmp_path, sha256=PAYLOAD_SHA)
    assert remote.range_headers == ["bytes=30000-"]
    assert path.read_bytes() == PAYLOAD


def test_download_restarts_when_server_ignores_range(remote: FakeRemote, tmp_path: Path) -> None:
    remote.honour_range = False
    (tmp_path / "model.bin.part").write_bytes(PAYLOAD[:30_000])
    path = download(f"{remote.url}/model.bin", tmp_path, sha256=PAYLOAD_SHA)
    assert path.read_bytes() == PAYLOAD


def test_download_restarts_when_partial_is_too_long(remote: FakeRemote, tmp_path: Path) -> None:
    (tmp_path / "model.bin.part").write_bytes(PAYLOAD + b"junk")
    path = download(f"{remote.url}/model.bin", tmp_path, sha256=PAYLOAD_SHA)
    assert path.read_bytes() == PAYLOAD


def test_download_sha_mismatch_raises_and_removes_partial(remote: FakeRemote, tmp_path: Path) -> None:
    with pytest.raises(ArtifactIntegrityError, match=PAYLOAD_SHA):
        download(f"{remote.url}/model.bin", tmp_path, sha256="ab" * 32)
    assert not (tmp_path / "model.bin.part").exists() and not (tmp_path / "model.bin").exists()


def test_download_http_error_is_download_error(remote: FakeRemote, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="404") as info:
        download(f"{remote.url}/missing.bin", tmp_path)
    assert info.value.__cause__ is not None


def test_download_unreachable_server_is_download_error(tmp_path: Path) -> None:
    with pytest.raises(DownloadError):
        download("http://127.0.0.1:9/model.bin", tmp_path, timeout=2)


def test_download_refuses_other_schemes(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="http"):
        download("ftp://example.com/model.bin", tmp_path)


def test_corrupt_downloaded_archive_is_refused(remote: FakeRemote, store: ArtifactStore, tmp_path: Path) -> None:
    # The payload is not a real archive: importing it must fail cleanly, not half-extract.
    path = download(f"{remote.url}/model.bin", tmp_path / "dl")
    renamed = path.rename(path.with_name("model.tar.gz"))
    with pytest.raises(ArtifactIntegrityError, match="corrupt"):
        store.put_archive(renamed)


# -- issue 18, item 15: folders of writers that died do not pile up -----------------------------------


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def _blocked_writer(root: Path, source: Path) -> subprocess.Popen[bytes]:
    """Another process storing ``source``; its copy blocks on the FIFO inside, like a writer mid-copy."""
    code = "import sys; from rag_factory.models.embedding.artifacts import ArtifactStore as S; S(sys.argv[1]).put(sys.argv[2])"
    return subprocess.Popen([sys.executable, "-c", code, str(root), str(source)])


def _wait_for_staging(root: Path, writer: subprocess.Popen[bytes]) -> Path:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and writer.poll() is None:
        found = list((root / "sha256").glob(".staging-*/content"))
        if found:
            return found[0].parent
        time.sleep(0.05)
    raise AssertionError("the writer never started staging")


def test_a_writer_killed_mid_copy_leaves_nothing_once_the_store_is_opened_again(tmp_path: Path) -> None:
    """Item 15: each ``kill -9`` during a registration left a ``.staging-*`` copy behind, forever."""
    source = tmp_path / "model"
    source.mkdir()
    (source / "a.bin").write_bytes(b"weights")
    os.mkfifo(source / "b.bin")  # nobody writes to it: the copy blocks here, staging folder locked
    root = tmp_path / "artifacts"
    writer = _blocked_writer(root, source)
    try:
        staging = _wait_for_staging(root, writer)
        _age(staging, 3600)

        assert ArtifactStore(root).remove_abandoned() == []  # a live writer holds it, however old
        assert staging.exists()
    finally:
        writer.kill()  # SIGKILL: no cleanup runs in the writer
        writer.wait()

    ArtifactStore(root)  # opening a store (a registry) removes what the dead writer left

    assert not staging.exists()
    assert [p.name for p in (root / "sha256").iterdir()] == []


def test_only_abandoned_work_folders_are_removed(store: ArtifactStore, model_dir: Path) -> None:
    digest = store.put(model_dir)
    young = store.root / ".staging-young"  # just created: its writer may not have locked it yet
    young.mkdir()
    old = store.root / ".extract-old"
    old.mkdir()
    _age(old, 3600)
    deleting = store.root / f".deleting-{'0' * 64}-1"  # a remove() that died between rename and delete
    deleting.mkdir()
    corrupt = store.root / f".corrupt-{digest}-1"  # kept aside on purpose, for inspection
    corrupt.mkdir()
    _age(corrupt, 3600)

    removed = store.remove_abandoned()

    assert sorted(removed) == sorted([old.name, deleting.name])
    assert not old.exists() and not deleting.exists()
    assert young.exists() and corrupt.exists() and store.exists(digest)
