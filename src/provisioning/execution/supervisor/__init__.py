"""Task supervisors that outlive the daemon (in the manner of containerd's shim or
conmon): ``zygote`` forks one ``attempt`` supervisor per task, which starts the
handler (``child``) and keeps its output and exit status in the attempt's folder
(``frames``)."""
