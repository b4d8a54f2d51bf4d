"""Database plumbing that knows nothing of tasks: connections, locks, notifications.

The stores (:mod:`provisioning.orchestrator.store`) build on these; nothing here
decides anything about the queue or a workflow.
"""
