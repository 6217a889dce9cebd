"""Debrief's MCP server: the experience store, learning runs and the tools around them."""
