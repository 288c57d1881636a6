/*
 * bridge_report.c - parsing an rq-bridge status file found beside a queue.
 * The file is untrusted (a bridge killed mid-way cannot leave a half file,
 * it is renamed into place, but any writer of the directory can put any
 * bytes there): bounded by the caller, parsed by jansson with duplicates
 * refused, and every field checked for its type and range.
 */
#include <string.h>

#include "bridge_report.h"

static const char *const states[] = {"connecting", "running", "disconnected", "parked", "stopped"};

/* A non-negative integer member KEY of O into *V: 0, or -1. */
static int get_count(json_t *o, const char *key, uint64_t *v)
{
    json_t *m = json_object_get(o, key);
    if (!json_is_integer(m) || json_integer_value(m) < 0)
        return -1;
    *v = (uint64_t)json_integer_value(m);
    return 0;
}

/* A string member KEY of O, at most CAP - 1 bytes and no NUL, into BUF. */
static int get_string(json_t *o, const char *key, char *buf, size_t cap)
{
    json_t *m = json_object_get(o, key);
    if (!json_is_string(m) || json_string_length(m) >= cap ||
        strlen(json_string_value(m)) != json_string_length(m))
        return -1;
    memcpy(buf, json_string_value(m), json_string_length(m) + 1);
    return 0;
}

static int known_state(const char *state)
{
    for (size_t i = 0; i < sizeof states / sizeof states[0]; i++)
        if (strcmp(state, states[i]) == 0)
            return 1;
    return 0;
}

/* The checks of a parsed object O: NULL, or what is wrong. */
static const char *check(json_t *o, const char *direction, struct rqctl_bridge_report *r)
{
    char dir[8];
    uint64_t pid;
    if (!json_is_object(o))
        return "not a JSON object";
    if (get_string(o, "direction", dir, sizeof dir) != 0 || strcmp(dir, direction) != 0)
        return "its direction is missing or is not the one in its name";
    if (get_string(o, "state", r->state, sizeof r->state) != 0 || !known_state(r->state))
        return "its state is missing or unknown";
    if (get_count(o, "pid", &pid) != 0 || pid == 0 || pid > INT32_MAX)
        return "its pid is missing or out of range";
    r->pid = (long long)pid;
    if (get_count(o, "messages", &r->messages) != 0 || get_count(o, "lag", &r->lag) != 0 ||
        get_count(o, "errors", &r->errors) != 0)
        return "a count (messages, lag, errors) is missing or not a whole number >= 0";
    if (get_string(o, "last_error", r->last_error, sizeof r->last_error) != 0)
        return "its last error is missing, too long or not a string";
    return NULL;
}

int rqctl_bridge_parse(const char *text, size_t len, const char *direction,
                       struct rqctl_bridge_report *r, const char **why)
{
    memset(r, 0, sizeof *r);
    json_error_t err;
    json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
    *why = o ? check(o, direction, r) : "not JSON (truncated or garbled)";
    json_decref(o);
    if (*why)
        memset(r, 0, sizeof *r);
    return *why ? -1 : 0;
}
