/* provisioning-spawn: join an attempt's cgroup, then become its handler.
 *
 * The supervisor posix_spawns this (vfork and exec) in place of stepping into the
 * cgroup itself and back: each step waits for an RCU grace period, which under load
 * was a quarter of the supervisor's time. Here the wait is this process's own, on
 * another CPU, and the handler is still in the group from its first instruction.
 *
 *   provisioning-spawn ERRFD PROCS CWD UMASK EXECUTABLE ARGV...
 *
 * PROCS, CWD, EXECUTABLE may be empty (none; EXECUTABLE empty: ARGV[0] on PATH);
 * UMASK is decimal, -1 to keep. If the handler cannot start, its errno is written to
 * ERRFD and the exit code is 127; ERRFD is close-on-exec, so its end-of-file tells the
 * supervisor the handler runs. A cgroup that cannot be joined is not fatal (as in the
 * Python path: the process group still ends the handler).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 7) {
        return 127;
    }
    int err = atoi(argv[1]);
    const char *procs = argv[2], *cwd = argv[3], *mask = argv[4], *exe = argv[5];
    char **args = argv + 6;
    int code;
    if (procs[0]) {
        int fd = open(procs, O_WRONLY | O_CLOEXEC);
        if (fd >= 0) {
            if (write(fd, "0\n", 2) < 0) { /* runs without the group */ }
            close(fd);
        }
    }
    if (cwd[0] && chdir(cwd) != 0) {
        goto failed;
    }
    long umask_value = strtol(mask, NULL, 10);
    if (umask_value >= 0) {
        umask((mode_t)umask_value);
    }
    fcntl(err, F_SETFD, FD_CLOEXEC);
    if (exe[0]) {
        execv(exe, args);
    } else {
        execvp(args[0], args);
    }
failed:
    code = errno;
    if (write(err, &code, sizeof code) < 0) { /* the exit code still says it */ }
    _exit(127);
}
