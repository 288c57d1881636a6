/*
 * platform_win.c - rq's platform layer on Windows (built with mingw-w64,
 * tested under Wine; docs/design.md section 7 has the reasoning).
 *
 *  segment   pagefile-backed named file mapping "Local\<kind>.<name>",
 *            created (with its final size) by rq_plat_segment_resize under
 *            the init lock; it lives while any process holds a handle or view
 *  locks     named mutexes "Local\<kind>.<name>.init|.producer|.consumer";
 *            WAIT_ABANDONED (the holder died) is an acquisition.  A role
 *            mutex is owned by a per-handle keeper thread, so the role
 *            follows the handle, not the thread that opened it
 *  shared    shared role holders (MPSC producers, requesters) each hold the
 *            named event "...<lock>.shared": it exists iff one is alive
 *  wait/wake manual-reset named events keyed by the word and the value the
 *            waiter expects: "...ev.<offset>.<value>".  The waker changes
 *            the word first and then sets the events of the values it moved
 *            the word away from, so every waiter that could have seen an old
 *            value is released, and none can sleep through a change
 *  mutex     the MPSC producers' lock: named mutex "...mpsc", thread-owned
 *  slots     each MPSC producer handle holds the named mutex "...pslot.<i>"
 *            of the first free i, on a keeper thread, for the handle's life
 */
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include "platform.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>
#include <windows.h>
#include <aclapi.h>
#include <sddl.h>

/* How Windows reports a failed call's error, for the fault gate (fault.h). */
#define RQ_OS_ERROR_SET(e) SetLastError((DWORD)(e))
#define RQ_OS_ERROR() GetLastError()
#include "fault.h"
#include "layout.h"
#include "rq.h"

/* The Win32 calls that can fail, each made through a gate so that a test
 * build can fail any one of them (fault.h).  Without RQ_FAULT_INJECTION
 * the gates are the bare calls. */
/* clang-format off */
#define FAULT_CALLS(XX)                                                        \
    XX(OPEN_FILE_MAPPING, "OpenFileMappingW")                                  \
    XX(CREATE_FILE_MAPPING, "CreateFileMappingW")                              \
    XX(MAP_VIEW, "MapViewOfFile")                                              \
    XX(VIRTUAL_QUERY, "VirtualQuery")                                          \
    XX(CREATE_MUTEX, "CreateMutexW")                                           \
    XX(OPEN_MUTEX, "OpenMutexW")                                               \
    XX(CREATE_EVENT, "CreateEventW")                                           \
    XX(OPEN_EVENT, "OpenEventW")                                               \
    XX(SET_EVENT, "SetEvent")                                                  \
    XX(CREATE_THREAD, "CreateThread")                                          \
    XX(WAIT, "WaitForSingleObject")                                            \
    XX(OPEN_PROCESS_TOKEN, "OpenProcessToken")                                 \
    XX(GET_TOKEN_INFORMATION, "GetTokenInformation")                           \
    XX(GET_SECURITY_INFO, "GetSecurityInfo")                                   \
    XX(SID_TO_STRING, "ConvertSidToStringSidW")                                \
    XX(MAKE_SECURITY_DESCRIPTOR, "ConvertStringSecurityDescriptorToSecurityDescriptorW")
/* clang-format on */

RQ_FAULT_TABLE(FAULT_CALLS);

/* "Local\" kind "." name suffix: kind <= 8, name <= RQ_NAME_MAX, the
 * longest suffix is ".ev.<10 digits>.<10 digits>".  Kernel object names
 * may be up to MAX_PATH characters. */
#define OBJECT_NAME_MAX 260
#define BASE_NAME_MAX (OBJECT_NAME_MAX - 32)

/* How many values below the word's current one a waker releases (see
 * rq_plat_wake): one per signaller that may have moved the word at the
 * same moment. */
#define WAKE_VALUES 8u

#define LOCK_IDS 3

/* rq_plat_lock_probe can tell whether a mutex is owned only by trying to
 * take it (WaitForSingleObject with 0), which holds it for a moment.  A
 * role is therefore tried for up to this long, far beyond any probe, so a
 * probe never turns a free role into RQ_EBUSY.  A real RQ_EBUSY costs this
 * much on Windows. */
#define ROLE_TRY_MS 100

/* Holds one role mutex for one handle, on a thread of its own, from
 * rq_plat_lock until rq_plat_unlock (or the process's death). */
struct role_keeper {
    HANDLE mutex;
    HANDLE thread;
    HANDLE acquired;       /* set by the keeper once it knows the outcome */
    HANDLE release;        /* set by the handle to give the role up */
    volatile LONG outcome; /* 1 owned, 0 busy, -1 failed (error in err) */
    DWORD err;
};

struct rq_plat_segment {
    wchar_t base[BASE_NAME_MAX]; /* "Local\kind.name" */
    uint32_t mode;               /* permission bits the objects are made with */
    unsigned flags;              /* rq_plat_open_flags of the open */
    HANDLE mapping;              /* NULL until the object exists */
    HANDLE init_mutex;
    HANDLE mpsc_mutex;
    struct role_keeper *keeper[LOCK_IDS];
    HANDLE shared[LOCK_IDS];  /* shared holds: the presence event */
    int mpsc_held;            /* this handle holds the MPSC mutex */
    struct role_keeper *slot; /* this MPSC producer handle's slot, or NULL */
    HANDLE interrupt;         /* rq_plat_interrupt: manual-reset, unnamed */
    unsigned char *view;      /* the last view mapped through this handle */
    uint64_t view_size;
    HANDLE poll[2]; /* the poll events (rq_plat_poll_side), or NULL */
};

/* ---- names ------------------------------------------------------------- */

static int base_name(wchar_t *out, const char *kind, const char *name)
{
    int n = swprintf(out, BASE_NAME_MAX, L"Local\\%hs.%hs", kind, name);
    return (n > 0 && n < BASE_NAME_MAX) ? RQ_OK : RQ_EINVAL;
}

static void object_name(wchar_t *out, const rq_plat_segment *seg, const wchar_t *suffix)
{
    swprintf(out, OBJECT_NAME_MAX, L"%ls%ls", seg->base, suffix);
}

static const wchar_t *const lock_suffix[LOCK_IDS] = {L".init", L".producer", L".consumer"};

/* ---- ownership ------------------------------------------------------------ */

/* SID number WHICH (TokenUser, TokenOwner) of this process's token, copied
 * into BUF.  The user is who we are; the owner is who owns what we make
 * (an elevated administrator's objects belong to the Administrators
 * group). */
static int token_sid(TOKEN_INFORMATION_CLASS which, unsigned char *buf, DWORD cap, PSID *sid)
{
    HANDLE tok;
    if (!RQ_SYS(OPEN_PROCESS_TOKEN, OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &tok),
                FALSE))
        return RQ_ESYS;
    DWORD len;
    BOOL ok = RQ_SYS(GET_TOKEN_INFORMATION, GetTokenInformation(tok, which, buf, cap, &len), FALSE);
    DWORD err = GetLastError();
    CloseHandle(tok);
    if (!ok) {
        SetLastError(err);
        return RQ_ESYS;
    }
    /* TOKEN_USER and TOKEN_OWNER both start with the SID pointer. */
    *sid = which == TokenUser ? ((TOKEN_USER *)buf)->User.Sid : ((TOKEN_OWNER *)buf)->Owner;
    return RQ_OK;
}

/* The owner check of platform.h for an existing object H: its owner must
 * be this process's user or default owner, or the system or the
 * Administrators group (Windows' root).  The mode check is not made here:
 * a DACL has no single "wider than" order with the POSIX bits. */
static int owner_check(HANDLE h, unsigned flags)
{
    if (!(flags & RQ_PLAT_CHECKED) || (flags & RQ_PLAT_ANY_OWNER))
        return RQ_OK;
    PSID owner = NULL;
    PSECURITY_DESCRIPTOR sd = NULL;
    DWORD err = RQ_SYS_RET(GET_SECURITY_INFO,
                           GetSecurityInfo(h, SE_KERNEL_OBJECT, OWNER_SECURITY_INFORMATION, &owner,
                                           NULL, NULL, NULL, &sd));
    if (err != ERROR_SUCCESS) {
        SetLastError(err);
        return RQ_ESYS;
    }
    unsigned char ubuf[256], obuf[256];
    PSID user, deflt;
    int rc = token_sid(TokenUser, ubuf, sizeof ubuf, &user);
    if (rc == RQ_OK)
        rc = token_sid(TokenOwner, obuf, sizeof obuf, &deflt);
    if (rc == RQ_OK && !(owner && (EqualSid(owner, user) || EqualSid(owner, deflt) ||
                                   IsWellKnownSid(owner, WinLocalSystemSid) ||
                                   IsWellKnownSid(owner, WinBuiltinAdministratorsSid))))
        rc = RQ_EOWNER;
    err = GetLastError();
    LocalFree(sd);
    SetLastError(err);
    return rc;
}

/* A security descriptor for the objects of a new segment, as MODE asks:
 * this user only (0600), plus read or read-write for everyone when the
 * group or other bits give it.  Freed with LocalFree. */
static int make_descriptor(uint32_t mode, PSECURITY_DESCRIPTOR *sd)
{
    unsigned char ubuf[256];
    PSID user;
    int rc = token_sid(TokenUser, ubuf, sizeof ubuf, &user);
    if (rc < 0)
        return rc;
    wchar_t *user_text;
    if (!RQ_SYS(SID_TO_STRING, ConvertSidToStringSidW(user, &user_text), FALSE))
        return RQ_ESYS;
    wchar_t sddl[256];
    const wchar_t *everyone = (mode & 0022)   ? L"(A;;GA;;;WD)"
                              : (mode & 0044) ? L"(A;;GR;;;WD)"
                                              : L"";
    swprintf(sddl, 256, L"D:P(A;;GA;;;%ls)%ls", user_text, everyone);
    LocalFree(user_text);
    if (!RQ_SYS(
            MAKE_SECURITY_DESCRIPTOR,
            ConvertStringSecurityDescriptorToSecurityDescriptorW(sddl, SDDL_REVISION_1, sd, NULL),
            FALSE))
        return RQ_ESYS;
    return RQ_OK;
}

/* CreateMutexW with the segment's descriptor; an existing mutex is
 * owner-checked as the mapping is.  NULL with the error set, or the
 * handle; *RC is RQ_EOWNER for a foreign one. */
static HANDLE create_mutex_checked(rq_plat_segment *seg, const wchar_t *name, int *rc)
{
    PSECURITY_DESCRIPTOR sd = NULL;
    *rc = make_descriptor(seg->mode, &sd);
    if (*rc < 0)
        return NULL;
    SECURITY_ATTRIBUTES sa = {sizeof sa, sd, FALSE};
    HANDLE m = RQ_SYS(CREATE_MUTEX, CreateMutexW(&sa, FALSE, name), NULL);
    DWORD err = GetLastError();
    LocalFree(sd);
    if (m && err == ERROR_ALREADY_EXISTS) {
        *rc = owner_check(m, seg->flags);
        if (*rc < 0) {
            err = GetLastError();
            CloseHandle(m);
            SetLastError(err);
            return NULL;
        }
    }
    *rc = m ? RQ_OK : RQ_ESYS;
    SetLastError(err);
    return m;
}

/* ---- segment ------------------------------------------------------------- */

/* READ_CONTROL: the owner check reads the mapping's security descriptor. */
static HANDLE open_mapping(const wchar_t *name)
{
    return RQ_SYS(OPEN_FILE_MAPPING,
                  OpenFileMappingW(FILE_MAP_READ | FILE_MAP_WRITE | READ_CONTROL, FALSE, name),
                  NULL);
}

/* Opens SEG's mapping if it exists, its owner checked; else, if FLAGS
 * allow, marks it to be made (*CREATED).  On failure nothing is left open
 * and the error is the last one set. */
static int segment_find(rq_plat_segment *seg, unsigned flags, int *created)
{
    seg->mapping = open_mapping(seg->base);
    if (seg->mapping) {
        int rc = owner_check(seg->mapping, flags);
        if (rc < 0) {
            DWORD err = GetLastError();
            CloseHandle(seg->mapping);
            seg->mapping = NULL;
            SetLastError(err);
        }
        return rc;
    }
    if (GetLastError() != ERROR_FILE_NOT_FOUND)
        return RQ_ESYS;
    if (!(flags & RQ_PLAT_CREATE))
        return RQ_ENOENT;
    /* A mapping's size is fixed when it is made: it is made by
     * rq_plat_segment_resize, under the init lock. */
    *created = 1;
    return RQ_OK;
}

/* The handle's own objects: the segment's mutexes and the interrupt
 * event.  On failure the caller closes SEG (the error is the last set). */
static int segment_handles(rq_plat_segment *seg)
{
    /* Every handle holds the segment's mutexes open, so that their state
     * (owned, abandoned) lives as long as the segment does: a named object
     * goes with its last handle, and a mutex abandoned by the only process
     * that had it open would vanish instead of telling the next locker. */
    int rc = RQ_OK;
    wchar_t lock_name[OBJECT_NAME_MAX];
    object_name(lock_name, seg, lock_suffix[RQ_LOCK_INIT]);
    seg->init_mutex = create_mutex_checked(seg, lock_name, &rc);
    object_name(lock_name, seg, L".mpsc");
    if (seg->init_mutex)
        seg->mpsc_mutex = create_mutex_checked(seg, lock_name, &rc);
    if (!seg->init_mutex || !seg->mpsc_mutex)
        return rc;
    /* Unnamed: only this handle's waits watch it. */
    seg->interrupt = RQ_SYS(CREATE_EVENT, CreateEventW(NULL, TRUE, FALSE, NULL), NULL);
    return seg->interrupt ? RQ_OK : RQ_ESYS;
}

int rq_plat_segment_open(rq_plat_segment **out, const char *kind, const char *name, unsigned flags,
                         uint32_t mode, int *created)
{
    *created = 0;
    rq_plat_segment *seg = calloc(1, sizeof *seg);
    if (!seg) {
        SetLastError(ERROR_NOT_ENOUGH_MEMORY);
        return RQ_ESYS;
    }
    seg->mode = mode ? mode : 0600;
    seg->flags = flags;
    int rc = base_name(seg->base, kind, name);
    if (rc == RQ_OK)
        rc = segment_find(seg, flags, created);
    if (rc < 0) {
        DWORD err = GetLastError();
        free(seg);
        SetLastError(err);
        return rc;
    }
    rc = segment_handles(seg);
    if (rc < 0) {
        DWORD err = GetLastError();
        rq_plat_segment_close(seg);
        SetLastError(err);
        return rc;
    }
    *out = seg;
    return RQ_OK;
}

/* The object may have been made by another opener since we looked.
 * RQ_OK with seg->mapping NULL only if it really does not exist: taking
 * any other failure for "not made yet" would have us make it again over
 * a live queue. */
static int adopt_mapping(rq_plat_segment *seg)
{
    if (seg->mapping)
        return RQ_OK;
    seg->mapping = open_mapping(seg->base);
    if (!seg->mapping)
        return GetLastError() == ERROR_FILE_NOT_FOUND ? RQ_OK : RQ_ESYS;
    int rc = owner_check(seg->mapping, seg->flags);
    if (rc < 0) {
        DWORD err = GetLastError();
        CloseHandle(seg->mapping);
        seg->mapping = NULL;
        SetLastError(err);
    }
    return rc;
}

/* A mapping's size, rounded up to whole pages: what a view of it spans. */
static int mapping_size(HANDLE mapping, uint64_t *size)
{
    void *view = RQ_SYS(MAP_VIEW, MapViewOfFile(mapping, FILE_MAP_READ, 0, 0, 0), NULL);
    if (!view)
        return RQ_ESYS;
    MEMORY_BASIC_INFORMATION mbi;
    SIZE_T got = RQ_SYS(VIRTUAL_QUERY, VirtualQuery(view, &mbi, sizeof mbi), 0);
    DWORD err = GetLastError();
    UnmapViewOfFile(view);
    if (got == 0) {
        SetLastError(err);
        return RQ_ESYS;
    }
    *size = (uint64_t)mbi.RegionSize;
    return RQ_OK;
}

int rq_plat_segment_size(rq_plat_segment *seg, uint64_t *size)
{
    int adopted = adopt_mapping(seg);
    if (adopted < 0)
        return adopted;
    if (!seg->mapping) {
        *size = 0; /* not made yet: as an empty POSIX object */
        return RQ_OK;
    }
    return mapping_size(seg->mapping, size);
}

int rq_plat_segment_resize(rq_plat_segment *seg, uint64_t size)
{
    int adopted = adopt_mapping(seg);
    if (adopted < 0)
        return adopted;
    if (seg->mapping) {
        /* A half-made object kept alive by another process: its size is
         * fixed, so it can be re-initialised only if it is large enough. */
        uint64_t have;
        int rc = mapping_size(seg->mapping, &have);
        if (rc < 0)
            return rc;
        if (have < size) {
            SetLastError(ERROR_ALREADY_EXISTS);
            return RQ_ESYS;
        }
        return RQ_OK;
    }
    /* SEC_COMMIT charges the whole size against the commit limit now, so an
     * exhausted page file is an error here, never a fault on first touch. */
    PSECURITY_DESCRIPTOR sd = NULL;
    int rc = make_descriptor(seg->mode, &sd);
    if (rc < 0)
        return rc;
    SECURITY_ATTRIBUTES sa = {sizeof sa, sd, FALSE};
    HANDLE h = RQ_SYS(CREATE_FILE_MAPPING,
                      CreateFileMappingW(INVALID_HANDLE_VALUE, &sa, PAGE_READWRITE | SEC_COMMIT,
                                         (DWORD)(size >> 32), (DWORD)size, seg->base),
                      NULL);
    DWORD err = GetLastError();
    LocalFree(sd);
    SetLastError(err);
    if (!h)
        return RQ_ESYS;
    int existed = err == ERROR_ALREADY_EXISTS;
    seg->mapping = h;
    if (existed) { /* made outside the init lock (only a test does that) */
        rc = owner_check(h, seg->flags);
        if (rc < 0) {
            err = GetLastError();
            CloseHandle(h);
            seg->mapping = NULL;
            SetLastError(err);
            return rc;
        }
        return rq_plat_segment_resize(seg, size);
    }
    return RQ_OK;
}

int rq_plat_segment_map(rq_plat_segment *seg, uint64_t size, void **addr)
{
    if (size == 0 || size > (uint64_t)SIZE_MAX) {
        SetLastError(ERROR_INVALID_PARAMETER);
        return RQ_ESYS;
    }
    int adopted = adopt_mapping(seg);
    if (adopted < 0)
        return adopted;
    if (!seg->mapping) {
        SetLastError(ERROR_FILE_NOT_FOUND);
        return RQ_ESYS;
    }
    void *p = RQ_SYS(
        MAP_VIEW, MapViewOfFile(seg->mapping, FILE_MAP_READ | FILE_MAP_WRITE, 0, 0, (SIZE_T)size),
        NULL);
    if (!p)
        return RQ_ESYS;
    seg->view = p;
    seg->view_size = size;
    *addr = p;
    return RQ_OK;
}

void rq_plat_segment_unmap(void *addr, uint64_t size)
{
    (void)size;
    if (addr)
        UnmapViewOfFile(addr);
}

static void keeper_stop(struct role_keeper *k);

void rq_plat_segment_close(rq_plat_segment *seg)
{
    if (!seg)
        return;
    DWORD saved = GetLastError();
    for (int id = 0; id < LOCK_IDS; id++) {
        if (seg->keeper[id])
            keeper_stop(seg->keeper[id]);
        if (seg->shared[id])
            CloseHandle(seg->shared[id]);
    }
    if (seg->slot)
        keeper_stop(seg->slot);
    for (int side = 0; side < 2; side++)
        if (seg->poll[side])
            CloseHandle(seg->poll[side]);
    if (seg->mpsc_mutex)
        CloseHandle(seg->mpsc_mutex);
    if (seg->interrupt)
        CloseHandle(seg->interrupt);
    if (seg->init_mutex)
        CloseHandle(seg->init_mutex);
    if (seg->mapping)
        CloseHandle(seg->mapping);
    free(seg);
    SetLastError(saved);
}

int rq_plat_segment_has_locks(rq_plat_segment *seg)
{
    (void)seg;
    return 1; /* the locks are named mutexes: anyone who may open may lock */
}

int rq_plat_segment_stale(rq_plat_segment *seg)
{
    (void)seg;
    return 0; /* a kernel object's name goes only with its last handle */
}

int rq_plat_segment_locks_stale(rq_plat_segment *seg)
{
    (void)seg; /* named objects cannot be removed while open */
    return 0;
}

int rq_plat_segment_readonly(rq_plat_segment *seg)
{
    (void)seg;
    return 0; /* observers open the mapping as every role does */
}

int rq_plat_segment_orphan_roles(rq_plat_segment *seg)
{
    /* A mapping lives while any handle has it open, so no holder of a
     * role can outlive the object its name names. */
    (void)seg;
    return 0;
}

void rq_plat_segment_discard(rq_plat_segment *seg)
{
    /* Nothing to remove: a mapping this handle made goes when the handle
     * closes, unless another opener holds it (and then it is theirs too). */
    (void)seg;
}

void rq_plat_sleep_ms(int ms)
{
    Sleep((DWORD)ms);
}

int rq_plat_segment_unlink(const char *kind, const char *name)
{
    /* A kernel object's name cannot be removed: it goes with the object's
     * last handle.  So unlink only tells whether there is one to go. */
    wchar_t base[BASE_NAME_MAX];
    int rc = base_name(base, kind, name);
    if (rc < 0)
        return rc;
    HANDLE h = RQ_SYS(OPEN_FILE_MAPPING, OpenFileMappingW(FILE_MAP_READ, FALSE, base), NULL);
    if (!h)
        return GetLastError() == ERROR_FILE_NOT_FOUND ? RQ_ENOENT : RQ_ESYS;
    CloseHandle(h);
    return RQ_OK;
}

/* ---- locks --------------------------------------------------------------- */

static DWORD WINAPI keeper_main(void *arg)
{
    struct role_keeper *k = arg;
    /* The handle's thread waits for k->acquired meanwhile, so this call
     * is counted in the same order every time; the keeper's later calls
     * (the wait for release, ReleaseMutex, the SetEvent that must wake the
     * opener) race with that thread and are not injectable. */
    DWORD r = RQ_SYS(WAIT, WaitForSingleObject(k->mutex, ROLE_TRY_MS), WAIT_FAILED);
    if (r == WAIT_OBJECT_0 || r == WAIT_ABANDONED) {
        InterlockedExchange(&k->outcome, 1);
        SetEvent(k->acquired);
        WaitForSingleObject(k->release, INFINITE);
        ReleaseMutex(k->mutex);
        return 0;
    }
    k->err = r == WAIT_TIMEOUT ? 0 : GetLastError();
    InterlockedExchange(&k->outcome, r == WAIT_TIMEOUT ? 0 : -1);
    SetEvent(k->acquired);
    return 0;
}

static void keeper_free(struct role_keeper *k)
{
    if (k->thread)
        CloseHandle(k->thread);
    if (k->acquired)
        CloseHandle(k->acquired);
    if (k->release)
        CloseHandle(k->release);
    if (k->mutex)
        CloseHandle(k->mutex);
    free(k);
}

/* Gives the role up: the keeper releases the mutex and ends. */
static void keeper_stop(struct role_keeper *k)
{
    SetEvent(k->release);
    WaitForSingleObject(k->thread, INFINITE);
    keeper_free(k);
}

/* RQ_EBUSY with the last error ERROR_BUSY: a lock or slot another holder
 * has (or this handle has already), said as Linux's held lock says it
 * with EAGAIN, and never a stale error of some earlier call. */
static int busy(void)
{
    SetLastError(ERROR_BUSY);
    return RQ_EBUSY;
}

/* Starts K's keeper thread, RUN(ARG), and waits for its outcome: RQ_OK
 * if it holds its mutex (until keeper_stop); otherwise K is freed, and
 * RQ_EBUSY (the mutex, or every slot, is held: the last error ERROR_BUSY)
 * or RQ_ESYS (the last error set).  The handle's thread waits on k->acquired meanwhile, so the
 * keeper's gated calls are counted in the same order every time. */
static int keeper_start(struct role_keeper *k, LPTHREAD_START_ROUTINE run, void *arg)
{
    k->acquired = RQ_SYS(CREATE_EVENT, CreateEventW(NULL, TRUE, FALSE, NULL), NULL);
    if (k->acquired)
        k->release = RQ_SYS(CREATE_EVENT, CreateEventW(NULL, TRUE, FALSE, NULL), NULL);
    if (k->release)
        k->thread = RQ_SYS(
            CREATE_THREAD,
            CreateThread(NULL, 64 * 1024, run, arg, STACK_SIZE_PARAM_IS_A_RESERVATION, NULL), NULL);
    if (!k->thread) {
        DWORD err = GetLastError();
        keeper_free(k);
        SetLastError(err);
        return RQ_ESYS;
    }
    if (RQ_SYS(WAIT, WaitForSingleObject(k->acquired, INFINITE), WAIT_FAILED) != WAIT_OBJECT_0) {
        /* The keeper may yet take its mutex: stop it as a holder. */
        DWORD err = GetLastError();
        keeper_stop(k);
        SetLastError(err);
        return RQ_ESYS;
    }
    LONG outcome = InterlockedCompareExchange(&k->outcome, 0, 0);
    if (outcome != 1) {
        DWORD err = k->err;
        WaitForSingleObject(k->thread, INFINITE);
        keeper_free(k);
        if (outcome == 0)
            return busy(); /* after keeper_free, whose closes may set it */
        SetLastError(err);
        return RQ_ESYS;
    }
    return RQ_OK;
}

static int role_keeper_start(rq_plat_segment *seg, enum rq_plat_lock_id id)
{
    struct role_keeper *k = calloc(1, sizeof *k);
    if (!k) {
        SetLastError(ERROR_NOT_ENOUGH_MEMORY);
        return RQ_ESYS;
    }
    wchar_t lock_name[OBJECT_NAME_MAX];
    object_name(lock_name, seg, lock_suffix[id]);
    k->mutex = RQ_SYS(CREATE_MUTEX, CreateMutexW(NULL, FALSE, lock_name), NULL);
    if (!k->mutex) {
        DWORD err = GetLastError();
        keeper_free(k);
        SetLastError(err);
        return RQ_ESYS;
    }
    int rc = keeper_start(k, keeper_main, k);
    if (rc == RQ_OK)
        seg->keeper[id] = k;
    return rc;
}

/* 1 if the role mutex ID is owned by a live thread (of any process). */
static int mutex_held(rq_plat_segment *seg, enum rq_plat_lock_id id)
{
    wchar_t lock_name[OBJECT_NAME_MAX];
    object_name(lock_name, seg, lock_suffix[id]);
    HANDLE m =
        RQ_SYS(OPEN_MUTEX, OpenMutexW(SYNCHRONIZE | MUTEX_MODIFY_STATE, FALSE, lock_name), NULL);
    if (!m)
        return GetLastError() == ERROR_FILE_NOT_FOUND ? 0 : RQ_ESYS;
    /* Role mutexes are owned only by keeper threads, never by the caller,
     * so a wait of 0 cannot succeed recursively. */
    DWORD r = RQ_SYS(WAIT, WaitForSingleObject(m, 0), WAIT_FAILED);
    DWORD err = GetLastError();
    if (r == WAIT_OBJECT_0 || r == WAIT_ABANDONED)
        ReleaseMutex(m);
    CloseHandle(m);
    SetLastError(err);
    if (r == WAIT_TIMEOUT)
        return 1;
    return (r == WAIT_OBJECT_0 || r == WAIT_ABANDONED) ? 0 : RQ_ESYS;
}

/* The name of lock ID's presence event, "...<lock>.shared": it exists
 * while some handle holds the lock shared. */
static void presence_name(wchar_t *out, const rq_plat_segment *seg, enum rq_plat_lock_id id)
{
    wchar_t suffix[32];
    swprintf(suffix, 32, L"%ls.shared", lock_suffix[id]);
    object_name(out, seg, suffix);
}

/* 1 if some handle holds lock ID shared: its presence event exists. */
static int shared_held(rq_plat_segment *seg, enum rq_plat_lock_id id)
{
    wchar_t ev_name[OBJECT_NAME_MAX];
    presence_name(ev_name, seg, id);
    HANDLE h = RQ_SYS(OPEN_EVENT, OpenEventW(SYNCHRONIZE, FALSE, ev_name), NULL);
    if (!h)
        return GetLastError() == ERROR_FILE_NOT_FOUND ? 0 : RQ_ESYS;
    CloseHandle(h);
    return 1;
}

static int shared_hold(rq_plat_segment *seg, enum rq_plat_lock_id id)
{
    int held = mutex_held(seg, id);
    if (held != 0)
        return held < 0 ? held : busy();
    wchar_t ev_name[OBJECT_NAME_MAX];
    presence_name(ev_name, seg, id);
    HANDLE h = RQ_SYS(CREATE_EVENT, CreateEventW(NULL, TRUE, FALSE, ev_name), NULL);
    if (!h)
        return RQ_ESYS;
    seg->shared[id] = h;
    return RQ_OK;
}

int rq_plat_lock(rq_plat_segment *seg, enum rq_plat_lock_id id, enum rq_plat_lock_mode mode)
{
    if ((int)id < 0 || (int)id >= LOCK_IDS) {
        SetLastError(ERROR_INVALID_PARAMETER);
        return RQ_ESYS;
    }
    if (id == RQ_LOCK_INIT) {
        /* Held only for the length of one open, by the thread that opens. */
        DWORD r =
            RQ_SYS(WAIT, WaitForSingleObject(seg->init_mutex, mode == RQ_LOCK_WAIT ? INFINITE : 0),
                   WAIT_FAILED);
        if (r == WAIT_OBJECT_0 || r == WAIT_ABANDONED)
            return RQ_OK; /* abandoned: the last opener died inside; redone */
        return r == WAIT_TIMEOUT ? busy() : RQ_ESYS;
    }
    if (seg->keeper[id] || seg->shared[id])
        return busy(); /* this handle holds it already */
    if (mode == RQ_LOCK_TRY_SHARED)
        return shared_hold(seg, id);
    int held = shared_held(seg, id);
    if (held != 0)
        return held < 0 ? held : busy();
    /* RQ_LOCK_WAIT is used only for the init lock; roles are tried. */
    return role_keeper_start(seg, id);
}

void rq_plat_unlock(rq_plat_segment *seg, enum rq_plat_lock_id id)
{
    if ((int)id < 0 || (int)id >= LOCK_IDS)
        return;
    DWORD saved = GetLastError();
    if (id == RQ_LOCK_INIT) {
        ReleaseMutex(seg->init_mutex);
    } else if (seg->keeper[id]) {
        keeper_stop(seg->keeper[id]);
        seg->keeper[id] = NULL;
    } else if (seg->shared[id]) {
        CloseHandle(seg->shared[id]);
        seg->shared[id] = NULL;
    }
    SetLastError(saved);
}

int rq_plat_lock_probe(rq_plat_segment *seg, enum rq_plat_lock_id id)
{
    if ((int)id < 0 || (int)id >= LOCK_IDS || id == RQ_LOCK_INIT) {
        SetLastError(ERROR_INVALID_PARAMETER);
        return RQ_ESYS;
    }
    if (seg->keeper[id])
        return 0; /* held exclusively by this handle: by no other */
    int held = mutex_held(seg, id);
    if (held != 0)
        return held;
    /* Shared holders other than this handle: the presence event exists
     * through someone else's handle only if we hold none ourselves. */
    if (seg->shared[id])
        return 0; /* cannot tell others from ourselves; see design.md */
    return shared_held(seg, id);
}

/* ---- wait and wake ------------------------------------------------------- */

/* Where WORD lies in the object: the same in every process. */
static uintptr_t word_offset(rq_plat_segment *seg, rq_atomic_u32 *word)
{
    unsigned char *w = (unsigned char *)word;
    if (seg && seg->view && w >= seg->view && w < seg->view + seg->view_size)
        return (uintptr_t)(w - seg->view);
    MEMORY_BASIC_INFORMATION mbi;
    if (VirtualQuery(word, &mbi, sizeof mbi) != 0)
        return (uintptr_t)(w - (unsigned char *)mbi.AllocationBase);
    return (uintptr_t)w;
}

static void event_name(wchar_t *out, rq_plat_segment *seg, uintptr_t offset, uint32_t value)
{
    wchar_t suffix[40];
    swprintf(suffix, 40, L".ev.%lu.%lu", (unsigned long)offset, (unsigned long)value);
    object_name(out, seg, suffix);
}

/* Waits for OBJ or the handle's interrupt event (WAIT_OBJECT_0 + 1, reset
 * here: the caller's flag, set before the event, says whether it was
 * meant; a stale one just costs one more look). */
static DWORD wait_or_interrupt(rq_plat_segment *seg, HANDLE obj, int timeout_ms)
{
    HANDLE both[2] = {obj, seg->interrupt};
    DWORD r = RQ_SYS(
        WAIT, WaitForMultipleObjects(2, both, FALSE, timeout_ms < 0 ? INFINITE : (DWORD)timeout_ms),
        WAIT_FAILED);
    if (r == WAIT_OBJECT_0 + 1)
        ResetEvent(seg->interrupt);
    return r;
}

void rq_plat_interrupt(rq_plat_segment *seg, rq_atomic_u32 *const *words, int n)
{
    (void)words;
    (void)n;
    if (seg && seg->interrupt) {
        DWORD saved = GetLastError();
        SetEvent(seg->interrupt);
        SetLastError(saved);
    }
}

int rq_plat_wait(rq_plat_segment *seg, rq_atomic_u32 *word, uint32_t expected, int timeout_ms)
{
    if (!seg) { /* the events are named after the segment */
        SetLastError(ERROR_INVALID_PARAMETER);
        return RQ_ESYS;
    }
    if (rq_load_seq_u32(word) != expected)
        return RQ_OK;
    if (timeout_ms == 0)
        return RQ_ETIMEDOUT;
    wchar_t name[OBJECT_NAME_MAX];
    event_name(name, seg, word_offset(seg, word), expected);
    /* Manual-reset: once set, it releases every waiter for this value. */
    HANDLE ev = RQ_SYS(CREATE_EVENT, CreateEventW(NULL, TRUE, FALSE, name), NULL);
    if (!ev)
        return RQ_ESYS;
    /* Checked again after the event exists: a waker that changed the word
     * before this load either is seen here, or finds our event and sets it. */
    int rc = RQ_OK;
    if (rq_load_seq_u32(word) == expected) {
        DWORD r = wait_or_interrupt(seg, ev, timeout_ms);
        if (r == WAIT_TIMEOUT)
            rc = RQ_ETIMEDOUT;
        else if (r != WAIT_OBJECT_0 && r != WAIT_OBJECT_0 + 1)
            rc = RQ_ESYS;
    }
    DWORD saved = GetLastError();
    CloseHandle(ev);
    SetLastError(saved);
    return rc;
}

/* Sets the event of waiters who expect VALUE, if there are any. */
static void release_value(rq_plat_segment *seg, uintptr_t offset, uint32_t value)
{
    wchar_t name[OBJECT_NAME_MAX];
    event_name(name, seg, offset, value);
    HANDLE ev = RQ_SYS(OPEN_EVENT, OpenEventW(EVENT_MODIFY_STATE, FALSE, name), NULL);
    if (ev) {
        (void)RQ_SYS(SET_EVENT, SetEvent(ev), FALSE);
        CloseHandle(ev);
    }
}

void rq_plat_wake(rq_plat_segment *seg, rq_atomic_u32 *word, int all)
{
    (void)all; /* a manual-reset event releases all; rq re-checks anyway */
    if (!seg)
        return;
    DWORD saved = GetLastError();
    uintptr_t offset = word_offset(seg, word);
    /* The caller moved the word on by one just now; other signallers may
     * have done so at the same moment.  Release every value the word held
     * in that window. */
    uint32_t now = rq_load_seq_u32(word);
    for (uint32_t back = 1; back <= WAKE_VALUES; back++)
        release_value(seg, offset, now - back);
    SetLastError(saved);
}

int rq_plat_add_and_wake(rq_plat_segment *seg, rq_atomic_u32 *word, uint32_t add)
{
    if (!seg || add < 1 || add > 2047) {
        SetLastError(ERROR_INVALID_PARAMETER);
        return RQ_ESYS;
    }
    /* Two steps here (the kernel has no FUTEX_WAKE_OP): a caller killed
     * between them leaves the sleeper to its RQ_RECHECK_MS re-check.  The
     * old value is exact, so exactly the waiters who saw it are released. */
    uint32_t old = rq_fetch_add_u32(word, add);
    release_value(seg, word_offset(seg, word), old);
    return RQ_OK;
}

/* ---- poll objects ---------------------------------------------------------- */

/* A manual-reset event per side, "<base>.poll.d" / ".poll.s", made with the
 * segment's descriptor (MAKE) or opened, and owner-checked as the mapping
 * is.  It goes with the last handle, as every object of a queue. */
static int poll_event(rq_plat_segment *seg, int side, int make)
{
    if (seg->poll[side])
        return RQ_OK;
    wchar_t name[OBJECT_NAME_MAX];
    object_name(name, seg, side == RQ_POLL_SPACE ? L".poll.s" : L".poll.d");
    HANDLE h;
    DWORD err;
    if (make) {
        PSECURITY_DESCRIPTOR sd = NULL;
        int rc = make_descriptor(seg->mode, &sd);
        if (rc < 0)
            return rc;
        SECURITY_ATTRIBUTES sa = {sizeof sa, sd, FALSE};
        h = RQ_SYS(CREATE_EVENT, CreateEventW(&sa, TRUE, FALSE, name), NULL);
        err = GetLastError();
        LocalFree(sd);
    } else {
        h = RQ_SYS(OPEN_EVENT, OpenEventW(EVENT_MODIFY_STATE | READ_CONTROL, FALSE, name), NULL);
        err = h ? ERROR_ALREADY_EXISTS : GetLastError();
    }
    if (!h) {
        SetLastError(err);
        return err == ERROR_FILE_NOT_FOUND ? RQ_ENOENT : RQ_ESYS;
    }
    int rc = err == ERROR_ALREADY_EXISTS ? owner_check(h, seg->flags | RQ_PLAT_CHECKED) : RQ_OK;
    if (rc < 0) {
        err = GetLastError();
        CloseHandle(h);
        SetLastError(err);
        return rc;
    }
    seg->poll[side] = h;
    return RQ_OK;
}

int rq_plat_poll_open(rq_plat_segment *seg, int side, rq_plat_pollable *out)
{
    if (!seg || (side != RQ_POLL_DATA && side != RQ_POLL_SPACE)) {
        SetLastError(ERROR_INVALID_PARAMETER);
        return RQ_ESYS;
    }
    int rc = poll_event(seg, side, 1);
    if (rc == RQ_OK)
        *out = seg->poll[side];
    return rc;
}

int rq_plat_poll_drain(rq_plat_segment *seg, int side)
{
    if (seg && (side == RQ_POLL_DATA || side == RQ_POLL_SPACE) && seg->poll[side])
        ResetEvent(seg->poll[side]); /* cannot fail on a valid handle */
    return RQ_OK;
}

void rq_plat_poll_notify(rq_plat_segment *seg, int side)
{
    if (!seg || (side != RQ_POLL_DATA && side != RQ_POLL_SPACE))
        return;
    DWORD saved = GetLastError();
    if (poll_event(seg, side, 0) == RQ_OK)
        (void)RQ_SYS(SET_EVENT, SetEvent(seg->poll[side]), FALSE);
    SetLastError(saved); /* a missing event: nobody polls */
}

/* ---- the MPSC producers' mutex -------------------------------------------- */

/* A Win32 mutex is recursive for its owning thread: two producer handles
 * used by one thread would both get in.  So the process keeps a list of
 * the MPSC mutexes its threads hold, by name. */
struct held_mutex {
    struct held_mutex *next;
    DWORD thread;
    wchar_t name[OBJECT_NAME_MAX];
};
static SRWLOCK held_lock = SRWLOCK_INIT;
static struct held_mutex *held_list;

static int held_by_this_thread(const wchar_t *name)
{
    int found = 0;
    AcquireSRWLockShared(&held_lock);
    for (struct held_mutex *h = held_list; h && !found; h = h->next)
        found = h->thread == GetCurrentThreadId() && wcscmp(h->name, name) == 0;
    ReleaseSRWLockShared(&held_lock);
    return found;
}

static int held_add(const wchar_t *name)
{
    struct held_mutex *h = malloc(sizeof *h);
    if (!h)
        return -1;
    h->thread = GetCurrentThreadId();
    wcscpy(h->name, name);
    AcquireSRWLockExclusive(&held_lock);
    h->next = held_list;
    held_list = h;
    ReleaseSRWLockExclusive(&held_lock);
    return 0;
}

static void held_remove(const wchar_t *name)
{
    AcquireSRWLockExclusive(&held_lock);
    for (struct held_mutex **p = &held_list; *p; p = &(*p)->next) {
        if ((*p)->thread == GetCurrentThreadId() && wcscmp((*p)->name, name) == 0) {
            struct held_mutex *h = *p;
            *p = h->next;
            free(h);
            break;
        }
    }
    ReleaseSRWLockExclusive(&held_lock);
}

static int mpsc_open(rq_plat_segment *seg, wchar_t *name)
{
    object_name(name, seg, L".mpsc");
    if (!seg->mpsc_mutex)
        seg->mpsc_mutex = RQ_SYS(CREATE_MUTEX, CreateMutexW(NULL, FALSE, name), NULL);
    return seg->mpsc_mutex ? RQ_OK : RQ_ESYS;
}

/* FlushProcessWriteBuffers reaches only the threads of the calling
 * process; Windows has no fence that reaches another process's threads, so
 * rq publishes with full fences there. */
int rq_plat_fence_register(void)
{
    SetLastError(ERROR_NOT_SUPPORTED);
    return RQ_ESYS;
}

void rq_plat_yield(void)
{
    (void)SwitchToThread(); /* 0 only says nothing else was ready */
}

int rq_plat_fence_heavy(void)
{
    SetLastError(ERROR_NOT_SUPPORTED);
    return RQ_ESYS;
}

int rq_plat_mutex_init(rq_plat_segment *seg)
{
    /* The lock is the named mutex; the segment's lock area only shows who
     * holds it (mpsc.c, Windows part). */
    wchar_t name[OBJECT_NAME_MAX];
    return seg ? mpsc_open(seg, name) : RQ_OK;
}

int rq_plat_mutex_lock(rq_plat_segment *seg, int timeout_ms, int *recovered)
{
    *recovered = 0;
    wchar_t name[OBJECT_NAME_MAX];
    int rc = mpsc_open(seg, name);
    if (rc < 0)
        return rc;
    if (held_by_this_thread(name)) {
        /* Another handle of this thread holds it: only this thread could
         * release it, so waiting cannot help (and the mutex, recursive for
         * its owner, would let us in). */
        return RQ_EDEADLK;
    }
    DWORD r = timeout_ms == 0 ? RQ_SYS(WAIT, WaitForSingleObject(seg->mpsc_mutex, 0), WAIT_FAILED)
                              : wait_or_interrupt(seg, seg->mpsc_mutex, timeout_ms);
    if (r == WAIT_OBJECT_0 + 1)
        return RQ_EINTR;
    if (r == WAIT_ABANDONED) {
        /* The owner died inside the critical section, which is consistent
         * at every instruction: a normal acquisition (mpsc.c counts it). */
        *recovered = 1;
        r = WAIT_OBJECT_0;
    }
    if (r == WAIT_TIMEOUT)
        return timeout_ms == 0 ? RQ_EAGAIN : RQ_ETIMEDOUT;
    if (r != WAIT_OBJECT_0)
        return RQ_ESYS;
    if (held_add(name) != 0) {
        ReleaseMutex(seg->mpsc_mutex);
        SetLastError(ERROR_NOT_ENOUGH_MEMORY);
        return RQ_ESYS;
    }
    seg->mpsc_held = 1;
    return RQ_OK;
}

void rq_plat_mutex_unlock(rq_plat_segment *seg)
{
    if (!seg->mpsc_held)
        return;
    DWORD saved = GetLastError();
    wchar_t name[OBJECT_NAME_MAX];
    object_name(name, seg, L".mpsc");
    held_remove(name);
    seg->mpsc_held = 0;
    ReleaseMutex(seg->mpsc_mutex);
    SetLastError(saved);
}

/* ---- MPSC producer slots --------------------------------------------------- */

/* A producer slot's keeper: a role keeper that looks for the first free
 * slot itself, so one thread serves the whole search. */
struct slot_keeper {
    struct role_keeper k; /* first: keeper_stop and keeper_free take it */
    wchar_t base[BASE_NAME_MAX];
    uint32_t slot;
};

static DWORD WINAPI slot_keeper_main(void *arg)
{
    struct slot_keeper *sk = arg;
    struct role_keeper *k = &sk->k;
    /* The opening thread waits for k->acquired meanwhile: the gated calls
     * below are counted in the same order every time (fault.h). */
    for (uint32_t i = 0; i < (uint32_t)RQ_MPSC_PRODUCERS_MAX; i++) {
        wchar_t name[OBJECT_NAME_MAX];
        swprintf(name, OBJECT_NAME_MAX, L"%ls.pslot.%u", sk->base, i);
        HANDLE m = RQ_SYS(CREATE_MUTEX, CreateMutexW(NULL, FALSE, name), NULL);
        /* Never probed by others (unlike role mutexes): held means taken. */
        DWORD r = m ? RQ_SYS(WAIT, WaitForSingleObject(m, 0), WAIT_FAILED) : WAIT_FAILED;
        if (r == WAIT_OBJECT_0 || r == WAIT_ABANDONED) {
            k->mutex = m;
            sk->slot = i;
            InterlockedExchange(&k->outcome, 1);
            SetEvent(k->acquired);
            WaitForSingleObject(k->release, INFINITE);
            ReleaseMutex(m);
            return 0;
        }
        DWORD err = GetLastError();
        if (m)
            CloseHandle(m);
        if (r != WAIT_TIMEOUT) {
            k->err = err;
            InterlockedExchange(&k->outcome, -1);
            SetEvent(k->acquired);
            return 0;
        }
    }
    InterlockedExchange(&k->outcome, 0); /* every slot held */
    SetEvent(k->acquired);
    return 0;
}

int rq_plat_producer_slot(rq_plat_segment *seg, uint32_t *slot)
{
    if (seg->slot)
        return busy(); /* this handle has one */
    struct slot_keeper *sk = calloc(1, sizeof *sk);
    if (!sk) {
        SetLastError(ERROR_NOT_ENOUGH_MEMORY);
        return RQ_ESYS;
    }
    struct role_keeper *k = &sk->k; /* first: keeper_free frees SK */
    wcscpy(sk->base, seg->base);
    int rc = keeper_start(k, slot_keeper_main, sk);
    if (rc < 0)
        return rc;
    *slot = sk->slot;
    seg->slot = k;
    return RQ_OK;
}

void rq_plat_producer_slot_release(rq_plat_segment *seg)
{
    if (!seg->slot)
        return;
    DWORD saved = GetLastError();
    keeper_stop(seg->slot);
    seg->slot = NULL;
    SetLastError(saved);
}

/* ---- clock, identity, death ---------------------------------------------- */

uint64_t rq_plat_now_ns(void)
{
    /* GetTickCount64 moves in steps of ~16 ms; the performance counter is
     * monotonic and fine-grained.  Its frequency is at most a few GHz, so
     * t % f * 1e9 does not overflow. */
    static LARGE_INTEGER freq;
    if (freq.QuadPart == 0)
        QueryPerformanceFrequency(&freq);
    LARGE_INTEGER now;
    QueryPerformanceCounter(&now);
    uint64_t t = (uint64_t)now.QuadPart, f = (uint64_t)freq.QuadPart;
    return t / f * 1000000000u + t % f * 1000000000u / f;
}

int64_t rq_plat_pid(void)
{
    return (int64_t)GetCurrentProcessId();
}

/* Windows has no fork(): the generation stays 0. */
rq_atomic_u64 rq_plat_fork_generation;

int rq_plat_fork_watch(void)
{
    return RQ_OK;
}

uint64_t rq_plat_thread_id(void)
{
    /* What a Win32 mutex's ownership follows; unique among live threads. */
    return (uint64_t)GetCurrentThreadId();
}

uint32_t rq_plat_abi_tag(void)
{
    /* The MPSC lock is a named mutex here and the lock area is unused: a
     * segment whose lock area holds a Linux build's owner word must not be
     * taken for ours. */
    return 3;
}

#ifdef RQ_CRASH_POINTS
void rq_plat_kill_self(void)
{
    /* 137 = 128 + SIGKILL: what the tests read as "killed". */
    TerminateProcess(GetCurrentProcess(), 137);
    ExitProcess(137); /* not reached */
}
#endif
