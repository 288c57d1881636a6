/*
 * error.c - rq_strerror / rq_errname from the one table in rq.h.
 */
#include "rq.h"

const char *rq_strerror(int err)
{
    switch (err) {
    case RQ_OK:
        return "success";
#define RQ_STRERROR_CASE_(name, value, text) \
    case RQ_##name:                          \
        return text;
        RQ_ERRNO_MAP(RQ_STRERROR_CASE_)
#undef RQ_STRERROR_CASE_
    default:
        return "unknown rq error";
    }
}

const char *rq_errname(int err)
{
    switch (err) {
    case RQ_OK:
        return "RQ_OK";
#define RQ_ERRNAME_CASE_(name, value, text) \
    case RQ_##name:                         \
        return "RQ_" #name;
        RQ_ERRNO_MAP(RQ_ERRNAME_CASE_)
#undef RQ_ERRNAME_CASE_
    default:
        return "RQ_UNKNOWN";
    }
}
