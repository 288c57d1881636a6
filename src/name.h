/*
 * name.h - queue-name rules shared by every rq object family.
 */
#ifndef RQ_NAME_H
#define RQ_NAME_H

/* 1 if NAME is 1..RQ_NAME_MAX characters of [A-Za-z0-9._-], else 0.  The
 * rule keeps names portable (POSIX shm and Win32 object namespaces) and
 * free of path separators. */
int rq_name_valid(const char *name);

#endif /* RQ_NAME_H */
