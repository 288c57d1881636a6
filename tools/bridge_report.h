/*
 * bridge_report.h - what 'rqctl stat' shows of the rq-bridge processes
 * attached to a queue: their status files beside the queue, read by
 * objects_*.c, parsed here without trusting a byte (anyone who may write
 * the directory may forge one), shown as text or JSON.
 */
#ifndef RQCTL_BRIDGE_REPORT_H
#define RQCTL_BRIDGE_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* One bridge's own report, checked field by field. */
struct rqctl_bridge_report {
    char state[16]; /* connecting, running, disconnected, parked, stopped */
    long long pid;
    uint64_t messages, lag, errors;
    char last_error[512];
};

/* Parses LEN bytes of TEXT, the status file of a bridge of DIRECTION:
 * 0 and *R filled, or -1 and *WHY (a static string) saying what is wrong:
 * not JSON, a field missing or of the wrong type or out of range, another
 * direction, an unknown state.  Never reads past TEXT + LEN. */
int rqctl_bridge_parse(const char *text, size_t len, const char *direction,
                       struct rqctl_bridge_report *r, const char **why);

/* 'rqctl stat': the bridges of QUEUE as text lines (nothing when there are
 * none), or as a JSON array (NULL when out of memory). */
void rqctl_bridges_text(const char *queue);
json_t *rqctl_bridges_json(const char *queue);

#endif /* RQCTL_BRIDGE_REPORT_H */
