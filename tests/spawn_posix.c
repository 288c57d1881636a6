/*
 * spawn_posix.c - the test harness's processes on Linux (spawn_os.h):
 * posix_spawn, waitpid, SIGKILL, alarm as the watchdog.
 */
#define _GNU_SOURCE
#include "spawn_os.h"

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

extern char **environ;

void th_sleep_us(unsigned long us)
{
    struct timespec ts = {(time_t)(us / 1000000u), (long)(us % 1000000u) * 1000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

void th_os_setenv(const char *name, const char *value)
{
    setenv(name, value, 1);
}

void th_os_self_path(char *out, size_t cap, const char *argv0)
{
    ssize_t n = readlink("/proc/self/exe", out, cap - 1);
    if (n <= 0)
        snprintf(out, cap, "%s", argv0);
    else
        out[n] = '\0';
}

void th_os_start_watchdog(unsigned seconds)
{
    alarm(seconds); /* SIGALRM: a status that is neither ok nor "killed" */
}

th_pid th_spawn_armed(const char *child, const char *arg, unsigned watchdog_s, int point,
                      unsigned long hit)
{
    th_check_word(child);
    th_check_word(arg ? arg : "");
    char watchdog[16], arm[48];
    snprintf(watchdog, sizeof watchdog, "%u", watchdog_s);
    snprintf(arm, sizeof arm, "%d:%lu", point, hit);
    char *argv[12];
    int n = 0;
    argv[n++] = th_self_path;
    argv[n++] = "--th-child";
    argv[n++] = (char *)child;
    argv[n++] = "--th-watchdog";
    argv[n++] = watchdog;
    if (arg && *arg) {
        argv[n++] = "--th-arg";
        argv[n++] = (char *)arg;
    }
    if (point >= 0) {
        argv[n++] = "--th-arm";
        argv[n++] = arm;
    }
    argv[n] = NULL;
    fflush(NULL);
    pid_t pid;
    int err = posix_spawn(&pid, th_self_path, NULL, NULL, argv, environ);
    if (err != 0)
        fail_msg("posix_spawn(%s): %s", th_self_path, strerror(err));
    return (th_pid)pid;
}

int th_wait(th_pid pid, int timeout_ms, int *status)
{
    uint64_t until = th_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        pid_t r = waitpid((pid_t)pid, status, WNOHANG);
        if (r == (pid_t)pid)
            return 0;
        if (r < 0 && errno != EINTR)
            return -1;
        if (th_now_ms() >= until) {
            kill((pid_t)pid, SIGKILL);
            waitpid((pid_t)pid, status, 0);
            return -1;
        }
        th_sleep_us(200);
    }
}

th_pid th_wait_any(int timeout_ms, int *status)
{
    uint64_t until = th_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        pid_t r = waitpid(-1, status, WNOHANG);
        if (r > 0)
            return (th_pid)r;
        if (r < 0 && errno != EINTR)
            return 0; /* no children at all */
        if (th_now_ms() >= until)
            return 0;
        th_sleep_us(200);
    }
}

int th_poll(th_pid pid, int *status)
{
    return waitpid((pid_t)pid, status, WNOHANG) == (pid_t)pid;
}

void th_kill(th_pid pid)
{
    kill((pid_t)pid, SIGKILL);
}

int th_exited_ok(int status)
{
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

int th_was_killed(int status)
{
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
}
