# Install/remove steps shared by taskservs (the platform's and a workspace's own):
#     use taskserv_steps.nu [install-taskserv remove-taskserv check-taskserv]
# Files are rendered here; everything else happens on the server, over SSH.
use provisioning.nu *

# Run `steps` (a closure), closing the server's shared SSH connection afterwards,
# whether the steps succeeded or not.
def over-ssh [steps: closure] {
    let outcome = (try { {ok: (do $steps)} } catch {|e| {error: $e} })
    taskserv-tool disconnect | ignore
    if "error" in $outcome { error make {msg: ($outcome.error.msg)} }
    $outcome.ok
}

# Install the taskserv named in the task's parameters on its server: render its
# bundle, upload it, install and start it there, check it, record it. A second run
# with nothing changed (same files, healthy) changes nothing and says so.
export def install-taskserv [params: record] {
    let rendered = (taskserv-tool render)
    let result = (over-ssh {||
        let status = (taskserv-tool status)
        if $status.installed and $status.healthy {
            report-progress 100 $"($status.taskserv) ($status.version) already on ($status.hostname): nothing changed"
            $status | insert changed false
        } else {
            let why = if $status.installed { $"reinstalling: ($status.reason)" } else { "installing" }
            report-progress 10 $"($why) ($status.taskserv) ($status.version) on ($status.hostname) at ($status.address)"
            let uploaded = (taskserv-tool upload)
            report-progress 40 $"uploaded ($rendered.files | length) file\(s\), ($rendered.packages | length) package\(s\)"
            taskserv-tool install | ignore
            report-progress 70 "installed; checking"
            let checked = (taskserv-tool check)
            report-progress 90 $"healthy; recording"
            let recorded = (taskserv-tool record)
            $recorded | insert changed true | insert files $rendered.files | insert packages $rendered.packages
        }
    })
    emit-result $result
}

# Remove the taskserv: stop its service and delete its files on the server, forget it.
export def remove-taskserv [params: record] {
    taskserv-tool render | ignore
    let result = (over-ssh {||
        let status = (taskserv-tool status)
        if not $status.installed {
            taskserv-tool forget | ignore
            $status | insert changed false
        } else {
            report-progress 20 $"removing ($status.taskserv) from ($status.hostname)"
            taskserv-tool remove | ignore
            taskserv-tool forget | insert changed true
        }
    })
    emit-result $result
}

# The taskserv's health check on its server (process answers, port listens, version).
export def check-taskserv [params: record] {
    taskserv-tool render | ignore
    emit-result (over-ssh {|| taskserv-tool status })
}
