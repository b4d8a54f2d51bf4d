/* What it costs to put a new process into a fresh cgroup v2 group: fork and join it
 * (a cgroup.procs write, as a supervisor that steps into the group does) against
 * clone3(CLONE_INTO_CGROUP) (as the spawn helper does), each N times, GAP ms apart.
 *
 *   cc -O2 -o /tmp/cgroup-bench bench/cgroup_join_vs_clone.c
 *   mkdir /sys/fs/cgroup/unified/pvbench     # (or /sys/fs/cgroup/pvbench), as root
 *   /tmp/cgroup-bench /sys/fs/cgroup/unified/pvbench join 25
 *   /tmp/cgroup-bench /sys/fs/cgroup/unified/pvbench clone 25
 *   rmdir /sys/fs/cgroup/unified/pvbench
 *
 * The time is from the fork/clone to the parent having reaped the child.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s PARENT-GROUP join|clone GAP-MS [N]\n", argv[0]);
        return 2;
    }
    const char *base = argv[1];
    int clone_into = strcmp(argv[2], "clone") == 0;
    int gap_ms = atoi(argv[3]), runs = argc > 4 ? atoi(argv[4]) : 20;
    double total = 0, worst = 0;
    for (int i = 0; i < runs; i++) {
        char group[512], procs[600];
        snprintf(group, sizeof group, "%s/run%d", base, i);
        snprintf(procs, sizeof procs, "%s/cgroup.procs", group);
        if (mkdir(group, 0755) != 0) {
            perror(group);
            return 1;
        }
        int dir = open(group, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        double start = now_ms();
        pid_t pid;
        if (clone_into) {
            struct clone_args args;
            memset(&args, 0, sizeof args);
            args.flags = CLONE_INTO_CGROUP;
            args.exit_signal = SIGCHLD;
            args.cgroup = (uint64_t)dir;
            pid = (pid_t)syscall(SYS_clone3, &args, sizeof args);
            if (pid == 0) {
                _exit(0);
            }
        } else {
            pid = fork();
            if (pid == 0) {
                int fd = open(procs, O_WRONLY);
                _exit(fd >= 0 && write(fd, "0\n", 2) == 2 ? 0 : 1);
            }
        }
        if (pid < 0) {
            perror("fork/clone3");
            return 1;
        }
        int status;
        waitpid(pid, &status, 0);
        double took = now_ms() - start;
        total += took;
        worst = took > worst ? took : worst;
        close(dir);
        rmdir(group);
        usleep((useconds_t)gap_ms * 1000);
    }
    printf("%s, %d ms apart: mean %.3f ms, max %.3f ms over %d\n", argv[2], gap_ms,
           total / runs, worst, runs);
    return 0;
}
