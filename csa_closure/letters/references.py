"""Opaque letter references.

A reference identifies one letter to us and to Notify. It is random, so it carries no personal
data and nothing about the case; Notify does not make references unique, so uniqueness is ours
(the ``letters.reference`` column is unique).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable

REFERENCE_PREFIX = "csa-"
REFERENCE_HEX_CHARS = 20  # 80 random bits
_REFERENCE = re.compile(rf"^{REFERENCE_PREFIX}[0-9a-f]{{{REFERENCE_HEX_CHARS}}}$")


def new_reference(token_hex: Callable[[int], str] = secrets.token_hex) -> str:
    """``csa-`` and 20 random hex characters, e.g. ``csa-3f9a0c2b7e1d4a5f6b7c``."""
    return REFERENCE_PREFIX + token_hex(REFERENCE_HEX_CHARS // 2)


def new_references(
    count: int, token_bytes: Callable[[int], bytes] = secrets.token_bytes
) -> list[str]:
    """``count`` references, each as :func:`new_reference` makes it, from one draw of random
    bytes (a build makes hundreds of thousands at once)."""
    width = REFERENCE_HEX_CHARS
    drawn = token_bytes(count * width // 2).hex()
    return [REFERENCE_PREFIX + drawn[i : i + width] for i in range(0, count * width, width)]


def is_reference(value: object) -> bool:
    """Whether ``value`` has the shape of a reference made by :func:`new_reference`."""
    return isinstance(value, str) and _REFERENCE.fullmatch(value) is not None
