# Install/remove/check this taskserv on a server (over SSH; run by the Nushell runner).
use taskserv_steps.nu [install-taskserv remove-taskserv check-taskserv]

export def install [params: record] { install-taskserv $params }

export def remove [params: record] { remove-taskserv $params }

export def check [params: record] { check-taskserv $params }
