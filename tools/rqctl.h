/*
 * rqctl.h - what the rqctl commands share: exit codes, error reporting,
 * argument parsing.  The commands use only the public API (rq.h).
 */
#ifndef RQCTL_H
#define RQCTL_H

#include <stddef.h>
#include <stdint.h>

/* Exit codes, one per kind of failure a script may want to tell apart
 * (docs/rqctl.md lists them). */
enum rqctl_exit {
    RQCTL_OK = 0,
    RQCTL_FAILED = 1,    /* an OS call failed, I/O error, unsupported */
    RQCTL_USAGE = 2,     /* bad command line, bad name */
    RQCTL_NOENT = 3,     /* no such queue / coalescing object */
    RQCTL_CORRUPT = 4,   /* corrupt segment, or made by an incompatible rq */
    RQCTL_BUSY = 5,      /* the role is held by another live process */
    RQCTL_TIMEOUT = 6,   /* timed out: queue empty (pop) or full (push) */
    RQCTL_EXISTS = 7,    /* exists with another geometry (create) */
    RQCTL_MSGSIZE = 8,   /* a message does not fit the slot size (push) */
    RQCTL_OWNER = 9,     /* owned by another user, or mode wider than asked */
    RQCTL_ATTACHED = 10, /* unlink refused: a role is held (no --force) */
    RQCTL_UNLINKED = 11, /* the queue was unlinked while in use (RQ_EUNLINKED) */
    RQCTL_LOCKED = 12    /* push: another producer held the MPSC lock (RQ_ELOCKED) */
    /* 128 + N: stopped by signal N (SIGINT, SIGTERM), as a shell reports */
};

/* How long an open waits for a queue's init lock when no --timeout says
 * otherwise: a creator that is stopped costs this, then exit 6. */
#define RQCTL_OPEN_TIMEOUT_MS 3000

/* The two object families rqctl handles. */
enum rqctl_kind { KIND_QUEUE, KIND_COALESCE };

/* The exit code for an rq_error. */
int rqctl_exit_for(int rc);

/* Prints "rqctl CMD: KIND 'NAME': <why>" for rq_error RC (errno's text for
 * RQ_ESYS) and returns the exit code for RC.  NAME may be NULL. */
int rqctl_fail(const char *cmd, enum rqctl_kind kind, const char *name, int rc);

/* printf-style message "rqctl CMD: ..." on stderr; returns CODE. */
int rqctl_error(int code, const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* NAME with every byte outside printable ASCII (and the backslash) written
 * as \xNN, so a hostile name can neither garble a terminal nor a JSON
 * string.  Writes into BUF (at least 4 * strlen(NAME) + 1 bytes, or it is
 * cut short). */
const char *rqctl_shown(const char *name, char *buf, size_t cap);
#define RQCTL_SHOWN_MAX (4 * 255 + 1)

/* Checks NAME for command CMD: returns RQCTL_OK, or prints why not and
 * returns RQCTL_USAGE. */
int rqctl_check_name(const char *cmd, const char *name);

/* Option values.  Each prints a usage error and returns -1 on bad input. */
int rqctl_parse_u32(const char *cmd, const char *opt, const char *text, uint32_t min, uint32_t max,
                    uint32_t *out);
/* Seconds as a decimal ("0.25", "3"): *MS in milliseconds, rounded up. */
int rqctl_parse_seconds(const char *cmd, const char *opt, const char *text, int *ms);

/* Short usage line for CMD and a pointer to --help; returns RQCTL_USAGE. */
int rqctl_usage_error(const char *cmd, const char *usage);

/* The commands: argv[0] is the command name. */
int rqctl_cmd_create(int argc, char **argv);
int rqctl_cmd_unlink(int argc, char **argv);
int rqctl_cmd_list(int argc, char **argv);
int rqctl_cmd_stat(int argc, char **argv);
int rqctl_cmd_push(int argc, char **argv);
int rqctl_cmd_pop(int argc, char **argv);
int rqctl_cmd_request(int argc, char **argv);
int rqctl_cmd_dump(int argc, char **argv);

/* SIGINT and SIGTERM end the command cleanly: the handler records the
 * signal and calls rq_interrupt(Q) (Q may be NULL), so a wait of Q returns
 * RQ_EINTR at once and the command closes Q and exits 128 + the signal.
 * Installed without SA_RESTART, so a blocked read or sleep ends too. */
struct rq;
void rqctl_stop_on_signals(struct rq *q);
/* The signal that asked to stop, or 0. */
int rqctl_stop_signal(void);
/* Prints "rqctl CMD: stopped by SIGxxx<what>" and returns 128 + signal. */
int rqctl_stopped(const char *cmd, const char *what);

/* --wait[=SECONDS]: *MS gets RQ_INFINITE without a value, else the
 * seconds in milliseconds.  -1 (a usage error printed) on bad input. */
int rqctl_parse_wait(const char *cmd, const char *text, int *ms);

/* "producer" / "consumer" holder description after RQ_EBUSY: prints which
 * live process holds ROLE of queue NAME, if that can be told. */
void rqctl_explain_busy(const char *cmd, const char *name, int role);

#endif /* RQCTL_H */
