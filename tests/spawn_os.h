/*
 * spawn_os.h - the OS-specific half of the test harness's process handling,
 * one file per OS as in src/ (spawn_posix.c, spawn_win.c).  Besides these,
 * each file defines helpers.h's th_spawn_armed, th_wait, th_wait_any,
 * th_poll, th_kill, th_exited_ok, th_was_killed and th_sleep_us.
 */
#ifndef RQ_TEST_SPAWN_OS_H
#define RQ_TEST_SPAWN_OS_H

#include <stddef.h>

#include "helpers.h"

/* This test program's own path, to start children from (set by th_init). */
#define TH_SELF_PATH_MAX 4096
extern char th_self_path[TH_SELF_PATH_MAX];

/* Fails the test unless S is one plain word (arguments travel on a
 * command line). */
void th_check_word(const char *s);

/* Ends this (child) process after SECONDS with a status that is neither
 * "exited ok" nor "killed". */
void th_os_start_watchdog(unsigned seconds);
/* Sets an environment variable the children inherit. */
void th_os_setenv(const char *name, const char *value);
/* This program's path into OUT (CAP bytes); ARGV0 if the OS cannot tell. */
void th_os_self_path(char *out, size_t cap, const char *argv0);

#endif /* RQ_TEST_SPAWN_OS_H */
