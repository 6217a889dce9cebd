"""Training-Free GRPO: learn a library of short experiences from groups of scored attempts.

This package knows nothing of MCP or Chroma. It works on any object that satisfies
:class:`learner.library.Library`.
"""
