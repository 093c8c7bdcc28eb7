"""Start-up of ``rag-factory serve``: checks before anything binds, and the default model chosen and loaded.

Every mistake an operator can make at start (an address that is not HOST:PORT, a port already taken, a
missing TLS file, a registry folder that cannot be used, a default model that does not resolve or load)
raises a ``RagFactoryError`` here, which the CLI prints as one line, ``error (REASON): message``, before
exiting non-zero. Nothing is bound before the default model has loaded, so a process that prints
"listening on" can serve, and one that cannot exits at once: Kubernetes shows the line in the pod's logs and
restarts it (CrashLoopBackOff) instead of keeping a pod that never becomes ready (docs/serving.md).
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rag_factory.errors import (
    InvalidConfigError,
    ModelLoadError,
    ModelNotFoundError,
    ModelPathNotFoundError,
    PermissionDeniedError,
    RagFactoryError,
    UnavailableError,
    describe_choices,
)
from rag_factory.models.embedding.hub import DEFAULT_BASE_MODEL
from rag_factory.models.embedding.records import ModelRecord
from rag_factory.models.embedding.registry import ModelRegistry
from rag_factory.serving.engine import EmbeddingEngine
from sidecar.settings import SidecarSettings, TLSSettings

logger = logging.getLogger(__name__)

_MAX_MESSAGE_CHARS = 500
# Each address setting's default port, quoted when a value is not HOST:PORT.
_EXAMPLES = {"address": "127.0.0.1:50051", "http_address": "127.0.0.1:8080", "metrics_address": "127.0.0.1:9464"}


def one_line(exc: BaseException) -> str:
    """``exc`` as one short line: library messages can span lines, and the operator reads one."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= _MAX_MESSAGE_CHARS else text[:_MAX_MESSAGE_CHARS] + "…"


# -- checks before anything binds ------------------------------------------------------------------------


def preflight(settings: SidecarSettings) -> None:
    """Check the addresses, TLS files and registry folder before anything is opened or bound.

    Raises:
        InvalidConfigError: An address is not HOST:PORT, its host does not resolve, two share a port, or
            a TLS file is missing, unreadable, not PEM, or set without its pair, or the key is encrypted.
        UnavailableError: A port is taken by another process, or the address is not one of this machine's.
        PermissionDeniedError: The registry folder (or where it would be created) cannot be written, or
            a port below 1024 needs privileges.
    """
    addresses = {"address": settings.address}
    for key, value in (("http_address", settings.http_address), ("metrics_address", settings.metrics_address)):
        if value:  # None: that server is off
            addresses[key] = value
    parsed = {key: parse_address(value, key) for key, value in addresses.items()}
    seen: dict[int, str] = {}
    for key, (_, port) in parsed.items():
        if port != 0 and port in seen:
            raise InvalidConfigError(f"{key} and {seen[port]} both use port {port}; give each its own port")
        seen[port] = key
    for key, (host, port) in parsed.items():
        check_port_free(host, port, key)
    check_tls_files(settings.tls)
    check_registry_folder(Path(settings.embedding.registry_path).expanduser())


def parse_address(value: str, key: str = "address") -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[::1]:PORT`` for IPv6) into the host and the port.

    Raises:
        InvalidConfigError: It is not HOST:PORT with a port from 0 to 65535.
    """
    host, colon, port_text = value.strip().rpartition(":")
    example = _EXAMPLES.get(key, "127.0.0.1:50051")
    if not colon or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise InvalidConfigError(
            f"{key} {value[:100]!r} is not HOST:PORT (say {example}; port 0 picks a free port)", key=key
        )
    return host.removeprefix("[").removesuffix("]"), int(port_text)


def check_port_free(host: str, port: int, key: str = "address") -> None:
    """Bind ``host:port`` for an instant, as the server will, to report a taken port in words.

    Port 0 is not checked: the server picks a free one.

    Raises:
        InvalidConfigError: The host does not resolve.
        UnavailableError: The port is in use, or the host is not an address of this machine.
        PermissionDeniedError: The port needs privileges.
    """
    try:
        family, kind, proto, _, sockaddr = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise InvalidConfigError(f"{key}: host {host[:100]!r} does not resolve ({one_line(exc)})", key=key) from exc
    if port == 0:
        return
    with socket.socket(family, kind, proto) as probe:
        # As servers do: a port whose last connections are still in TIME_WAIT counts as free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(sockaddr)
        except OSError as exc:
            where = f"{host}:{port}"
            if exc.errno == errno.EADDRINUSE:
                raise UnavailableError(
                    f"{key} {where} is already in use by another process; stop it or choose another port", key=key
                ) from exc
            if exc.errno == errno.EACCES:
                raise PermissionDeniedError(
                    f"{key} {where}: port {port} needs privileges; choose a port above 1023", key=key
                ) from exc
            raise UnavailableError(f"{key} {where} cannot be bound: {one_line(exc)}", key=key) from exc


def check_tls_files(tls: TLSSettings) -> None:
    """Both TLS files or neither; each one a readable PEM file.

    Raises:
        InvalidConfigError: One is set without the other; a file is missing, unreadable or not PEM; or the
            key is encrypted (OpenSSL would ask for its pass phrase on the terminal, and the start would hang).
    """
    files = {"tls.cert_file": tls.cert_file, "tls.key_file": tls.key_file}
    given = [key for key, value in files.items() if value]
    if len(given) == 1:
        missing = next(key for key in files if key not in given)
        raise InvalidConfigError(f"{given[0]} is set but {missing} is not; TLS needs both (or neither)")
    for key, value in files.items():
        if not value:
            continue
        path = Path(value).expanduser()
        try:
            # exists() itself raises where a parent cannot be searched or the name is too long.
            if not path.exists():
                raise InvalidConfigError(f"{key} {str(path)[:200]!r} does not exist", key=key)
            text = path.read_bytes()
        except OSError as exc:
            raise InvalidConfigError(f"{key} {str(path)[:200]!r} cannot be read: {one_line(exc)}", key=key) from exc
        if b"-----BEGIN " not in text:
            raise InvalidConfigError(f"{key} {str(path)!r} is not a PEM file (no '-----BEGIN' line)", key=key)
        if key == "tls.key_file" and _is_encrypted_key(text):
            # OpenSSL (under uvicorn and gRPC) would stop the start to ask for the pass phrase on the terminal.
            raise InvalidConfigError(
                f"{key} {str(path)!r} is encrypted with a pass phrase, which the server cannot be given; use an "
                "unencrypted key (openssl pkey -in KEY -out PLAIN_KEY) kept readable only by the server's user",
                key=key,
            )


def _is_encrypted_key(pem: bytes) -> bool:
    # PKCS#8 ("BEGIN ENCRYPTED PRIVATE KEY") and the traditional form ("Proc-Type: 4,ENCRYPTED" under
    # "BEGIN RSA PRIVATE KEY") both say it in a header line, before the base64 body.
    return any(line.startswith((b"-----BEGIN ", b"Proc-Type:")) and b"ENCRYPTED" in line for line in pem.splitlines())


def check_registry_folder(path: Path) -> None:
    """The registry folder must be a writable directory, or creatable where it does not exist yet.

    Raises:
        InvalidConfigError: It (or a parent) is a file, or the path cannot be looked at (a name too long).
        PermissionDeniedError: It cannot be read and written, or created, or a parent cannot be searched.
    """
    key = "models.embedding.registry_path"
    existing = path
    try:
        # exists() and is_dir() raise where a parent cannot be searched or the name is too long.
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        is_dir = existing.is_dir()
    except PermissionError as exc:
        raise PermissionDeniedError(f"{key} {str(path)[:200]!r} cannot be used: {one_line(exc)}", key=key) from exc
    except OSError as exc:
        raise InvalidConfigError(f"{key} {str(path)[:200]!r} cannot be used: {one_line(exc)}", key=key) from exc
    if not is_dir:
        raise InvalidConfigError(f"{key} {str(path)!r}: {str(existing)!r} is a file, not a folder", key=key)
    if not os.access(existing, os.R_OK | os.W_OK | os.X_OK):
        verb = "read and written" if existing == path else "created"
        raise PermissionDeniedError(f"{key} {str(path)!r} cannot be {verb} by this user", key=key)


@contextmanager
def startup_step(what: str) -> Iterator[None]:
    """Report a failure of ``what`` (opening the registry, binding ports) as one ``RagFactoryError``.

    Raises:
        PermissionDeniedError: The step met a permission error.
        UnavailableError: The step met any other operating-system, SQLite or gRPC error.
    """
    try:
        yield
    except RagFactoryError:
        raise
    except PermissionError as exc:
        raise PermissionDeniedError(f"{what}: {one_line(exc)}") from exc
    except (OSError, RuntimeError, sqlite3.Error) as exc:  # grpc reports a failed bind as RuntimeError
        raise UnavailableError(f"{what}: {one_line(exc)}") from exc


# -- the default model -----------------------------------------------------------------------------------


def choose_default_model(settings: SidecarSettings, model: str | None = None) -> SidecarSettings:
    """The settings with the default model the server will serve, registering it first where needed.

    ``model`` (``serve --model``) is a registry reference (id, name@version, name@alias, name), else a
    local model directory or a hub id with a local copy, registered first (once: its files are
    recognised on the next start). Without it, ``models.embedding.default_model_id`` must resolve,
    except the untouched default ``minilm`` in a new or empty registry: there the bundled model
    (all-MiniLM-L6-v2) is registered as ``minilm@1.0.0`` with its lineage, so fine-tunes descend from it.
    A registry that holds models is someone's: nothing is registered into it unasked, and the bundled
    model is not served to clients that name no model.

    Raises:
        ModelNotFoundError: ``model`` or a configured default resolves to nothing, or the untouched
            default does not resolve in a registry that holds other models.
        HubModelNotAvailableError: ``model`` is a hub id with no local copy.
        ModelDeprecatedError: The default is deprecated.
        ModelLoadError: A directory is not a sentence-transformers model.
        AlreadyExistsError: Every name a new base registration could take is taken.
        PermissionDeniedError, UnavailableError: The registry cannot be opened or written (permissions,
            a full disk, a damaged database).
    """
    embedding = settings.embedding
    # One step: opening, resolving and registering (which copies the model: a full disk shows here) all
    # end in one line, not a traceback.
    with startup_step(f"cannot use the registry at {embedding.registry_path!r}"):
        registry = ModelRegistry(Path(embedding.registry_path).expanduser())
        try:
            reference = _reference_to_serve(registry, model) if model else _configured_default(registry, settings)
        finally:
            registry.close()
    if reference == embedding.default_model_id:
        return settings
    chosen = embedding.model_copy(update={"default_model_id": reference})
    return settings.model_copy(update={"models": settings.models.model_copy(update={"embedding": chosen})})


def _register_base(registry: ModelRegistry, base: str) -> ModelRecord:
    # Imported here: a registered default (the usual start) needs none of the training package.
    from rag_factory.models.training.registration import ensure_base_registered

    record = ensure_base_registered(registry, base, created_by="rag-factory serve")
    logger.info("default model %s (%s), base_model %s", record.ref, record.model_id, record.metadata.base_model)
    return record


def _reference_to_serve(registry: ModelRegistry, model: str) -> str:
    try:
        registry.resolve(model)
        return model  # as given: "name@production" keeps following its alias
    except ModelNotFoundError as not_registered:
        unregistered = not_registered
    try:
        return _register_base(registry, model).model_id
    except ModelPathNotFoundError as exc:
        raise ModelNotFoundError(
            f"--model: {unregistered.message}; nor is {model[:200]!r} a local model directory or a hub id "
            "with a local copy",
            model=model[:200],
        ) from exc


def _configured_default(registry: ModelRegistry, settings: SidecarSettings) -> str:
    embedding = settings.embedding
    reference = embedding.default_model_id
    try:
        registry.resolve(reference)
        return reference
    except ModelNotFoundError as exc:
        if "default_model_id" in embedding.model_fields_set:
            # Only the untouched default is registered for the user; a configured one is a typo or a
            # missing registration, and serving something else instead would hide it.
            raise ModelNotFoundError(
                f"models.embedding.default_model_id {reference[:200]!r}: {exc.message} "
                f"(registry {str(registry.path)!r}); "
                "register it, or serve a model with --model REF|DIR|HUB_ID",
                model=reference[:200],
            ) from exc
    records = registry.list_records()
    if records:
        try:  # another process starting at the same moment may have just registered it
            registry.resolve(reference)
            return reference
        except ModelNotFoundError:
            pass
        # Someone's registry (RAG_FACTORY_REGISTRY_PATH=/prod/registry, say): registering the bundled model
        # into it, and serving it to every client that names no model, is not a default to assume.
        raise ModelNotFoundError(
            f"the registry {str(registry.path)!r} holds models but not {reference!r}, the default of "
            "models.embedding.default_model_id, and the bundled model is registered only into a new or empty "
            "registry: set models.embedding.default_model_id, or serve one with --model REF "
            f"(registered: {describe_choices((r.ref for r in records), limit=5)})",
            model=reference,
        )
    record = _register_base(registry, DEFAULT_BASE_MODEL)
    # Normally minilm@1.0.0; should another process have taken the name meanwhile with other files, the
    # base has a name of its own (registration._base_name): serve that exact registration.
    return reference if record.metadata.model_name == reference else record.model_id


def load_default_model(engine: EmbeddingEngine) -> ModelRecord:
    """Load the default model and embed one text, so that a model which cannot serve stops the start.

    Raises:
        RagFactoryError: The default does not resolve or load, of the class the engine raised, its message
            naming the default (``ModelLoadError`` for a library's own exceptions).
    """
    default = f"the default model {engine.default_model[:200]!r}"
    try:
        record, model = engine.load()
        model.encode(["warm-up"])
    except RagFactoryError as exc:
        # Every class of the tree takes (message, **metadata): the same reason, with the model named.
        raise type(exc)(f"{default} cannot serve: {one_line(exc)}", **exc.metadata) from exc
    except Exception as exc:  # a library's own error while loading: the operator needs the words, not the stack
        raise ModelLoadError(f"{default} cannot load: {type(exc).__name__}: {one_line(exc)}") from exc
    return record
