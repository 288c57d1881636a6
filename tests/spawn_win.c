/*
 * spawn_win.c - the test harness's processes on Windows (spawn_os.h):
 * CreateProcess, process handles to wait on, TerminateProcess, a watchdog
 * thread.
 */
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include "spawn_os.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <windows.h>

#include <cmocka.h>

void th_sleep_us(unsigned long us)
{
    /* Sleep has millisecond grain; a pause is never shortened to zero. */
    Sleep((DWORD)((us + 999) / 1000));
}

void th_os_setenv(const char *name, const char *value)
{
    SetEnvironmentVariableA(name, value);
}

void th_os_self_path(char *out, size_t cap, const char *argv0)
{
    (void)argv0;
    GetModuleFileNameA(NULL, out, (DWORD)cap);
}

/* Live children: Windows needs the process handle to wait for one. */
#define MAX_CHILDREN 64
static struct {
    th_pid pid;
    HANDLE process;
} kids[MAX_CHILDREN];
static int kid_count;

static DWORD WINAPI watchdog_main(void *arg)
{
    Sleep((DWORD)(uintptr_t)arg * 1000u);
    fprintf(stderr, "test harness: child %lu hit its watchdog\n", GetCurrentProcessId());
    TerminateProcess(GetCurrentProcess(), 142); /* 128 + SIGALRM */
    return 0;
}

void th_os_start_watchdog(unsigned seconds)
{
    HANDLE t = CreateThread(NULL, 64 * 1024, watchdog_main, (void *)(uintptr_t)seconds,
                            STACK_SIZE_PARAM_IS_A_RESERVATION, NULL);
    if (t)
        CloseHandle(t);
}

th_pid th_spawn_armed(const char *child, const char *arg, unsigned watchdog_s, int point,
                      unsigned long hit)
{
    th_check_word(child);
    th_check_word(arg ? arg : "");
    if (kid_count == MAX_CHILDREN)
        fail_msg("test harness: too many live children");
    char cmd[8192];
    int n = snprintf(cmd, sizeof cmd, "\"%s\" --th-child %s --th-watchdog %u", th_self_path, child,
                     watchdog_s);
    if (arg && *arg)
        n += snprintf(cmd + n, sizeof cmd - (size_t)n, " --th-arg %s", arg);
    if (point >= 0)
        snprintf(cmd + n, sizeof cmd - (size_t)n, " --th-arm %d:%lu", point, hit);
    fflush(NULL);
    STARTUPINFOA si;
    PROCESS_INFORMATION pi;
    memset(&si, 0, sizeof si);
    si.cb = sizeof si;
    /* Wine now and then fails a process start with ERROR_INTERNAL_ERROR
     * (1359) when many were started and killed just before; a start is not
     * what the tests test, so it is tried again a few times. */
    int tries = 0;
    while (!CreateProcessA(NULL, cmd, NULL, NULL, FALSE, 0, NULL, NULL, &si, &pi)) {
        DWORD err = GetLastError();
        if (++tries == 10)
            fail_msg("CreateProcess(%s): error %lu", cmd, err);
        fprintf(stderr, "test harness: CreateProcess: error %lu, trying again\n", err);
        Sleep(100u * (DWORD)tries);
    }
    CloseHandle(pi.hThread);
    kids[kid_count].pid = (th_pid)pi.dwProcessId;
    kids[kid_count].process = pi.hProcess;
    kid_count++;
    return (th_pid)pi.dwProcessId;
}

static int kid_index(th_pid pid)
{
    for (int i = 0; i < kid_count; i++)
        if (kids[i].pid == pid)
            return i;
    fail_msg("test harness: %lld is not a live child", (long long)pid);
    return -1;
}

static th_pid reap(int i, int *status)
{
    DWORD code = 0;
    GetExitCodeProcess(kids[i].process, &code);
    *status = (int)code;
    th_pid pid = kids[i].pid;
    CloseHandle(kids[i].process);
    kids[i] = kids[--kid_count];
    return pid;
}

int th_wait(th_pid pid, int timeout_ms, int *status)
{
    int i = kid_index(pid);
    if (WaitForSingleObject(kids[i].process, (DWORD)timeout_ms) != WAIT_OBJECT_0) {
        TerminateProcess(kids[i].process, TH_KILLED_CODE);
        WaitForSingleObject(kids[i].process, INFINITE);
        reap(i, status);
        return -1;
    }
    reap(i, status);
    return 0;
}

th_pid th_wait_any(int timeout_ms, int *status)
{
    if (kid_count == 0)
        return 0;
    HANDLE handles[MAX_CHILDREN];
    for (int i = 0; i < kid_count; i++)
        handles[i] = kids[i].process;
    DWORD r = WaitForMultipleObjects((DWORD)kid_count, handles, FALSE, (DWORD)timeout_ms);
    if (r < WAIT_OBJECT_0 + (DWORD)kid_count) /* WAIT_OBJECT_0 is 0 */
        return reap((int)(r - WAIT_OBJECT_0), status);
    return 0;
}

int th_poll(th_pid pid, int *status)
{
    int i = kid_index(pid);
    if (WaitForSingleObject(kids[i].process, 0) != WAIT_OBJECT_0)
        return 0;
    reap(i, status);
    return 1;
}

void th_kill(th_pid pid)
{
    TerminateProcess(kids[kid_index(pid)].process, TH_KILLED_CODE);
}

int th_exited_ok(int status)
{
    return status == 0;
}

int th_was_killed(int status)
{
    return status == TH_KILLED_CODE;
}
