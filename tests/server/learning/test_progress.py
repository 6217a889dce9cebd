from dataclasses import fields

from debrief.learner import ProgressEvent
from debrief.server.learning.run_models import RunProgress


def test_run_progress_carries_every_counter_of_the_learners_progress_event() -> None:
    event = ProgressEvent(
        kind="group_done",
        run_id="run-1",
        step=2,
        total_steps=3,
        attempts_done=10,
        attempts_total=30,
        groups_done=2,
        groups_kept=1,
        operations_applied=1,
        prompt_tokens=1234,
        completion_tokens=567,
        cost_usd=0.25,
        message="step 2: group 2 scored",
    )
    progress = RunProgress.of(event)
    assert progress.model_dump() == {name: getattr(event, name) for name in RunProgress.model_fields}
    # Every event field but the ones that name the event reaches the client's progress.
    assert set(RunProgress.model_fields) == {field.name for field in fields(ProgressEvent)} - {"kind", "run_id"}
