"""The orchestrator daemon: durable task queue, scheduler, executor and REST API."""
