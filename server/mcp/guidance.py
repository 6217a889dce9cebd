"""Text Debrief hands to models: the ready-to-paste experience block and the usage protocol."""

from __future__ import annotations

from collections.abc import Sequence

from debrief.server.store.models import Experience, ScoredExperience


def prompt_block(namespace: str, experiences: Sequence[ScoredExperience]) -> str:
    """Retrieved experiences as a block to paste into a system prompt."""
    if not experiences:
        return ""
    lines = [f"Lessons from earlier work ({namespace}); apply those that fit this task, ignore the rest:"]
    lines.extend(f"- [{item.experience_id}] {item.text}" for item in experiences)
    return "\n".join(lines)


def library_text(namespace: str, version: int, experiences: Sequence[Experience]) -> str:
    """A whole active library as plain text, for a system prompt or a CLAUDE.md."""
    header = f"# Debrief experiences: {namespace} (library version {version}, {len(experiences)} active)"
    if not experiences:
        return header + "\n\n(no experiences yet)\n"
    body = "\n".join(f"- [{item.experience_id}] {item.text}" for item in experiences)
    return f"{header}\n\n{body}\n"


PROTOCOL = """\
You have Debrief, an experience memory: short lessons learned from earlier attempts at similar work.

1. Before a task, call `retrieve_experiences` with a one-paragraph description of the task and the
   namespace for this kind of work ({namespace}). Read the returned lessons; apply those that fit and
   ignore those that do not. Remember the ids of the ones you used.
2. Do the task.
3. After the task, when you know how it went, call `record_outcome` (if available) with the task, a short
   account of what you did, the outcome (success, failure or a score) and the ids of the lessons you used.
   This is how the library learns which lessons help.
4. When you learn something general and reusable (not a fact about this one task), you may call
   `add_experience` with one sentence of at most 32 words that starts with when it applies.
Never store secrets or personal data in experiences.
"""


def protocol_text(namespace: str) -> str:
    """The protocol prompt, naming the namespace to use."""
    return PROTOCOL.format(namespace=repr(namespace))
