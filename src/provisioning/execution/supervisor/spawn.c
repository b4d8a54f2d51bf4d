/* provisioning-spawn: start an attempt's handler born inside its cgroup.
 *
 * The supervisor posix_spawns this (vfork and exec) in place of stepping into the
 * cgroup itself and back. Moving a process into a cgroup (a cgroup.procs write) waits
 * for an RCU grace period: after an idle moment, 15-20 ms here, on every task of a
 * chain. A process cloned with CLONE_INTO_CGROUP is in the group from its first
 * instruction and waits for nothing, so this helper clones the handler into the group
 * and stays as its parent, ending as the handler ended: to the supervisor it is the
 * handler (its pid, its process group, its exit). The supervisor signals the process
 * group and the cgroup, which reach the handler themselves; this helper only outlives
 * those signals to report how the handler ended. Where clone3 or CLONE_INTO_CGROUP is missing (kernels before 5.7,
 * cgroup v1) it joins the group and becomes the handler itself, as before.
 *
 *   provisioning-spawn ERRFD PROCS CWD UMASK UID GID EXECUTABLE ARGV...
 *
 * PROCS, CWD, EXECUTABLE may be empty (none; EXECUTABLE empty: ARGV[0] on PATH);
 * UMASK, UID and GID are decimal, -1 to keep (a GID given drops every supplementary
 * group). If the handler cannot start, its errno is written to
 * ERRFD and the exit code is 127; ERRFD is close-on-exec, so its end-of-file tells the
 * supervisor the handler runs. A cgroup that cannot be joined is not fatal (as in the
 * Python path: the process group still ends the handler).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

static const int outlived[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM};

struct how {
    const char *cwd, *mask, *uid, *gid, *exe;
    char **args;
};

static void become(int err, const struct how *how) {
    int code;
    const char *cwd = how->cwd, *mask = how->mask, *exe = how->exe;
    char **args = how->args;
    long uid = strtol(how->uid, NULL, 10), gid = strtol(how->gid, NULL, 10);
    /* As subprocess orders them: the directory first, then the groups, then the user. */
    if (cwd[0] && chdir(cwd) != 0) {
        goto failed;
    }
    if (gid >= 0 && (setgroups(0, NULL) != 0 || setgid((gid_t)gid) != 0)) {
        goto failed;
    }
    if (uid >= 0 && setuid((uid_t)uid) != 0) {
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

/* The handler, cloned into the group whose cgroup.procs is PROCS; -1 if that cannot
 * be had (errno says why). */
static pid_t clone_into(const char *procs) {
    size_t length = strlen(procs);
    const char *suffix = "/cgroup.procs";
    size_t cut = strlen(suffix);
    if (length <= cut || strcmp(procs + length - cut, suffix) != 0) {
        errno = EINVAL;
        return -1;
    }
    char group[4096];
    if (length - cut >= sizeof group) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(group, procs, length - cut);
    group[length - cut] = '\0';
    int fd = open(group, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    struct clone_args args;
    memset(&args, 0, sizeof args);
    args.flags = CLONE_INTO_CGROUP;
    args.exit_signal = SIGCHLD;
    args.cgroup = (uint64_t)fd;
    pid_t pid = (pid_t)syscall(SYS_clone3, &args, sizeof args);
    if (pid != 0) {
        close(fd);
    }
    return pid;
}

static int follow(pid_t pid) {
    /* Ignored here only: the handler was cloned with the default dispositions. */
    for (size_t i = 0; i < sizeof outlived / sizeof outlived[0]; i++) {
        signal(outlived[i], SIG_IGN);
    }
    /* The handler's output and the supervisor's pipes are the handler's alone: their
     * end-of-file must not wait for this process. */
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    for (int fd = 0; fd < 3; fd++) {
        if (null >= 0) {
            dup2(null, fd);
        }
    }
    syscall(SYS_close_range, 3U, ~0U, 0U);
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            return 127;
        }
    }
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        signal(sig, SIG_DFL);
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, sig);
        sigprocmask(SIG_UNBLOCK, &set, NULL);
        kill(getpid(), sig);
        return 128 + sig;
    }
    return WEXITSTATUS(status);
}

int main(int argc, char **argv) {
    if (argc < 9) {
        return 127;
    }
    int err = atoi(argv[1]);
    const char *procs = argv[2];
    struct how how = {argv[3], argv[4], argv[5], argv[6], argv[7], argv + 8};
    if (procs[0]) {
        pid_t pid = clone_into(procs);
        if (pid == 0) {
            become(err, &how);
        }
        if (pid > 0) {
            close(err);
            return follow(pid);
        }
        int fd = open(procs, O_WRONLY | O_CLOEXEC);
        if (fd >= 0) {
            if (write(fd, "0\n", 2) < 0) { /* runs without the group */ }
            close(fd);
        }
    }
    become(err, &how);
    return 127;
}
