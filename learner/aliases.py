"""Short aliases (G0, G1, ...) that prompts show in place of stable experience ids."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from learner.library import LibraryEntry
from learner.operations import AddOperation, DeleteOperation, MergeOperation, ModifyOperation, Operation


@dataclass(frozen=True)
class AliasMap:
    """Aliases for one library snapshot: ``G<i>`` is the i-th entry, oldest first."""

    entries: tuple[LibraryEntry, ...]

    @classmethod
    def of(cls, entries: Sequence[LibraryEntry]) -> AliasMap:
        """Aliases for these entries."""
        return cls(tuple(entries))

    def alias(self, experience_id: str) -> str | None:
        """The alias of a stable id, if the snapshot holds it."""
        for index, entry in enumerate(self.entries):
            if entry.experience_id == experience_id:
                return f"G{index}"
        return None

    def resolve(self, name: str) -> str | None:
        """The stable id behind an alias (a stable id itself is accepted too)."""
        name = name.strip().strip("[]").strip()
        if name[:1] in ("G", "g") and name[1:].isdigit():
            index = int(name[1:])
            return self.entries[index].experience_id if index < len(self.entries) else None
        return name if any(entry.experience_id == name for entry in self.entries) else None

    def render(self, shown: Sequence[LibraryEntry] | None = None) -> str:
        """A numbered list ``[G0]. text`` of ``shown`` (default: all); entries not in the snapshot are left out."""
        lines = []
        for entry in self.entries if shown is None else shown:
            alias = self.alias(entry.experience_id)
            if alias is not None:
                lines.append(f"[{alias}]. {entry.text}")
        return "\n".join(lines)


def resolve_operation(operation: Operation, aliases: AliasMap) -> Operation | str:
    """``operation`` with aliases replaced by stable ids, or why that is impossible."""
    if isinstance(operation, AddOperation):
        return operation
    if isinstance(operation, MergeOperation):
        ids = [aliases.resolve(name) for name in operation.experience_ids]
        unknown = [name for name, key in zip(operation.experience_ids, ids, strict=True) if key is None]
        if unknown:
            return f"merge names experiences not in the library: {unknown!r}"
        return MergeOperation(experience_ids=[key for key in ids if key is not None], text=operation.text)
    key = aliases.resolve(operation.experience_id)
    if key is None:
        return f"{operation.op} names an experience not in the library: {operation.experience_id!r}"
    if isinstance(operation, ModifyOperation):
        return ModifyOperation(experience_id=key, text=operation.text)
    return DeleteOperation(experience_id=key)


def alias_operation(operation: Operation, aliases: AliasMap) -> Operation | str:
    """``operation`` with stable ids shown as aliases, or why it no longer fits the library."""
    if isinstance(operation, AddOperation):
        return operation
    if isinstance(operation, MergeOperation):
        names = [aliases.alias(key) for key in operation.experience_ids]
        if any(name is None for name in names):
            return "merge names experiences no longer in the library"
        return MergeOperation(experience_ids=[name for name in names if name is not None], text=operation.text)
    name = aliases.alias(operation.experience_id)
    if name is None:
        return f"{operation.op} names an experience no longer in the library"
    if isinstance(operation, ModifyOperation):
        return ModifyOperation(experience_id=name, text=operation.text)
    return DeleteOperation(experience_id=name)
