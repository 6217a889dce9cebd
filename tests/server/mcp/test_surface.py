"""What a client sees: clean descriptions, described parameters, lean output schemas, one resource per namespace."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.server import MCPServer

from debrief.server.embedding.embedder import Embedder
from debrief.server.mcp.app import create_server
from debrief.server.mcp.state import AppState
from debrief.server.mcp.surface import lean_schema
from debrief.server.settings import ModelSettings, RunSettings, Settings

pytestmark = pytest.mark.anyio
LESSON = "When a word problem mixes units, convert every quantity to one unit before doing any arithmetic."
WAIT = 30


@pytest.fixture
def server(tmp_path: Path, test_embedder: Embedder) -> MCPServer[AppState]:
    return create_server(Settings(data_dir=tmp_path / "data", chroma_mode="in-process"), embedder=test_embedder)


@pytest.fixture(params=["auto", "legacy"])
async def client(request: pytest.FixtureRequest, server: MCPServer[AppState]) -> AsyncIterator[Client]:
    async with Client(server, mode=request.param) as connected:
        yield connected


def keys(node: Any) -> set[str]:
    if isinstance(node, dict):
        return set(node) | {key for value in node.values() for key in keys(value)}
    if isinstance(node, list):
        return {key for value in node for key in keys(value)}
    return set()


def wire_bytes(tools: list[Any]) -> int:
    return sum(
        len(json.dumps(tool.model_dump(mode="json", by_alias=True, exclude_none=True), separators=(",", ":")))
        for tool in tools
    )


async def test_tool_descriptions_are_clean_text_and_every_parameter_is_described(client: Client) -> None:
    tools = (await client.list_tools()).tools
    assert len(tools) >= 19
    for tool in tools:
        assert tool.description and tool.description == tool.description.strip(), tool.name
        assert not any(line.startswith(" ") for line in tool.description.splitlines()), tool.name
        for name, parameter in tool.input_schema.get("properties", {}).items():
            assert parameter.get("description"), f"{tool.name}.{name} has no description"


async def test_output_schemas_are_a_fraction_of_the_full_ones_and_keep_the_fields_a_model_reads(
    client: Client, server: MCPServer[AppState]
) -> None:
    served = (await client.list_tools()).tools
    full = await MCPServer.list_tools(server)
    assert wire_bytes(served) < 0.45 * wire_bytes(full)
    for tool in served:
        assert tool.output_schema is not None, tool.name
        assert not keys(tool.output_schema) & {"title", "$defs", "$ref", "maxLength"}, tool.name
    retrieve = next(tool for tool in served if tool.name == "retrieve_experiences")
    assert retrieve.output_schema is not None
    item = retrieve.output_schema["properties"]["experiences"]["items"]
    assert {"experience_id", "text", "score"} <= set(item["properties"])


async def test_real_results_still_validate_against_the_lean_schemas(client: Client) -> None:
    # The SDK client validates structured content against the advertised output schema on every call.
    with anyio.fail_after(WAIT):
        added = await client.call_tool("add_experience", {"text": LESSON, "namespace": "math"})
        found = await client.call_tool(
            "retrieve_experiences", {"task": "a word problem in metres", "namespace": "math"}
        )
        runs = await client.call_tool("list_learning_runs", {})
    assert not added.is_error and not found.is_error and not runs.is_error
    assert found.structured_content is not None
    assert found.structured_content["experiences"][0]["text"] == LESSON


async def test_retrieve_experiences_is_marked_read_only_so_ask_modes_do_not_prompt_for_it(client: Client) -> None:
    tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    annotations = tools["retrieve_experiences"].annotations
    assert annotations is not None
    assert annotations.read_only_hint is True
    assert annotations.destructive_hint is False


async def test_resources_list_names_one_library_per_namespace_that_reads_as_its_text(client: Client) -> None:
    with anyio.fail_after(WAIT):
        assert [str(r.uri) for r in (await client.list_resources()).resources] == []
        await client.call_tool("add_experience", {"text": LESSON, "namespace": "math"})
        await client.call_tool(
            "add_experience", {"text": "When a test is flaky, fix the seed first.", "namespace": "code"}
        )
        listed = (await client.list_resources()).resources
        uris = sorted(str(resource.uri) for resource in listed)
        text = await client.read_resource("experiences://math")
    assert uris == ["experiences://code", "experiences://math"]
    assert all(resource.mime_type == "text/plain" and resource.description for resource in listed)
    assert LESSON in json.dumps(text.model_dump(mode="json"))


async def test_a_library_change_is_announced_to_resource_list_listeners(server: MCPServer[AppState]) -> None:
    async with Client(server) as client:
        with anyio.fail_after(WAIT):
            async with client.listen(resources_list_changed=True) as subscription:
                await client.call_tool("add_experience", {"text": LESSON, "namespace": "math"})
                event = await subscription.__anext__()
    assert type(event).__name__ == "ResourcesListChanged"


async def test_record_outcome_reports_only_the_counters_it_really_raised(client: Client) -> None:
    with anyio.fail_after(WAIT):
        added = await client.call_tool("add_experience", {"text": LESSON, "namespace": "math"})
        assert added.structured_content is not None
        real = added.structured_content["experience"]["experience_id"]
        unknown = "math:0123456789ab"
        result = await client.call_tool(
            "record_outcome",
            {
                "task": "Add 3 m and 40 cm.",
                "attempt": "Converted to cm, then added.",
                "outcome": "success",
                "namespace": "math",
                "experience_ids_used": [real, unknown],
            },
        )
    assert result.structured_content is not None, result
    assert result.structured_content["counters_updated"] == [real]


def test_lean_schema_inlines_references_and_stops_at_recursive_models() -> None:
    schema = {
        "type": "object",
        "title": "Tree",
        "properties": {"children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}},
        "$defs": {
            "Node": {
                "type": "object",
                "title": "Node",
                "properties": {"name": {"type": "string", "maxLength": 5}, "kids": {"$ref": "#/$defs/Node"}},
            }
        },
    }
    assert lean_schema(schema) == {
        "type": "object",
        "properties": {
            "children": {
                "type": "array",
                "items": {"type": "object", "properties": {"name": {"type": "string"}, "kids": {"type": "object"}}},
            }
        },
    }


async def test_server_info_tells_a_model_where_datasets_may_live_and_which_models_it_may_name(
    tmp_path: Path, test_embedder: Embedder
) -> None:
    extra = tmp_path / "shared-data"
    settings = Settings(
        data_dir=tmp_path / "data",
        chroma_mode="in-process",
        models=ModelSettings(base_url="http://127.0.0.1:9/v1", name="qwen", allowed=["llama", "qwen"]),
        runs=RunSettings(dataset_dirs=[extra]),
    )
    async with Client(create_server(settings, embedder=test_embedder)) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        result = await client.call_tool("get_server_info", {})
    info = result.structured_content
    assert info is not None
    assert info["dataset_dirs"] == [str((tmp_path / "data" / "datasets").resolve()), str(extra.resolve())]
    assert info["allowed_models"] == ["qwen", "llama"]
    assert info["default_model"] == "qwen at http://127.0.0.1:9/v1"
    assert "math" in info["verifiers"]
    start = tools["start_learning_run"].input_schema["properties"]
    assert "get_server_info" in start["data_path"]["description"]
    assert "get_server_info" in start["model"]["description"]
