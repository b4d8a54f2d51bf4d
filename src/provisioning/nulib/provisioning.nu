# The platform's Nushell library: what a task handler needs to talk to its orchestrator
# (the seed's Pattern 3). Every Nushell task runs with this library on its path:
#     use provisioning.nu *

# The task's parameters (also passed to the handler as its one argument).
export def task-params [] {
    $env.PROVISIONING_PARAMS? | default "{}" | from json
}

# Report progress (0-100) through the output protocol.
export def report-progress [progress: int, message?: string] {
    let text = if $message == null { "" } else { $" ($message)" }
    print $"PROGRESS: ($progress)($text)"
}

# Report progress over HTTP instead (POST /tasks/{id}/progress with the task's own token).
export def report-progress-api [progress: int, message?: string] {
    let url = $"($env.PROVISIONING_ORCHESTRATOR_URL)/tasks/($env.PROVISIONING_TASK_ID)/progress"
    let auth = [Authorization $"Bearer ($env.PROVISIONING_TASK_TOKEN)"]
    http post --content-type application/json -H $auth $url {progress: $progress, message: $message}
}

# Set the task's structured result (the last one emitted wins).
export def emit-result [value: any] {
    print $"RESULT: ($value | to json -r)"
}

# Fail unless the orchestrator answers healthy; returns its /health record.
export def check-orchestrator-health [] {
    let endpoint = ($env.PROVISIONING_ORCHESTRATOR_URL? | default "http://127.0.0.1:9090")
    let response = (http get $"($endpoint)/health")
    if $response.status != "healthy" {
        error make { msg: "Orchestrator not available" }
    }
    $response
}

# Run the platform's taskserv tool (templates, state, services) for this task.
export def taskserv-tool [verb: string] {
    ^$env.PROVISIONING_PYTHON -m provisioning.taskservs.tool $verb | from json
}
