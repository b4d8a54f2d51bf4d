"""The task supervisor that outlives the daemon (in the manner of containerd's shim
or conmon): ``hub`` is the data dir's one supervisor process, ``attempt`` one task
under it, ``child`` how its handler is started, ``frames`` what it keeps and says."""
