# Install/remove steps shared by taskservs (the platform's and a workspace's own):
#     use taskserv_steps.nu [install-taskserv remove-taskserv]
use provisioning.nu *

# Install the taskserv named in the task's parameters: render its templates into the
# server, lay down its files, start its service if it has one, record it.
export def install-taskserv [params: record] {
    let status = (taskserv-tool status)
    if $status.installed {
        report-progress 100 $"($status.taskserv) ($status.version) already on ($status.hostname)"
        emit-result ($status | insert changed false)
        return
    }
    report-progress 10 $"installing ($status.taskserv) ($status.version) on ($status.hostname)"
    let rendered = (taskserv-tool render)
    report-progress 50 $"rendered ($rendered.files | length) file\(s\)"
    let opt = ($status.root | path join "opt" $status.taskserv)
    mkdir $opt
    $status.version | save -f ($opt | path join "VERSION")
    let service = if $status.service { taskserv-tool start } else { null }
    report-progress 90 "recording"
    let recorded = (taskserv-tool record)
    emit-result ($recorded | insert changed true | insert files $rendered.files | insert service $service)
}

# Remove the taskserv: stop its service, delete its files, forget it.
export def remove-taskserv [params: record] {
    let status = (taskserv-tool status)
    if not $status.installed {
        emit-result ($status | insert changed false)
        return
    }
    report-progress 20 $"removing ($status.taskserv) from ($status.hostname)"
    if $status.service { taskserv-tool stop | ignore }
    taskserv-tool unrender | ignore
    rm -rf ($status.root | path join "opt" $status.taskserv)
    let recorded = (taskserv-tool forget)
    emit-result ($recorded | insert changed true)
}
