# Debrief as a Streamable HTTP MCP server. Build: docker build -t debrief .
# Run:  docker run -d -p 8000:8000 -v debrief-data:/data -e DEBRIEF_HTTP_TOKENS=<token> debrief
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY server ./server
COPY learner ./learner
COPY debrief ./debrief
# The embedder's weights ship inside the package (no torch, no separate weights package).
RUN pip install .

RUN useradd --create-home --uid 10001 --user-group debrief \
    && mkdir /data \
    && chown debrief:debrief /data
USER 10001:10001

# Serving on 0.0.0.0 requires DEBRIEF_HTTP_TOKENS (comma-separated bearer tokens): without them the server
# refuses to start. Set DEBRIEF_PUBLIC_URL to the URL clients use (for the OAuth protected-resource metadata).
ENV DEBRIEF_DATA_DIR=/data
VOLUME ["/data"]
EXPOSE 8000

# Any HTTP answer below 500 (401 without a token) means the server is up; a refused connection exits non-zero.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import http.client as h; c = h.HTTPConnection('127.0.0.1', 8000, timeout=4); c.request('GET', '/mcp'); raise SystemExit(c.getresponse().status >= 500)"]

ENTRYPOINT ["debrief"]
CMD ["serve", "--http", "--host", "0.0.0.0", "--port", "8000"]
