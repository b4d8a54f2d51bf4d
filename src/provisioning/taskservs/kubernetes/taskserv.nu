# Install/remove this taskserv on a local server (run by the orchestrator's Nushell runner).
use taskserv_steps.nu [install-taskserv remove-taskserv]

export def install [params: record] { install-taskserv $params }

export def remove [params: record] { remove-taskserv $params }
