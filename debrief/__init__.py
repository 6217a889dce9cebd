"""Debrief: an experience memory that learns, served over MCP.

``debrief.learner`` is the method (Training-Free GRPO) and knows nothing of MCP or Chroma; ``debrief.server`` is
the product around it. Their folders live at the top of the repository and are linked here, so both import under
one distinct top-level name.
"""
