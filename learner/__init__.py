"""Training-Free GRPO: learn a library of short experiences from groups of scored attempts.

This package knows nothing of MCP or Chroma. It works on any object that satisfies
:class:`learner.library.Library`. The entry points are :func:`run_learning` (learning runs over problems) and
:func:`reflect_on_attempts` (one group of attempts recorded from real work).
"""

from learner.accounting import ModelPrice, PriceTable, TokenCount
from learner.backend import Backends, ChatBackend, ChatReply, ChatRequest, Message, Usage
from learner.checkpoint import Checkpoint, DirectoryCheckpoint, MemoryCheckpoint, RunState
from learner.config import RunConfig
from learner.datasets import Problem, generate_problems, load_generator, load_jsonl
from learner.errors import BackendError, ConfigError, InvalidReply, LearnerError, ResponseFormatRejected
from learner.evaluation import EvaluationReport, ProblemResult, evaluate
from learner.events import ProgressEvent
from learner.function_backend import FunctionBackend
from learner.library import AppliedLookup, InMemoryLibrary, Library, LibraryEntry, Provenance
from learner.outcome_reflection import RecordedAttempt, ReflectionReport, reflect_on_attempts
from learner.records import GroupRecord, RunReport, StepRecord
from learner.report import format_report
from learner.run import run_learning
from learner.verifiers import Verifier, make_verifier

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
