"""The client's typed answers have exactly the keys of the API's response models."""

from __future__ import annotations

from typing import get_type_hints

import pytest
from pydantic import BaseModel

from provisioning import client
from provisioning.orchestrator.api import schemas, workflow_views

PAIRS: list[tuple[type, type[BaseModel]]] = [
    (client.AttemptView, schemas.AttemptView),
    (client.TaskView, schemas.TaskView),
    (client.TaskPageView, schemas.TaskPageView),
    (client.LogLineView, schemas.LogLineView),
    (client.LogsView, schemas.LogsView),
    (client.WorkflowTaskView, workflow_views.WorkflowTaskView),
    (client.StepView, workflow_views.StepView),
    (client.WorkflowView, workflow_views.WorkflowView),
    (client.WorkflowPageView, workflow_views.WorkflowPageView),
    (client.WorkflowSubmittedView, workflow_views.WorkflowSubmittedView),
]


@pytest.mark.parametrize(("typed", "model"), PAIRS, ids=[m.__name__ for _, m in PAIRS])
def test_the_client_shape_matches_the_response_model(typed: type, model: type[BaseModel]) -> None:
    assert list(get_type_hints(typed)) == list(model.model_fields)
    assert typed.__name__ == model.__name__
