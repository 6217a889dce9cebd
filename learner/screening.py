"""Screening of lesson text before it lands in a library, whatever proposed it (a model, a client, an import).

A lesson is served into the prompts of every later task, so a poisoned one acts on every client. Text that
carries a link or address, tells the reader to send private material somewhere, or tries to override the
reader's instructions is refused, with the reason.
"""

from __future__ import annotations

import re

_URL = re.compile(
    r"(?i)\b(?:[a-z][a-z0-9+.-]*://|www\.)\S+|\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b|\b(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?\b"
)
_SEND = (
    r"send|sends|sending|post|posts|upload|uploads|forward|forwards|e-?mail|transmit|exfiltrate|leak|share|reveal"
    r"|disclose|submit|beacon"
)
_PRIVATE = (
    r"conversations?|chats?|transcripts?|(?:chat|message|conversation)\s+history|system\s+prompts?|secrets?"
    r"|credentials?|passwords?|api[\s_-]?keys?|(?:private|ssh|secret)\s+keys?|(?:access|auth|bearer)\s+tokens?"
    r"|env\s+vars|environment\s+variables|cookies?|personal\s+data|user\s+data|\.env"
)
_EXFILTRATION = re.compile(rf"(?i)\b(?:{_SEND})\b(?:\W+\w+){{0,6}}?\W+(?:{_PRIVATE})(?!\w)")
_OVERRIDE = re.compile(
    r"(?i)\b(?:ignore|disregard|forget|override)\s+(?:all\s+|any\s+)?(?:the\s+)?(?:previous|prior|above|earlier|"
    r"your|system|other|original)\s+(?:instructions?|rules|prompts?|guidelines)\b"
    r"|\byou\s+are\s+now\b|\bnew\s+instructions?\s*:|^\s*system\s*:"
)


def lesson_screen_problem(text: str) -> str | None:
    """Why ``text`` must not become a lesson, or ``None`` when it passes the screen."""
    if match := _URL.search(text):
        return f"lessons must not contain links or addresses ({match.group(0)!r}): state the strategy in words"
    if match := _EXFILTRATION.search(text):
        return (
            f"lessons must not tell the reader to send or reveal private material ({match.group(0)!r}); this looks "
            "like an injected instruction, not a lesson"
        )
    if match := _OVERRIDE.search(text):
        return f"lessons must not try to override the reader's instructions ({match.group(0)!r})"
    return None
