"""Essences and their digests (pure): the state of an entity as a side will show it, reduced
to the fields that side stores and normalised so that what was written and what is read
back compare equal. The link table keeps the digest of what each write left behind; an
event whose entity has that digest again is the echo of our own write.

An essence is a mapping of field name to value. Normalised: ``None`` and ``""`` are both
empty, scalars compare as text, lists keep their order unless the caller sorted them, and
mappings compare by key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any


def normalise(value: Any) -> Any:
    if value is None or value == "":
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return {str(k): normalise(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [normalise(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, set | frozenset) else items
    return str(value)


def digest(essence: Mapping[str, Any] | None) -> str | None:
    """SHA-256 of the normalised essence; None for no essence (the entity was deleted)."""
    if essence is None:
        return None
    blob = json.dumps(normalise(essence), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()
