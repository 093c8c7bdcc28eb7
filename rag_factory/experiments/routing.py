"""Sticky A/B routing: a salted stable hash of the request key decides the variant, in every replica."""

from __future__ import annotations

import random
from hashlib import blake2b

from rag_factory.errors import InvalidArgumentError

# Random routing (no key) needs no reproducibility, only independence between calls and processes.
_SYSTEM_RANDOM = random.SystemRandom()

# 2**-53: turns the top 53 bits of the digest into a float in [0, 1) without rounding up to 1.0.
_TO_UNIT = 1.0 / (1 << 53)


def routing_bucket(test_name: str, salt: str, routing_key: str) -> float:
    """Map a request key to a stable point in [0, 1).

    ``u = top53(blake2b_64(f"{salt}:{test_name}:{routing_key}")) / 2**53``

    The hash is BLAKE2b with an 8-byte digest over the UTF-8 text above; the top 53 bits of the
    big-endian digest, divided by 2**53, give ``u``.  It depends only on its inputs (never on
    Python's per-process ``hash()`` randomisation), so every process, replica and language that
    implements the same formula agrees.  Within one test the prefix is fixed, so distinct keys are
    spread uniformly; a different salt or test name reshuffles every key.

    Args:
        test_name: The experiment's name.
        salt: Deployment-wide secret or constant; changing it reshuffles all assignments.
        routing_key: User, session or request key.

    Returns:
        A float in [0, 1), uniform over keys.
    """
    digest = blake2b(f"{salt}:{test_name}:{routing_key}".encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") >> 11) * _TO_UNIT


def assign_variant(
    test_name: str,
    salt: str,
    split: float,
    routing_key: str | None,
    rng: random.Random | None = None,
) -> bool:
    """Decide whether one request goes to variant B.

    With a key the answer is ``routing_bucket(test_name, salt, key) < split``: sticky for the key,
    and monotone in ``split`` (raising the split during a ramp only moves keys from A to B, never
    back).  Without a key the answer is ``rng.random() < split``.

    Args:
        test_name: The experiment's name.
        salt: Salt of the stable hash; see :func:`routing_bucket`.
        split: Fraction of traffic sent to B, in [0, 1].
        routing_key: Key that makes the choice sticky, or ``None`` for random routing.
        rng: Source of randomness for keyless calls; a module-wide ``SystemRandom`` when ``None``.

    Returns:
        ``True`` when B serves the request, ``False`` for A.

    Raises:
        InvalidArgumentError: ``split`` is outside [0, 1] or NaN.
    """
    if not 0.0 <= split <= 1.0:
        raise InvalidArgumentError(f"traffic split must be in [0, 1], got {split!r}")
    if routing_key is None:
        return (rng if rng is not None else _SYSTEM_RANDOM).random() < split
    return routing_bucket(test_name, salt, routing_key) < split
