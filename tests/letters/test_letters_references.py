"""References made in bulk are references like any other: opaque, random, unique."""

from __future__ import annotations

from csa_closure.letters import is_reference, new_references


def test_references_made_in_bulk_are_opaque_random_and_unique() -> None:
    references = new_references(10_000)
    assert len(references) == len(set(references)) == 10_000
    assert all(is_reference(r) for r in references)
    assert new_references(0) == []
    assert new_references(2, lambda n: bytes(range(n))) == [
        "csa-00010203040506070809",
        "csa-0a0b0c0d0e0f10111213",
    ]
