"""Short aliases (G0, G1, ...) that prompts show in place of stable experience ids."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from debrief.learner.library import LibraryEntry
from debrief.learner.operations import AddOperation, DeleteOperation, MergeOperation, ModifyOperation, Operation


@dataclass(frozen=True)
class AliasMap:
    """Aliases for one library snapshot: ``G<i>`` is the i-th entry, oldest first."""

    entries: tuple[LibraryEntry, ...]
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Renders and replies look ids up per entry: a dict keeps that linear in the library size.
        index: dict[str, int] = {}
        for position, entry in enumerate(self.entries):
            index.setdefault(entry.experience_id, position)
        object.__setattr__(self, "_index", index)

    @classmethod
    def of(cls, entries: Sequence[LibraryEntry]) -> AliasMap:
        """Aliases for these entries."""
        return cls(tuple(entries))

    def alias(self, experience_id: str) -> str | None:
        """The alias of a stable id, if the snapshot holds it."""
        index = self._index.get(experience_id)
        return None if index is None else f"G{index}"

    def resolve(self, name: str) -> str | None:
        """The stable id behind an alias (a stable id itself is accepted too)."""
        name = name.strip().strip("[]").strip()
        if name[:1] in ("G", "g") and name[1:].isdigit():
            index = int(name[1:])
            return self.entries[index].experience_id if index < len(self.entries) else None
        return name if name in self._index else None

    def render(self, shown: Sequence[LibraryEntry] | None = None) -> str:
        """A numbered list ``[G0]. text`` of ``shown`` (default: all); entries not in the snapshot are left out."""
        lines = []
        for entry in self.entries if shown is None else shown:
            alias = self.alias(entry.experience_id)
            if alias is not None:
                lines.append(f"[{alias}]. {entry.text}")
        return "\n".join(lines)


def _mapped(operation: Operation, lookup: Callable[[str], str | None]) -> Operation | list[str]:
    """``operation`` with every id passed through ``lookup``, or the ids ``lookup`` does not know."""
    if isinstance(operation, AddOperation):
        return operation
    if isinstance(operation, MergeOperation):
        found = [lookup(name) for name in operation.experience_ids]
        unknown = [name for name, key in zip(operation.experience_ids, found, strict=True) if key is None]
        if unknown:
            return unknown
        return MergeOperation(experience_ids=[key for key in found if key is not None], text=operation.text)
    key = lookup(operation.experience_id)
    if key is None:
        return [operation.experience_id]
    if isinstance(operation, ModifyOperation):
        return ModifyOperation(experience_id=key, text=operation.text)
    return DeleteOperation(experience_id=key)


def resolve_operation(operation: Operation, aliases: AliasMap) -> Operation | str:
    """``operation`` with aliases replaced by stable ids, or why that is impossible."""
    mapped = _mapped(operation, aliases.resolve)
    if not isinstance(mapped, list):
        return mapped
    if isinstance(operation, MergeOperation):
        return f"merge names experiences not in the library: {mapped!r}"
    return f"{operation.op} names an experience not in the library: {mapped[0]!r}"


def alias_operation(operation: Operation, aliases: AliasMap) -> Operation | str:
    """``operation`` with stable ids shown as aliases, or why it no longer fits the library."""
    mapped = _mapped(operation, aliases.alias)
    if not isinstance(mapped, list):
        return mapped
    if isinstance(operation, MergeOperation):
        return "merge names experiences no longer in the library"
    return f"{operation.op} names an experience no longer in the library"
