"""Hypothesis strategies for the request of every RPC of the contract, built from the proto descriptors.

Shared by ``tests/sidecar/test_fuzz_rpcs.py`` (CI) and ``benchmarks/reliability_run.py`` (the long run).
The RPCs are enumerated from the descriptors of ``rag_factory_contract.v1``, so a new RPC is fuzzed without
touching this file. A third of the requests come from a careful client (every field set to a plausible value,
names the server knows, valid ramp plans), so checks deep in the server are reached; the others from a
hostile one: huge strings, NUL and control characters, NaN and infinities, 2^63-1 and the other integer
extremes, unknown enum values, Struct trees with non-finite numbers, out-of-range timestamps, and, on the
wire, invalid UTF-8 and undecodable bytes.

Safety: every field or option that names a file (``*_path``, ``*_dir``, ``corpus``, ...) only ever names a
path inside :class:`Sandbox`, a temporary folder, so no fuzzed request can name a real system path that a
defective server might read, overwrite or delete.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from google.protobuf import descriptor, text_format, timestamp_pb2
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import strategies as st

import rag_factory_contract.v1 as contract
from tests.sidecar.fuzz_sandbox import Sandbox

FieldDescriptor = descriptor.FieldDescriptor


# -- the RPCs --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rpc:
    """One RPC of the contract, with its message classes and streaming shape."""

    service: str  # full service name, e.g. "rag_factory.v1.EmbeddingService"
    name: str
    request: type[Message]
    response: type[Message]
    client_streaming: bool
    server_streaming: bool

    @property
    def path(self) -> str:
        """The gRPC method path, ``/package.Service/Method``."""
        return f"/{self.service}/{self.name}"

    @property
    def id(self) -> str:
        """A short readable id, ``Service.Method``."""
        return f"{self.service.rpartition('.')[2]}.{self.name}"


def contract_rpcs() -> list[Rpc]:
    """Every RPC of every service in ``rag_factory_contract.v1``, in file and declaration order."""
    rpcs = []
    for module_info in sorted(pkgutil.iter_modules(contract.__path__), key=lambda m: m.name):
        if not module_info.name.endswith("_pb2"):
            continue
        module = importlib.import_module(f"{contract.__name__}.{module_info.name}")
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                rpcs.append(
                    Rpc(
                        service=service.full_name,
                        name=method.name,
                        request=GetMessageClass(method.input_type),
                        response=GetMessageClass(method.output_type),
                        client_streaming=method.client_streaming,
                        server_streaming=method.server_streaming,
                    )
                )
    return rpcs


# -- values learnt from the server's answers -------------------------------------------------------


@dataclass
class Known:
    """Names the server has used (models, experiments, jobs, request ids), so requests can hit real objects.

    Lists only grow and a draw picks by index, so a replayed example (Hypothesis shrinking) picks the same
    value. ``protected`` model ids are never offered to destructive RPCs: deleting or deprecating the
    server's default model is an administrator's decision, not a client mistake this fuzz is about.
    """

    values: dict[str, list[str]] = field(default_factory=dict)
    protected: frozenset[str] = frozenset()
    limit: int = 64
    seeded: dict[str, int] = field(default_factory=dict)  # how many values of each kind were given at the start

    def __post_init__(self) -> None:
        self.seeded = {kind: len(values) for kind, values in self.values.items()}

    @classmethod
    def for_test_registry(cls, default_model: str = "minilm-onnx") -> Known:
        """The names of the registry ``tests/conftest.py`` builds (minilm-onnx, -int8, -old, aliases)."""
        return cls(
            values={
                "models": [
                    default_model, "minilm-onnx-int8", "minilm-old", "minilm", "minilm@1.0.0", "minilm@production",
                    "minilm@1.1.0", "minilm@0.9.0", "minilm@candidate",
                ],
                "names": ["minilm", "probe", "fuzz"],
                "aliases": ["production", "candidate", "staging"],
                "experiments": ["fuzz-exp"],
                "jobs": ["fine_tune-000000000000"],
                "requests": ["req-1"],
            },
            protected=frozenset({default_model}),
        )  # fmt: skip

    def add(self, kind: str, value: str) -> None:
        """Remember a value (bounded, short ones only)."""
        known = self.values.setdefault(kind, [])
        if value and len(value) <= 256 and value not in known and len(known) < self.limit:
            known.append(value)

    def pick(self, kind: str, index: int, *, destructive: bool = False) -> str:
        """The ``index``-th known value of ``kind``; past the end, one of the values known from the start.

        Stable while values are learnt (a replayed draw picks the same value) and spread over the seeds.
        """
        known = self.values.get(kind) or [""]
        if destructive:
            known = [value for value in known if value not in self.protected] or ["fuzz-unknown"]
        if index < len(known):
            return known[index]
        return known[index % min(len(known), self.seeded.get(kind, 1))]

    def strategy(self, kind: str, *, destructive: bool = False) -> st.SearchStrategy[str]:
        """Draws a known value of ``kind``, resolved when drawn (so values learnt so far count)."""
        # Small indexes: names the server handed out (learnt after the seeds) are drawn often.
        top = max(3, self.seeded.get(kind, 1) + 2)
        return st.integers(0, top).map(lambda index: self.pick(kind, index, destructive=destructive))

    def harvest(self, message: Message) -> None:
        """Learn the ids in an answer: model, job and request ids, experiment names."""
        for fld, value in message.ListFields():
            if fld.type == FieldDescriptor.TYPE_MESSAGE:
                if message_type(fld).full_name.startswith("google.protobuf.") or is_map(fld):
                    continue
                for item in value if fld.is_repeated else [value]:
                    self.harvest(item)
            elif fld.type == FieldDescriptor.TYPE_STRING and not fld.is_repeated:
                kind = HARVESTED.get(fld.name)
                if message.DESCRIPTOR.name == "Experiment" and fld.name == "name":
                    kind = "experiments"
                if kind:
                    self.add(kind, value)


HARVESTED = {"model_id": "models", "job_id": "jobs", "request_id": "requests", "model_name": "names"}


def message_type(fld: FieldDescriptor) -> descriptor.Descriptor:
    """The message type of a message field."""
    if fld.message_type is None:
        raise TypeError(f"{fld.full_name} is not a message field")
    return fld.message_type


def is_map(fld: FieldDescriptor) -> bool:
    """Whether a field is a map (a repeated field of generated map-entry messages)."""
    return fld.type == FieldDescriptor.TYPE_MESSAGE and bool(message_type(fld).GetOptions().map_entry)


def enum_numbers(fld: FieldDescriptor) -> list[int]:
    """The numbers an enum field's type defines."""
    if fld.enum_type is None:
        raise TypeError(f"{fld.full_name} is not an enum field")
    return [value.number for value in fld.enum_type.values]


# -- scalar values ----------------------------------------------------------------------------------

SPECIAL_STRINGS = (
    "", " ", "\x00", "a\x00b", "\u200b", "\u202eevil", "\x1b[31mred\x1b[0m", "\t\r\n", "\x7f\x01\x02",
    "é", "😀", "\ufffe", "\U0010ffff", "NaN", "-1", "1e400", "%s%n%x", "{}", "null", "' OR 1=1 --",
    "minilm@", "@", "@production", "minilm@1.0.0@x", "minilm:production", "minilm@>=1.0.0",
    "99999999999999999999999.0.0", "1.0.0-" + "a" * 300,
)  # fmt: skip
HUGE_LENGTHS = (20_000, 40_000, 300_000)
PLAUSIBLE_INTS = {"embedding_dim": (384, 384, 768, 7), "max_seq_length": (256, 128, 512), "clicked_rank": (1, 3)}
# Ramp plans of a careful client: rising shares that end at 1.0.
RAMPS = st.lists(st.sampled_from((0.01, 0.05, 0.1, 0.25, 0.5)), max_size=3, unique=True).map(
    lambda s: [*sorted(s), 1.0]
)
NAMES = st.from_regex(r"[a-z][a-z0-9-]{0,11}", fullmatch=True)  # what a careful client names things
VERSIONS = ("2.0.0", "1.5.1", "3.0.0-rc.1", "1.0.0+build.7", "99999999999999999999999.0.0", "1.0", "v1", "1.0.0")
VERSION_RANGES = (">=1.0.0,<2.0.0", "^1.2.0", "~1.0", "*", ">=", "<<1", "^99999999999999999999999.0.0")
SPLITS = ("test", "train", "dev", "../test", "")
STRATEGY_NAMES = ("mnrl", "cached_mnrl", "triplet", "hard_negative", "distillation", "telepathy")

INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}
NAN, INF = float("nan"), float("inf")
FLOAT_EXTREMES = {
    64: (NAN, INF, -INF, 1e308, -1e308, -0.0, 5e-324, 2.0**63),
    32: (NAN, INF, -INF, 3.4e38, -3.4e38, -0.0, 1e-45),
}


def weighted(*choices: tuple[st.SearchStrategy[Any], int]) -> st.SearchStrategy[Any]:
    """A draw from one of the strategies, picked in proportion to its weight (shrinking towards the first).

    ``st.one_of`` picks its branches about evenly, whatever their number, so weights need this.
    """
    pool = [strategy for strategy, weight in choices for _ in range(weight)]
    return st.sampled_from(pool).flatmap(lambda strategy: strategy)


def strings() -> st.SearchStrategy[str]:
    """Any valid (surrogate-free) string: short random text, special characters, or a huge one."""
    huge = st.tuples(st.sampled_from(("x", "é", "\x00", "😀", "a b ")), st.sampled_from(HUGE_LENGTHS)).map(
        lambda pair: pair[0] * (pair[1] // len(pair[0]))
    )
    text = st.text(st.characters(codec="utf-8"), max_size=40)
    return weighted((text, 3), (st.sampled_from(SPECIAL_STRINGS), 2), (huge, 1))


def integers(field_type: int) -> st.SearchStrategy[int]:
    """Integers of a proto integer type, its extremes (2^63-1, 2^32-1, ...) drawn often."""
    low, high = INT_RANGES[field_type]
    candidates = (low, high, -1, 0, 1, 256, 257, 100_000, 2**31 - 1, 2**32 - 1, 2**63 - 1)
    extremes = sorted({value for value in candidates if low <= value <= high})
    return st.one_of(st.sampled_from(extremes), st.integers(low, high))


def floats(width: Literal[32, 64] = 64) -> st.SearchStrategy[float]:
    """Any float of the width, NaN and the infinities included, extremes drawn often."""
    return st.one_of(
        st.sampled_from(FLOAT_EXTREMES[width]), st.floats(width=width), st.sampled_from((0.0, 0.5, 1.0, 2.0))
    )


def json_values(keys: st.SearchStrategy[str], *, hostile: bool = True) -> st.SearchStrategy[Any]:
    """JSON trees as a Struct holds them; hostile numbers include NaN, infinities and 2^63."""
    plausible = st.one_of(st.integers(1, 8), st.floats(0.0, 1.0), st.booleans(), NAMES)
    extremes = st.one_of(st.none(), floats(), st.sampled_from((2**63 - 1, -(2**63), 2**70, 0, -1)), strings())
    scalars = weighted((plausible, 2), (extremes, 1)) if hostile else plausible
    return st.recursive(
        scalars,
        lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=4)),
        max_leaves=10,
    )


def confine_paths(tree: Any, paths: Sequence[str]) -> Any:
    """``tree`` with the value of every path-like key, at any depth, replaced by one of ``paths``.

    The path is chosen from the value it replaces (by checksum), so the same tree is always confined the
    same way and Hypothesis can replay and shrink it.
    """
    if isinstance(tree, dict):
        return {
            key: paths[zlib.crc32(repr(value).encode()) % len(paths)]
            if is_path_like(key)
            else confine_paths(value, paths)
            for key, value in tree.items()
        }
    if isinstance(tree, list):
        return [confine_paths(item, paths) for item in tree]
    return tree


# -- messages --------------------------------------------------------------------------------------

PATH_WORDS = ("path", "dir", "corpus", "file", "folder", "cache", "output", "data")


def is_path_like(name: str) -> bool:
    """Whether a field or option name may name a file (matched generously: a false positive costs nothing)."""
    lowered = name.lower()
    return any(word in lowered for word in PATH_WORDS)


@dataclass
class MessageStrategies:
    """Builds request strategies from descriptors, with semantics for well-known field names.

    Args:
        sandbox: Where path-like fields point.
        known: Names learnt from the server (models, experiments, jobs, request ids).
        option_keys: Option names drawn as keys of each Struct field, by field name (``options``:
            FineTuneConfig fields, ``load_config``: ModelConfig fields), so
            validation deeper than "unknown option" is reached.
    """

    sandbox: Sandbox
    known: Known
    option_keys: Mapping[str, Sequence[str]] = field(default_factory=dict)
    max_depth: int = 3
    careful: bool = False  # only plausible values: the requests a careful client sends

    def paths(self) -> st.SearchStrategy[str]:
        """A sandbox path, or the empty string."""
        return st.sampled_from(("", *self.sandbox.paths))

    def struct_dicts(self, field_name: str) -> st.SearchStrategy[dict[str, Any]]:
        """Struct contents: known option names and random keys, hostile values, sandbox paths for files."""
        names = self.option_keys.get(field_name) or [key for keys in self.option_keys.values() for key in keys]
        known_keys = st.sampled_from(tuple(names) or ("epochs",))
        keys = known_keys if self.careful else st.one_of(known_keys, strings())
        values = json_values(keys, hostile=not self.careful)
        paths = ("", *self.sandbox.paths)
        return st.dictionaries(keys, values, max_size=6).map(lambda tree: confine_paths(tree, paths))

    def string_field(self, fld: FieldDescriptor, rpc_name: str) -> st.SearchStrategy[str]:
        """Plausible strings for one field: sandbox paths for files, known names for references, short names."""
        name = fld.name
        if is_path_like(name):
            return self.paths()
        semantic: dict[str, st.SearchStrategy[str]] = {
            "model_name": self.known.strategy("names"),
            "alias": self.known.strategy("aliases"),
            "job_id": self.known.strategy("jobs"),
            "request_id": self.known.strategy("requests"),
            "version": st.sampled_from(VERSIONS[:4]),
            "version_range": st.sampled_from(VERSION_RANGES),
            "split": st.sampled_from(SPLITS),
            "strategy": st.sampled_from(STRATEGY_NAMES),
            "routing_key": st.sampled_from(("user-1", "user-2")),
            # Experiment names in the A/B service, model names in ListModels.
            "name": st.one_of(self.known.strategy("experiments"), self.known.strategy("names"), NAMES),
        }
        if name == "model_id" and rpc_name.startswith("Register"):
            return NAMES  # a new id
        if name in ("model", "model_a", "model_b", "candidate", "base_model", "target", "model_id"):
            destructive = rpc_name.startswith(("Delete", "Deprecate"))
            return st.one_of(self.known.strategy("models", destructive=destructive), NAMES)
        return semantic.get(name, NAMES)

    def plausible(self, fld: FieldDescriptor, rpc_name: str) -> st.SearchStrategy[Any]:
        """Values a careful client would send, so that requests get past the first check and deeper."""
        if fld.type == FieldDescriptor.TYPE_STRING:
            return self.string_field(fld, rpc_name)
        if fld.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            return st.one_of(st.floats(0.0, 1.0, width=32), st.sampled_from((0.05, 0.5, 1.0, 2.0, 30.0)))
        if fld.type == FieldDescriptor.TYPE_ENUM:
            return st.sampled_from([number for number in enum_numbers(fld) if number] or [0])  # 0: unset
        if fld.type in INT_RANGES:
            return st.one_of(st.integers(0, 400), st.sampled_from(PLAUSIBLE_INTS.get(fld.name, (1,))))
        return self.hostile(fld)

    def hostile(self, fld: FieldDescriptor, rpc_name: str = "") -> st.SearchStrategy[Any]:
        """Values of any kind a field's type allows, extremes and invalid ones drawn often."""
        if fld.type == FieldDescriptor.TYPE_STRING:
            return strings()
        if fld.type == FieldDescriptor.TYPE_BYTES:
            return st.binary(max_size=64)
        if fld.type == FieldDescriptor.TYPE_BOOL:
            return st.booleans()
        if fld.type == FieldDescriptor.TYPE_DOUBLE:
            return floats(64)
        if fld.type == FieldDescriptor.TYPE_FLOAT:
            return floats(32)
        if fld.type == FieldDescriptor.TYPE_ENUM:
            defined = enum_numbers(fld)
            # Open (proto3) enums carry unknown numbers on the wire: a server must refuse them cleanly.
            return st.one_of(st.sampled_from(defined), st.sampled_from((-1, len(defined), 99, 2**31 - 1)))
        return integers(fld.type)

    def scalar(self, fld: FieldDescriptor, rpc_name: str) -> st.SearchStrategy[Any]:
        """Values of one element of a non-message field: plausible, or (unless careful) hostile."""
        if fld.type == FieldDescriptor.TYPE_STRING and is_path_like(fld.name):
            return self.paths()  # never a hostile string: a path field only names sandbox paths
        plausible = self.plausible(fld, rpc_name)
        return plausible if self.careful else weighted((plausible, 2), (self.hostile(fld, rpc_name), 1))

    def field_values(self, fld: FieldDescriptor, rpc_name: str, depth: int) -> st.SearchStrategy[Any]:
        """Values of one field: a scalar, a message, a list (repeated) or a dict (map)."""
        if is_map(fld):
            key_field = message_type(fld).fields_by_name["key"]
            value_field = message_type(fld).fields_by_name["value"]
            return st.dictionaries(
                self.scalar(key_field, rpc_name), self.element(value_field, rpc_name, depth), max_size=4
            )
        element = self.element(fld, rpc_name, depth)
        if not fld.is_repeated:
            return element
        lists = st.lists(element, max_size=4)
        if fld.name == "steps":  # a ramp plan: careful clients send a valid one
            return RAMPS if self.careful else weighted((RAMPS, 1), (lists, 2))
        if fld.type == FieldDescriptor.TYPE_STRING and not self.careful:
            # One over the documented batch limit (256 texts), and an exact-limit batch.
            lists = st.one_of(lists, st.sampled_from((256, 257)).map(lambda n: ["t"] * n))
        return lists

    def element(self, fld: FieldDescriptor, rpc_name: str, depth: int) -> st.SearchStrategy[Any]:
        """One value (not a list) of a field."""
        if fld.type == FieldDescriptor.TYPE_MESSAGE:
            return self.message(message_type(fld), rpc_name, depth + 1, fld.name)
        return self.scalar(fld, rpc_name)

    def message(
        self, desc: descriptor.Descriptor, rpc_name: str, depth: int = 0, field_name: str = ""
    ) -> st.SearchStrategy[Message]:
        """Messages of a type: any subset of fields set, nested messages to ``max_depth``."""
        cls = GetMessageClass(desc)
        if desc.full_name == "google.protobuf.Struct":
            return self.struct_dicts(field_name).map(lambda tree: _struct(cls, tree))
        if desc.full_name == "google.protobuf.Timestamp":
            return self.timestamps()
        if depth >= self.max_depth:
            return st.just(cls())
        values = {fld.name: self.field_values(fld, rpc_name, depth) for fld in desc.fields}
        # A careful client fills in every field; others send any subset.
        dicts = st.fixed_dictionaries(values) if self.careful else st.fixed_dictionaries({}, optional=values)
        return dicts.map(lambda chosen: build_message(cls, chosen))

    def timestamps(self) -> st.SearchStrategy[Message]:
        """Timestamps: recent ones, or (unless careful) out of range or with invalid nanos."""
        recent = st.builds(lambda s: timestamp_pb2.Timestamp(seconds=s), st.integers(1_500_000_000, 2_000_000_000))
        if self.careful:
            return recent
        seconds = st.one_of(st.sampled_from((0, -1, 253402300800, -62135596801, 2**63 - 1, -(2**63))),
                            st.integers(0, 4_000_000_000))  # fmt: skip
        nanos = st.one_of(st.just(0), st.sampled_from((-1, 10**9, 2**31 - 1)), st.integers(0, 10**9 - 1))
        odd = st.builds(lambda s, n: timestamp_pb2.Timestamp(seconds=s, nanos=n), seconds, nanos)
        return st.one_of(recent, odd)

    def request(self, rpc: Rpc) -> st.SearchStrategy[list[Message]]:
        """The request messages of one call (one, or 0..4 for a client stream), from careful or hostile clients."""
        careful = dataclasses.replace(self, careful=True)
        descriptor_ = rpc.request.DESCRIPTOR
        one = weighted((careful.message(descriptor_, rpc.name), 1), (self.message(descriptor_, rpc.name), 2))  # type: ignore[arg-type]
        return st.lists(one, max_size=4) if rpc.client_streaming else one.map(lambda message: [message])


def _struct(cls: type[Message], tree: dict[str, Any]) -> Message:
    message = cls()
    message.update(tree)  # type: ignore[attr-defined]
    return message


def build_message(cls: type[Message], values: dict[str, Any]) -> Message:
    """A message of ``cls`` with the given field values (lists for repeated fields, dicts for maps)."""
    message = cls()
    fields: dict[str, FieldDescriptor] = dict(cls.DESCRIPTOR.fields_by_name)  # type: ignore[arg-type]
    for name, value in values.items():
        fld = fields[name]
        target = getattr(message, name)
        if is_map(fld):
            if message_type(fld).fields_by_name["value"].type == FieldDescriptor.TYPE_MESSAGE:
                for key, item in value.items():
                    target[key].CopyFrom(item)
            else:
                target.update(value)
        elif fld.is_repeated:
            target.extend(value)
        elif fld.type == FieldDescriptor.TYPE_MESSAGE:
            target.CopyFrom(value)
        else:
            setattr(message, name, value)
    return message


# -- raw-wire mutations ----------------------------------------------------------------------------

# Bytes that end a message in the middle of a field: a tag without its value, a length without its bytes.
TRUNCATED = (b"\x08", b"\x0a\x80", b"\xff\xff\xff")
INVALID_UTF8 = (b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"ok\x80ok", b"\xe2\x82")


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def invalid_utf8_field(number: int, payload: bytes) -> bytes:
    """Wire bytes of string field ``number`` holding ``payload`` (the last value of a field wins)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def wire_suffixes(request: type[Message]) -> st.SearchStrategy[bytes]:
    """Bytes appended to a serialized request: mostly none, else invalid UTF-8 in a string field, or garbage.

    Python clients cannot build such requests, but other clients (or a hostile one) send them; the
    server must answer INVALID_ARGUMENT, not INTERNAL.
    """
    numbers = [f.number for f in request.DESCRIPTOR.fields if f.type == FieldDescriptor.TYPE_STRING]
    choices: list[tuple[st.SearchStrategy[bytes], int]] = [(st.just(b""), 8), (st.sampled_from(TRUNCATED), 1)]
    if numbers:
        choices.append((st.builds(invalid_utf8_field, st.sampled_from(numbers), st.sampled_from(INVALID_UTF8)), 1))
    return weighted(*choices)


# -- a fuzzed call ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FuzzCase:
    """The messages of one fuzzed call, plus raw bytes appended on the wire to the first one."""

    rpc: Rpc
    messages: tuple[Message, ...]
    suffix: bytes = b""

    def payloads(self) -> list[bytes]:
        """What goes on the wire, one entry per request message."""
        encoded = [message.SerializeToString() for message in self.messages]
        if encoded and self.suffix:
            encoded[0] += self.suffix
        return encoded

    def __repr__(self) -> str:
        body = " | ".join(short_text(message) for message in self.messages) or "(no messages)"
        suffix = f" + wire bytes {self.suffix.hex()}" if self.suffix else ""
        return f"{self.rpc.path} {body}{suffix}"


def short_text(message: Message, limit: int = 120) -> str:
    """One-line text format of a message, long strings shortened to ``limit`` characters."""

    def shorten(match: re.Match[str]) -> str:
        quoted = match.group(0)
        return quoted if len(quoted) <= limit else f'{quoted[:limit]}..."(+{len(quoted) - limit} chars)'

    text = _QUOTED.sub(shorten, text_format.MessageToString(message, as_one_line=True))
    return f"{type(message).__name__}{{{text}}}"


_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')


def cases(strategies: MessageStrategies, rpc: Rpc, *, wire: bool = False) -> st.SearchStrategy[FuzzCase]:
    """Fuzzed calls of ``rpc``; with ``wire``, some carry invalid UTF-8 or undecodable bytes on the wire."""
    suffixes = wire_suffixes(rpc.request) if wire else st.just(b"")
    return st.builds(
        lambda messages, suffix: FuzzCase(rpc, tuple(messages), suffix if messages else b""),
        strategies.request(rpc),
        suffixes,
    )


def undecodable_cases(rpc: Rpc) -> list[FuzzCase]:
    """Requests no proto parser accepts: invalid UTF-8 in each top-level string field, and truncated bytes."""
    empty = rpc.request()
    numbers = [f.number for f in rpc.request.DESCRIPTOR.fields if f.type == FieldDescriptor.TYPE_STRING]
    suffixes = [invalid_utf8_field(number, b"\xc3\x28") for number in numbers] + list(TRUNCATED)
    return [FuzzCase(rpc, (empty,), suffix) for suffix in suffixes]


def option_keys() -> dict[str, list[str]]:
    """Option names the server reads from Structs, by field: job options and model loading options."""
    from rag_factory.models.embedding.models import ModelConfig
    from rag_factory.models.training.config import FineTuneConfig

    loading = [*ModelConfig.model_fields, "onnx_runtime", "onnx_threads", "module_class", "tokenizer_path"]
    return {"options": list(FineTuneConfig.model_fields), "load_config": loading}
