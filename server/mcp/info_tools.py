"""``get_server_info``: what a model needs to know before it starts a run — where data may live, which models."""

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from pydantic import BaseModel, Field

from debrief.server.mcp.annotations import READ_ONLY
from debrief.server.mcp.state import AppState
from debrief.server.settings import Settings
from debrief.server.version import package_version

VERIFIERS = ["math", "exact", "numeric[:tolerance]", "regex[:pattern]", "judge"]
EMBEDDED_MODEL = "the embedded local model (SmolLM2-135M via llama.cpp; weak, for trying Debrief out)"


class ServerInfo(BaseModel):
    """This server's version, the data and models a learning run may use, and the limits on requests."""

    version: str = Field(description="Debrief's version.")
    dataset_dirs: list[str] = Field(
        description="Directories whose JSONL files start_learning_run accepts as data_path (absolute paths)."
    )
    default_model: str = Field(description="The model a run uses when it names none.")
    allowed_models: list[str] = Field(
        description="Models start_learning_run accepts as model; empty: only the default model."
    )
    verifiers: list[str] = Field(description="Verifier names start_learning_run accepts.")
    max_task_bytes: int = Field(description="Largest task or attempt text, in bytes.")
    max_retrieve_k: int = Field(description="Most experiences retrieve_experiences returns.")
    max_page_size: int = Field(description="Largest page of a listing.")


def server_info(settings: Settings) -> ServerInfo:
    """The facts ``get_server_info`` reports, from the server's settings."""
    models = settings.models
    allowed = list(dict.fromkeys([*([models.name] if models.name else []), *models.allowed]))
    if models.base_url is None:
        default = EMBEDDED_MODEL
    else:
        default = f"{models.name or '(DEBRIEF_MODEL is not set)'} at {models.base_url}"
    return ServerInfo(
        version=package_version(),
        dataset_dirs=[str(path.expanduser().resolve()) for path in settings.dataset_roots()],
        default_model=default,
        allowed_models=allowed,
        verifiers=VERIFIERS,
        max_task_bytes=settings.limits.task_bytes,
        max_retrieve_k=settings.limits.retrieve_k,
        max_page_size=settings.limits.page_size,
    )


def register_info_tools(server: MCPServer[AppState]) -> None:
    """Register ``get_server_info`` on ``server``."""

    @server.tool(annotations=READ_ONLY)
    async def get_server_info(ctx: Context[AppState]) -> ServerInfo:
        """Where training data may live, which models and verifiers a learning run may use, and request limits.

        Call this before start_learning_run with a data_path or a model.
        """
        return server_info(ctx.request_context.lifespan_context.settings)
