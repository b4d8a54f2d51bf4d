"""The workflow file's structure (mirrors ``schemas/workflow.ncl``; a test keeps
the two in agreement)."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..tasks import RetryPolicy, RunSpec
from ..tasks.limits import check_params

ID_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
PriorityName = Literal["low", "normal", "high", "critical"]


class OnFailure(StrEnum):
    FAIL = "fail"
    CONTINUE = "continue"
    ROLLBACK = "rollback"


class Target(StrEnum):
    SERVER = "server"
    TASKSERV = "taskserv"
    CLUSTER = "cluster"


class OpType(StrEnum):
    CREATE = "create"
    DELETE = "delete"
    UPDATE = "update"
    CHECK = "check"


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class OperationSpec(_Closed):
    """One operation: a platform operation (``target`` + ``type``) or a ``run``."""

    id: Annotated[str, Field(min_length=1, max_length=100)]
    depends_on: Annotated[list[str], Field(alias="dependencies")] = []
    description: str | None = None
    target: Target | None = None
    type: OpType | None = None
    infra: str | None = None
    provider: str | None = None
    items: list[Any] | None = None
    run: RunSpec | None = None
    params: dict[str, Any] = {}
    timeout: Annotated[float, Field(gt=0, le=7 * 86_400)] | None = None
    retry: RetryPolicy | None = None
    priority: PriorityName | None = None
    on_failure: OnFailure = OnFailure.FAIL
    undo: RunSpec | None = None

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not ID_RE.fullmatch(value):
            raise ValueError(
                "must be letters, digits, '_', '-', '.' (not starting with '.' or '-')"
            )
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> OperationSpec:
        platform = self.target is not None or self.type is not None
        if platform and self.run is not None:
            raise ValueError("give either target + type (a platform operation) or run, not both")
        if not platform and self.run is None:
            raise ValueError("give either target + type (a platform operation) or run")
        if platform and (self.target is None or self.type is None):
            raise ValueError("a platform operation needs both target and type")
        if len(set(self.depends_on)) != len(self.depends_on):
            raise ValueError("depends_on lists an operation twice")
        # Each of the operation's tasks gets its params plus one item: bounding them
        # together bounds every task's, as for a task submitted alone.
        check_params({**self.params, "item": self.items}, "params (with items)")
        return self

    @property
    def operation_name(self) -> str | None:
        """``server.create`` for platform operations."""
        if self.target is None or self.type is None:
            return None
        return f"{self.target}.{self.type}"


class WorkflowSpec(_Closed):
    """A batch workflow: operations with dependencies, limits and policies."""

    name: Annotated[str, Field(min_length=1, max_length=200)]
    version: str = "1.0.0"
    description: str | None = None
    parallel_limit: Annotated[int, Field(ge=1, le=10_000, strict=True)] = 5
    priority: PriorityName = "normal"
    retry: RetryPolicy | None = None
    rollback_enabled: Annotated[bool, Field(strict=True)] = True
    # Seed fields, kept so the original platform's files load; the orchestrator's own
    # configuration decides storage and logging.
    storage_backend: str | None = None
    logging: dict[str, Any] | None = None
    operations: Annotated[list[OperationSpec], Field(min_length=1, max_length=100_000)]

    @model_validator(mode="after")
    def _rollback_allowed(self) -> WorkflowSpec:
        if not self.rollback_enabled:
            for index, op in enumerate(self.operations):
                if op.on_failure is OnFailure.ROLLBACK:
                    raise ValueError(
                        f"operations[{index}] ({op.id}): on_failure = rollback needs "
                        "rollback_enabled = true"
                    )
        return self
