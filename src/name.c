/*
 * name.c - queue-name validation.
 */
#include "rq.h"

int rq_name_valid(const char *name)
{
    if (!name)
        return 0;
    int len = 0;
    for (const char *p = name; *p; p++, len++) {
        char c = *p;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == '-';
        if (!ok || len >= RQ_NAME_MAX)
            return 0;
    }
    return len > 0;
}
