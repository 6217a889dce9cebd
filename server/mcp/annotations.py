"""The behaviour hints every Debrief tool declares: one set per kind of tool, shared by all tool modules."""

from mcp.types import ToolAnnotations

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
"""Reads the store, run records or outcomes; changes nothing."""

ADDITIVE = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False)
"""Adds something (an experience, an outcome, a reflection) without overwriting what is there."""

REWRITING = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=False)
"""Changes or retires stored experiences (every change is versioned and can be rolled back)."""

RETRIEVAL = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
"""Reads; its usage counter is bookkeeping, not a change a user must approve (clients that gate on readOnlyHint
would otherwise ask before every retrieval)."""

STARTS_RUN = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True)
"""Starts background work that calls a model endpoint (outside this server)."""

STOPS_RUN = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
"""Stops background work; stopping twice is the same as once."""
