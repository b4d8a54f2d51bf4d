"""HTTP client of the orchestrator, used by the CLI (never the daemon's internals)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict
from urllib.parse import quote

from .http11 import ConnectFailed, Http11, ReadTimedOut, TransportError

if TYPE_CHECKING:
    from .config import Settings


class ClientError(Exception):
    """The orchestrator could not be reached or refused the request; the message says why."""

    def __init__(self, message: str, status: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class Unreachable(ClientError):
    """Nothing answers at the endpoint."""


class TimedOut(ClientError):
    """The orchestrator did not answer in time."""


class Unauthorized(ClientError):
    """The orchestrator refused the token (HTTP 401)."""


def segment(value: str) -> str:
    """An id as one path segment: ``../tasks/x`` stays inside its own segment."""
    return quote(value, safe="")


# The answers of the API, as the client returns them: one shape per response model of
# ``orchestrator/api`` (a unit test keeps their keys equal). Times are ISO 8601 text.


class AttemptView(TypedDict):
    number: int
    node_id: str
    status: str
    started_at: str | None
    finished_at: str | None
    exit_code: int | None
    error: str | None
    pid: int | None


class TaskView(TypedDict):
    id: str
    name: str
    status: str
    priority: str
    progress: int
    progress_message: str | None
    result: Any
    error: str | None
    run: dict[str, Any]
    params: dict[str, Any]
    workflow_id: str | None
    attempt: int
    retry: dict[str, Any]
    timeout_seconds: float
    cancel_requested: bool
    next_attempt_at: str | None
    created_at: str | None
    started_at: str | None
    completed_at: str | None
    attempts: list[AttemptView] | None
    # While it runs: its process tree's cpu_seconds, memory_bytes, memory_peak_bytes.
    usage: dict[str, float | int | None] | None


class TaskPageView(TypedDict):
    tasks: list[TaskView]
    total: int
    limit: int
    offset: int


class LogLineView(TypedDict):
    seq: int
    attempt: int
    stream: str
    line: str
    ts: str | None


class LogsView(TypedDict):
    task_id: str
    lines: list[LogLineView]
    next_after: int


class WorkflowTaskView(TypedDict):
    id: str
    name: str
    status: str
    progress: int
    progress_message: str | None
    attempt: int
    item: int | None
    error: str | None
    result: Any
    started_at: str | None
    completed_at: str | None


class StepView(TypedDict):
    id: str
    kind: str
    layer: int
    status: str
    on_failure: str
    depends_on: list[str]
    total: int
    completed: int
    failed: int
    finished_at: str | None
    tasks: list[WorkflowTaskView]


class WorkflowView(TypedDict):
    id: str
    name: str
    version: str
    status: str
    phase: str
    error: str | None
    priority: str
    parallel_limit: int
    rollback_enabled: bool
    progress: int
    tasks: dict[str, int]
    checkpoint: dict[str, Any]
    created_at: str | None
    started_at: str | None
    completed_at: str | None
    steps: list[StepView] | None
    steps_total: int | None


class WorkflowPageView(TypedDict):
    workflows: list[WorkflowView]
    total: int
    limit: int
    offset: int


class WorkflowSubmittedView(TypedDict):
    workflow_id: str
    status: str
    tasks: int


def read_token(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise ClientError(
            f"no API token at {path}: start the orchestrator once with this configuration "
            "(provisioning orchestrator start --daemon), or set server.token_file"
        ) from None
    except PermissionError:
        raise ClientError(f"cannot read the API token at {path}: permission denied") from None


class OrchestratorClient:
    """Typed calls to the REST API of one orchestrator."""

    def __init__(
        self,
        endpoint: str,
        token: str | None,
        timeout: float = 30.0,
        *,
        token_file: Path | None = None,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.token_file = token_file
        # How long a long poll may hold a reply: well inside the read timeout.
        self.long_poll_seconds = max(0.5, min(25.0, timeout / 2))
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            self._http = Http11(self.endpoint, headers, timeout)
        except ValueError as exc:
            raise ClientError(f"orchestrator.endpoint: {exc}") from None

    @classmethod
    def from_settings(cls, settings: Settings, *, need_token: bool = True) -> OrchestratorClient:
        token = read_token(settings.token_path) if need_token else None
        return cls(
            settings.orchestrator.endpoint,
            token,
            settings.orchestrator.timeout_seconds,
            token_file=settings.token_path if need_token else None,
        )

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except ConnectFailed:
            raise Unreachable(f"no orchestrator answers at {self.endpoint}") from None
        except ReadTimedOut:
            raise TimedOut(f"the orchestrator at {self.endpoint} did not answer in time") from None
        except TransportError as exc:
            raise ClientError(f"request to {self.endpoint}{path} failed: {exc}") from None
        if response.status >= 400:
            try:
                body = response.json()
                message = body.get("error") or response.text
                if response.status == 413 and isinstance(body.get("detail"), str):
                    message = f"{message}: {body['detail']}"  # names the setting
            except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
                body, message = None, response.text
            if response.status == 401:
                raise Unauthorized(self._refused_token(), 401, body)
            raise ClientError(f"{message} (HTTP {response.status})", response.status, body)
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ClientError(
                f"{self.endpoint}{path} answered HTTP {response.status} with a body that is "
                "not JSON (is this an orchestrator?)"
            ) from None

    def _refused_token(self) -> str:
        used = f"the token in {self.token_file}" if self.token_file else "no token"
        return (
            f"the orchestrator at {self.endpoint} refused {used} (HTTP 401): the daemon "
            "keeps its token in server.token_file of the configuration it runs with "
            "(default: <data_dir>/api-token); point this CLI's server.token_file or "
            "data_dir at the same file"
        )

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", "/health")
        return result

    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", "/status")
        return result

    def submit_task(self, body: dict[str, Any]) -> str:
        return str(self._request("POST", "/tasks", json_body=body)["task_id"])

    def task(self, task_id: str, *, wait: float = 0) -> TaskView:
        """A task; with ``wait``, once it has ended or after that many seconds."""
        params = {"wait": wait} if wait else None
        result: TaskView = self._request("GET", f"/tasks/{segment(task_id)}", params=params)
        return result

    def tasks(self, status: str | None = None, limit: int = 50, offset: int = 0) -> TaskPageView:
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if status:
            params["status"] = status
        result: TaskPageView = self._request("GET", "/tasks", params=params)
        return result

    def logs(self, task_id: str, after: int = 0) -> LogsView:
        result: LogsView = self._request(
            "GET", f"/tasks/{segment(task_id)}/logs", params={"after": after}
        )
        return result

    def cancel(self, task_id: str) -> TaskView:
        result: TaskView = self._request("POST", f"/tasks/{segment(task_id)}/cancel")
        return result

    def submit_workflow(self, workflow: dict[str, Any]) -> WorkflowSubmittedView:
        result: WorkflowSubmittedView = self._request(
            "POST", "/workflows/batch/submit", json_body=workflow
        )
        return result

    def workflow(
        self,
        workflow_id: str,
        *,
        steps: bool = True,
        wait: float = 0,
        step_offset: int = 0,
        step_limit: int | None = None,
    ) -> WorkflowView:
        """A workflow (counts only unless ``steps``; a page of the steps with
        ``step_offset``/``step_limit``); with ``wait``, once it has finished or after that
        many seconds."""
        params: dict[str, Any] = {"steps": "true" if steps else "false"}
        if wait:
            params["wait"] = wait
        if step_offset:
            params["step_offset"] = step_offset
        if step_limit is not None:
            params["step_limit"] = step_limit
        result: WorkflowView = self._request(
            "GET", f"/workflows/{segment(workflow_id)}", params=params
        )
        return result

    def workflows(
        self, status: str | None = None, limit: int = 50, offset: int = 0
    ) -> WorkflowPageView:
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if status:
            params["status"] = status
        result: WorkflowPageView = self._request("GET", "/workflows", params=params)
        return result

    def workflow_command(self, workflow_id: str, verb: str) -> WorkflowView:
        result: WorkflowView = self._request(
            "POST", f"/workflows/{segment(workflow_id)}/{segment(verb)}"
        )
        return result

    def events(
        self, task_id: str | None = None, kinds: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """Events from the stream, as they come (blocks)."""
        params: dict[str, str] = {}
        if task_id:
            params["task_id"] = task_id
        if kinds:
            params["events"] = kinds
        try:
            stream = self._http.lines("/events", params)
            status = next(stream)
            if status == 401:
                raise Unauthorized(self._refused_token(), 401)
            if not isinstance(status, int) or status >= 400:
                raise ClientError(f"event stream refused (HTTP {status})")
            yield {"type": "system", "event": "connected"}
            for line in stream:
                if isinstance(line, str) and line.startswith("data: "):
                    yield json.loads(line[6:])
        except ConnectFailed:
            raise Unreachable(f"no orchestrator answers at {self.endpoint}") from None
