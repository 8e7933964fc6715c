"""Counts in messages, in words that agree with them: ``1 fused group``, ``2 fused groups``."""

from __future__ import annotations

_IRREGULAR = {"was": "were", "is": "are", "has": "have"}


def plural(count: int, noun: str, many: str | None = None) -> str:
    """``"<count> <noun>"``, the noun's last word in the plural unless ``count`` is 1 (``many``:
    the plural where adding ``s`` is wrong): ``plural(1, "fused group")`` is ``1 fused group``."""
    if count == 1:
        return f"{count} {noun}"
    if many is None:
        head, _, last = noun.rpartition(" ")
        many = f"{head} {_IRREGULAR.get(last, last + 's')}".strip()
    return f"{count} {many}"
