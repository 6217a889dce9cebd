from pathlib import Path

import pytest
from pydantic import SecretStr
from pydantic_settings import BaseSettings

from debrief.server.settings import ModelSettings, RunSettings, Settings

# Every environment variable Debrief read before its settings were grouped, the value to set, and where it lands.
ENVIRONMENT = [
    ("DEBRIEF_DATA_DIR", "/tmp/debrief-env", lambda s: s.data_dir == Path("/tmp/debrief-env")),
    ("DEBRIEF_CHROMA_URL", "http://127.0.0.1:9", lambda s: s.chroma_url == "http://127.0.0.1:9"),
    ("DEBRIEF_CHROMA_MODE", "in-process", lambda s: s.chroma_mode == "in-process"),
    ("DEBRIEF_DEDUP_THRESHOLD", "0.5", lambda s: s.dedup_threshold == 0.5),
    ("DEBRIEF_LIMIT_PAGE_SIZE", "7", lambda s: s.limits.page_size == 7),
    ("DEBRIEF_EMBEDDER", "openai", lambda s: s.embedding.kind == "openai"),
    ("DEBRIEF_EMBEDDING_BASE_URL", "http://e/v1", lambda s: s.embedding.base_url == "http://e/v1"),
    ("DEBRIEF_EMBEDDING_MODEL", "e-3", lambda s: s.embedding.model == "e-3"),
    ("DEBRIEF_EMBEDDING_API_KEY", "ek", lambda s: s.embedding.api_key == SecretStr("ek")),
    ("DEBRIEF_MODEL_BASE_URL", "http://m/v1", lambda s: s.models.base_url == "http://m/v1"),
    ("DEBRIEF_MODEL", "policy-m", lambda s: s.models.name == "policy-m"),
    ("DEBRIEF_REFLECT_MODEL", "reflect-m", lambda s: s.models.reflect_name == "reflect-m"),
    ("DEBRIEF_MODEL_API_KEY", "mk", lambda s: s.models.api_key == SecretStr("mk")),
    ("DEBRIEF_ALLOWED_MODELS", " a, b,,c ", lambda s: s.models.allowed == ["a", "b", "c"]),
    ("DEBRIEF_LOCAL_MODEL_PATH", "/m.gguf", lambda s: s.models.local_path == Path("/m.gguf")),
    ("DEBRIEF_ALLOW_MODEL_REQUESTS", "false", lambda s: s.models.allow_requests is False),
    ("DEBRIEF_PRICE_INPUT_PER_MILLION", "1.5", lambda s: s.prices.input_per_million == 1.5),
    ("DEBRIEF_PRICE_OUTPUT_PER_MILLION", "2.5", lambda s: s.prices.output_per_million == 2.5),
    ("DEBRIEF_MAX_CONCURRENT_RUNS", "3", lambda s: s.runs.max_concurrent == 3),
    ("DEBRIEF_RUN_BUDGET_TOKENS", "77", lambda s: s.runs.budget_tokens == 77),
    ("DEBRIEF_MAX_RUN_BUDGET_TOKENS", "99", lambda s: s.runs.max_budget_tokens == 99),
    ("DEBRIEF_DAILY_BUDGET_USD", "2", lambda s: s.runs.daily_budget_usd == 2.0),
    ("DEBRIEF_DATASET_DIRS", "/a, /b", lambda s: s.runs.dataset_dirs == [Path("/a"), Path("/b")]),
    ("DEBRIEF_RUN_CONCURRENCY", "4", lambda s: s.runs.concurrency == 4),
    ("DEBRIEF_RUN_REQUEST_TIMEOUT", "30", lambda s: s.runs.request_timeout == 30.0),
    ("DEBRIEF_RUN_MAX_RETRIES", "2", lambda s: s.runs.max_retries == 2),
    ("DEBRIEF_RUN_ADAPTIVE_CONCURRENCY", "false", lambda s: s.runs.adaptive_concurrency is False),
    ("DEBRIEF_MODEL_CONTEXT_TOKENS", "8192", lambda s: s.models.context_tokens == 8192),
    ("DEBRIEF_AGENT_MCP_CONFIG", "/etc/d/mcp.json", lambda s: s.runs.agent_mcp_config == Path("/etc/d/mcp.json")),
    ("DEBRIEF_AGENT_CODE_TOOL", "true", lambda s: s.runs.agent_code_tool is True),
    ("DEBRIEF_OUTCOME_MATCH_THRESHOLD", "0.8", lambda s: s.outcomes.match_threshold == 0.8),
    ("DEBRIEF_OUTCOME_WINDOW_DAYS", "2", lambda s: s.outcomes.window_days == 2.0),
    ("DEBRIEF_OUTCOME_GROUP_MAX", "4", lambda s: s.outcomes.group_max == 4),
    ("DEBRIEF_OUTCOME_RETIRE_MIN_USES", "7", lambda s: s.outcomes.retire_min_uses == 7),
    ("DEBRIEF_OUTCOME_RETIRE_HELPFUL_SHARE", "0.3", lambda s: s.outcomes.retire_helpful_share == 0.3),
    ("DEBRIEF_OUTCOME_RETIRE_FLAG_ONLY", "true", lambda s: s.outcomes.retire_flag_only is True),
    ("DEBRIEF_REFLECTION", "client", lambda s: s.outcomes.reflection == "client"),
    ("DEBRIEF_OUTCOME_REFLECTION_TASK_HOURS", "5", lambda s: s.outcomes.reflection_task_hours == 5.0),
    ("DEBRIEF_OUTCOME_REFLECTION_MAX_OPERATIONS", "2", lambda s: s.outcomes.reflection_max_operations == 2),
    ("DEBRIEF_HOOK_ENDPOINT", "false", lambda s: s.hooks.endpoint is False),
    ("DEBRIEF_HOOK_NAMESPACE", "my-repo", lambda s: s.hooks.namespace == "my-repo"),
    ("DEBRIEF_HOOK_MAX_CHARS", "900", lambda s: s.hooks.max_chars == 900),
    ("DEBRIEF_HOOK_MIN_SCORE", "0.5", lambda s: s.hooks.min_score == 0.5),
    ("DEBRIEF_HTTP_TOKENS", "t1, t2,", lambda s: [t.get_secret_value() for t in s.http.tokens] == ["t1", "t2"]),
    ("DEBRIEF_PUBLIC_URL", "https://d.example/mcp", lambda s: s.http.public_url == "https://d.example/mcp"),
    ("DEBRIEF_HTTP_TOKENS_FILE", "/etc/d/tokens.json", lambda s: str(s.http.tokens_file) == "/etc/d/tokens.json"),
]


@pytest.mark.parametrize(("name", "value", "landed"), ENVIRONMENT, ids=[row[0] for row in ENVIRONMENT])
def test_each_environment_variable_sets_its_grouped_setting(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, landed: object
) -> None:
    monkeypatch.setenv(name, value)
    assert callable(landed)
    assert landed(Settings())


def test_the_model_api_key_falls_back_to_openai_api_key_and_prefers_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEBRIEF_MODEL_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "from-openai")
    assert Settings().models.api_key == SecretStr("from-openai")
    monkeypatch.setenv("DEBRIEF_MODEL_API_KEY", "from-debrief")
    assert Settings().models.api_key == SecretStr("from-debrief")


def test_a_bare_field_name_in_the_environment_sets_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAME", "not-a-model")
    monkeypatch.setenv("API_KEY", "not-a-key")
    monkeypatch.delenv("DEBRIEF_MODEL", raising=False)
    monkeypatch.delenv("DEBRIEF_MODEL_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    models = Settings().models
    assert (models.name, models.api_key) == (None, None)


def test_a_group_passed_to_settings_wins_and_reads_its_other_fields_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DEBRIEF_MODEL", "from-env")
    monkeypatch.setenv("DEBRIEF_REFLECT_MODEL", "reflect-from-env")
    settings = Settings(data_dir=tmp_path, chroma_mode="in-process", models=ModelSettings(name="given"))
    assert (settings.models.name, settings.models.reflect_name) == ("given", "reflect-from-env")
    assert settings.chroma_mode == "in-process"


def test_dataset_roots_put_the_data_dirs_datasets_first(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, runs=RunSettings(dataset_dirs=[Path("/extra")]))
    assert settings.dataset_roots() == [tmp_path / "datasets", Path("/extra")]


def test_every_setting_is_documented() -> None:
    groups: list[type[BaseSettings]] = [
        Settings,
        *(
            field.annotation
            for field in Settings.model_fields.values()
            if isinstance(field.annotation, type) and issubclass(field.annotation, BaseSettings)
        ),
    ]
    assert len(groups) >= 8  # Settings and its groups
    undocumented = [
        f"{group.__name__}.{name}"
        for group in groups
        for name, field in group.model_fields.items()
        if not field.description
    ]
    assert undocumented == []
