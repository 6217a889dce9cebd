# Register Debrief with Claude Code (run one of these).
# stdio: Claude Code starts the server itself.
claude mcp add --transport stdio --scope user debrief --env=DEBRIEF_DATA_DIR=/absolute/path/to/debrief-data -- /absolute/path/to/.venv/bin/debrief serve
# Streamable HTTP: a running `debrief serve --http` (or the container).
claude mcp add --transport http --scope user debrief http://127.0.0.1:8000/mcp --header 'Authorization: Bearer YOUR_DEBRIEF_TOKEN'
