"""Training-Free GRPO: learn a library of short experiences from groups of scored attempts.

This package knows nothing of MCP or Chroma. It works on any object that satisfies
:class:`debrief.learner.library.Library`. The entry points are :func:`run_learning` (learning runs over problems) and
:func:`reflect_on_attempts` (one group of attempts recorded from real work).
"""

from debrief.learner.accounting import ModelPrice, PriceTable, TokenCount
from debrief.learner.backend import Backends, ChatBackend, ChatReply, ChatRequest, Message, Usage
from debrief.learner.checkpoint import Checkpoint, DirectoryCheckpoint, MemoryCheckpoint, RunState
from debrief.learner.config import RunConfig
from debrief.learner.datasets import Problem, generate_problems, load_generator, load_jsonl
from debrief.learner.errors import BackendError, ConfigError, InvalidReply, LearnerError, ResponseFormatRejected
from debrief.learner.evaluation import EvaluationReport, ProblemResult, evaluate
from debrief.learner.events import ProgressEvent
from debrief.learner.function_backend import FunctionBackend
from debrief.learner.library import AppliedLookup, InMemoryLibrary, Library, LibraryEntry, Provenance
from debrief.learner.outcome_reflection import RecordedAttempt, ReflectionReport, reflect_on_attempts
from debrief.learner.records import GroupRecord, RunReport, StepRecord
from debrief.learner.report import format_report
from debrief.learner.run import run_learning
from debrief.learner.verifiers import Verifier, make_verifier

__all__ = [
    "EvaluationReport",
    "ProblemResult",
    "evaluate",
    "AppliedLookup",
    "BackendError",
    "Backends",
    "ChatBackend",
    "ChatReply",
    "ChatRequest",
    "Checkpoint",
    "ConfigError",
    "DirectoryCheckpoint",
    "FunctionBackend",
    "GroupRecord",
    "InMemoryLibrary",
    "InvalidReply",
    "LearnerError",
    "Library",
    "LibraryEntry",
    "MemoryCheckpoint",
    "Message",
    "ModelPrice",
    "PriceTable",
    "Problem",
    "ProgressEvent",
    "Provenance",
    "RecordedAttempt",
    "ReflectionReport",
    "ResponseFormatRejected",
    "RunConfig",
    "RunReport",
    "RunState",
    "StepRecord",
    "TokenCount",
    "Usage",
    "Verifier",
    "format_report",
    "generate_problems",
    "load_generator",
    "load_jsonl",
    "make_verifier",
    "reflect_on_attempts",
    "run_learning",
]
