from __future__ import annotations

import json

import anyio
import pytest

from debrief.learner import Backends, ConfigError, FunctionBackend, InMemoryLibrary, LibraryEntry, make_verifier
from debrief.learner.backend import ChatRequest
from debrief.learner.controls import evaluate_library, random_library, shuffled_library
from tests.learner.evaluation_world import BAD, GOOD, NEUTRAL, policy, problems

pytestmark = pytest.mark.anyio


def library(*texts: str) -> InMemoryLibrary:
    made = InMemoryLibrary()
    for text in texts:
        made.add_text(text)
    return made


def tips_writer(request: ChatRequest, choice: int) -> str:
    prompt = request.messages[-1].content
    assert "data: example problem 1 (quoted material" in prompt and "Write exactly 1 experiences" in prompt
    return json.dumps({"tips": [NEUTRAL]})


async def test_the_library_beats_random_shuffled_and_direct_tip_controls_with_intervals() -> None:
    reflect = FunctionBackend(tips_writer, model="reflect")
    backends = Backends(policy=FunctionBackend(policy), reflect=reflect)
    pool = [LibraryEntry(experience_id="other:1", text=BAD), LibraryEntry(experience_id="other:2", text=BAD + " Be")]
    with anyio.fail_after(60):
        result = await evaluate_library(
            problems(30),
            library(GOOD),
            backends=backends,
            verifier=make_verifier("exact"),
            samples=4,
            controls=["random", "tips", "retrieved"],
            random_pool=pool,
        )
    assert result.delta.verdict == "better" and result.delta.ci95[0] > 0
    assert result.with_library.mean_at_k > result.without.mean_at_k
    by_name = {control.name: control for control in result.controls}
    assert by_name["random"].beaten and by_name["random"].comparison.ci95[0] > 0
    assert "another library" in by_name["random"].description
    assert by_name["tips"].beaten and by_name["tips"].size == 1 and by_name["tips"].build_tokens.requests == 1
    # The top-1 retrieved of a one-lesson library is the library itself: reused attempts, exactly no difference.
    assert not by_name["retrieved"].beaten and by_name["retrieved"].comparison.ci95 == [0.0, 0.0]
    assert by_name["retrieved"].arm.tokens.requests + result.with_library.tokens.requests == 30
    assert len(reflect.calls) == 1
    assert result.report.comparison("random", "without").verdict == "worse"
    assert result.tokens.requests == result.report.tokens.requests + 1


async def test_without_a_pool_the_random_control_shuffles_the_librarys_own_words() -> None:
    with anyio.fail_after(60):
        result = await evaluate_library(
            problems(20),
            library(GOOD),
            backends=Backends(policy=FunctionBackend(policy)),
            verifier=make_verifier("exact"),
            controls=["random"],
            per_experience=True,
        )
    control = result.controls[0]
    assert "shuffled" in control.description and control.beaten
    assert result.effects is not None and [effect.text for effect in result.effects.effects] == [GOOD]
    assert result.effects.effects[0].verdict == "better"


async def test_a_control_that_is_the_library_itself_or_an_empty_library_is_refused() -> None:
    backends = Backends(policy=FunctionBackend(policy))
    with pytest.raises(ConfigError, match="use 'retrieved'"):
        await evaluate_library(
            problems(2), library(GOOD), backends=backends, verifier=make_verifier("exact"), controls=["whole"]
        )
    with pytest.raises(ConfigError, match="no active experiences"):
        await evaluate_library(problems(2), library(), backends=backends, verifier=make_verifier("exact"))


def test_shuffled_and_random_libraries_keep_the_size_and_are_seeded() -> None:
    entries = [LibraryEntry(experience_id=str(index), text=f"word{index} a b c d e f") for index in range(5)]
    shuffled = shuffled_library(entries, seed=1)
    assert [sorted(item.text.split()) for item in shuffled] == [sorted(item.text.split()) for item in entries]
    assert shuffled == shuffled_library(entries, seed=1) and shuffled != shuffled_library(entries, seed=2)
    assert len(random_library(entries, 3, seed=0)) == 3
    with pytest.raises(ConfigError, match="at least as many"):
        random_library(entries, 6)
