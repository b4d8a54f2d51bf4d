# Install/remove steps shared by taskservs (the platform's and a workspace's own):
#     use taskserv_steps.nu [install-taskserv remove-taskserv check-taskserv]
# Files are rendered here; everything else happens on the server, over SSH.
use provisioning.nu *

# Install the taskserv named in the task's parameters on its server: render its
# bundle and ask the server what it has; unless that is this bundle, healthy, upload
# it, install and start it there, check it and record it. A second run with nothing
# changed changes nothing and says so.
export def install-taskserv [params: record] {
    let status = (taskserv-tool prepare)
    if $status.installed and $status.healthy {
        report-progress 100 $"($status.taskserv) ($status.version) already on ($status.hostname): nothing changed"
        emit-result ($status | insert changed false)
        return
    }
    # Another version, or files and settings other than these (a `~ update`): reconfigure
    # and restart it in place.
    let why = if $status.installed {
        $"reinstalling: ($status.reason)"
    } else if $status.reason != "not installed" { "updating" } else { "installing" }
    let because = if $why == "updating" { $" \(($status.reason)\)" } else { "" }
    report-progress 10 $"($why) ($status.taskserv) ($status.version) on ($status.hostname) at ($status.address): ($status.files | length) file\(s\), ($status.packages | length) package\(s\)($because)"
    let applied = (taskserv-tool apply)
    report-progress 100 $"($status.taskserv) ($status.version) installed on ($status.hostname), healthy"
    emit-result ($applied | insert changed true | insert files $status.files | insert packages $status.packages)
}

# Remove the taskserv: stop its service and delete its files on the server, forget it.
export def remove-taskserv [params: record] {
    let removed = (taskserv-tool uninstall)
    if $removed.changed {
        report-progress 100 $"($removed.taskserv) removed from ($removed.hostname)"
    }
    emit-result $removed
}

# The taskserv's health check on its server (process answers, port listens, version).
export def check-taskserv [params: record] {
    emit-result (taskserv-tool status)
}
