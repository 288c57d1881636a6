/*
 * objects.h - finding every rq object on this machine, for 'rqctl list'.
 *
 * rq's API opens objects by name and has no way to enumerate them; where
 * the OS keeps shared-memory objects as files (Linux: /dev/shm) they can be
 * read from there.  One file per OS: objects_linux.c, objects_none.c.
 */
#ifndef RQCTL_OBJECTS_H
#define RQCTL_OBJECTS_H

#include <stddef.h>

#include "rqctl.h"

struct rqctl_object {
    enum rqctl_kind kind;
    char *name; /* as found: not necessarily a valid rq name */
};

/* Every queue ("rq.NAME") and coalescing object ("rqc.NAME"), sorted by
 * kind, then name.  0 on success; -1 with errno set on failure, ENOSYS
 * where this OS offers no way to list them. */
int rqctl_objects_list(struct rqctl_object **out, size_t *count);
void rqctl_objects_free(struct rqctl_object *objects, size_t count);

/* Who owns object NAME of KIND and its lock object, for messages: e.g.
 * "owned by nobody (uid 65534), mode 0666".  Writes into BUF; returns BUF,
 * or NULL where this cannot be told. */
const char *rqctl_objects_owner(enum rqctl_kind kind, const char *name, char *buf, size_t cap);

/* What the OS tells of object NAME of KIND to anyone, as ipcs shows it:
 * owner, permission bits and size, whether or not the caller may read it. */
struct rqctl_object_info {
    unsigned long uid;
    char user[64]; /* the owner's user name, or "?" */
    unsigned mode; /* permission bits, 0..0777 */
    unsigned long long bytes;
};

/* 0 and *INFO filled, or -1 with errno set (ENOSYS where this OS cannot
 * tell; ENOENT if there is no such object). */
int rqctl_objects_info(enum rqctl_kind kind, const char *name, struct rqctl_object_info *info);

/* 1 if process PID exists, 0 if not, -1 if that cannot be told here. */
int rqctl_pid_alive(long long pid);

/* A status file rq-bridge wrote beside queue QUEUE (/dev/shm/rqb.DIR.PID.
 * QUEUE, tools/bridge/report.c), as found: its contents are untrusted. */
#define RQCTL_BRIDGE_FILE_MAX 4096 /* bytes read of one; more: too_long */
#define RQCTL_BRIDGE_FILES_MAX 16  /* files looked at per queue */
struct rqctl_bridge_file {
    char direction[4]; /* "out" or "in", from the file's name */
    long long pid;     /* from the file's name */
    unsigned long uid; /* the file's owner */
    double age;        /* seconds since it was last written */
    int too_long;      /* longer than RQCTL_BRIDGE_FILE_MAX: not read */
    int unreadable;    /* not a regular file, or could not be read: errno */
    size_t len;
    char text[RQCTL_BRIDGE_FILE_MAX];
};

/* The bridges' files of QUEUE, by direction then pid, at most
 * RQCTL_BRIDGE_FILES_MAX.  The directory is writable by anyone, so when
 * more are there, files owned by OWNER (the queue's owner; -1: unknown)
 * take the places of others', which a local user could otherwise plant to
 * hide the real ones; *MORE counts the files not kept.  0 (*OUT NULL when
 * none), or -1 with errno set (ENOSYS where this OS keeps no such files). */
int rqctl_bridge_files(const char *queue, long long owner, struct rqctl_bridge_file **out,
                       size_t *count, size_t *more);
/* Removes them (and their temporary files), for 'rqctl unlink'; those of
 * another user stay (the directory is sticky).  How many were removed. */
int rqctl_bridge_files_remove(const char *queue);

/* Where the objects are looked for, for messages ("/dev/shm"). */
extern const char rqctl_objects_where[];

#endif /* RQCTL_OBJECTS_H */
