/*
 * test_trust.c - trust boundaries at open, between users (Linux): nobody
 * can make rq adopt, hang or squat another user's queue.
 *
 * The second user is "nobody" (uid and gid 65534): a forked child drops to
 * it with setgroups/setresgid/setresuid, as util-linux's
 * `setpriv --reuid=65534 --regid=65534 --clear-groups` does.  That needs
 * root; run as another user, the tests that need two users are skipped
 * (cmocka prints each as SKIPPED).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "helpers.h"
#include "platform.h"
#include "rq.h"

#define NOBODY 65534

static void need_root(void)
{
    if (geteuid() != 0) {
        print_message("test_trust: not root, so no second user: skipped\n");
        skip();
    }
}

/* Runs FN(ARG) as nobody in a child; returns its exit code (FN's result),
 * or -1000 if it did not exit normally. */
static int as_nobody(int (*fn)(const char *), const char *arg)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (setgroups(0, NULL) != 0 || setresgid(NOBODY, NOBODY, NOBODY) != 0 ||
            setresuid(NOBODY, NOBODY, NOBODY) != 0)
            _exit(99);
        _exit(fn(arg) & 0xff);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1000;
}

/* rq_errors are small negatives: a child's exit code carries -rc. */
static int code(int rc)
{
    return rc < 0 ? -rc : rc;
}

static int shm_path_stat(const char *prefix, const char *name, struct stat *st)
{
    char path[300];
    snprintf(path, sizeof path, "/dev/shm/%s.%s", prefix, name);
    return stat(path, st);
}

/* ---- nobody's side ------------------------------------------------------ */

static int nobody_creates_0666(const char *name)
{
    rq *q;
    rq_config cfg = {4, 64, 0, 0666};
    int rc = rq_open(&q, name, RQ_OBSERVER, &cfg);
    rq_close(q);
    return code(rc);
}

static int nobody_makes_empty_file(const char *name)
{
    char path[300];
    snprintf(path, sizeof path, "/rq.%s", name);
    int fd = shm_open(path, O_RDWR | O_CREAT | O_EXCL, 0666);
    if (fd < 0)
        return 1;
    fchmod(fd, 0666);
    close(fd);
    return 0;
}

static int nobody_pushes(const char *name)
{
    rq *q;
    int rc = rq_open(&q, name, RQ_PRODUCER, NULL);
    if (rc == RQ_OK)
        rc = rq_push(q, "x", 1, 0);
    rq_close(q);
    return code(rc);
}

static int nobody_opens_locks(const char *name)
{
    char path[300];
    snprintf(path, sizeof path, "/rql.%s", name);
    int fd = shm_open(path, O_RDWR, 0);
    int fd2 = shm_open(path, O_RDONLY, 0);
    return fd < 0 && errno == EACCES && fd2 < 0 ? 0 : 1;
}

/* An observer that may only read: geometry and depth, liveness unknown. */
static int nobody_observes(const char *name)
{
    rq *q;
    int rc = rq_open_timed(&q, name, RQ_OBSERVER, NULL, 2000);
    if (rc < 0)
        return code(rc);
    rq_stats st;
    rc = rq_stat(q, &st);
    rq_close(q);
    if (rc < 0)
        return code(rc);
    return st.slot_count == 4 && st.depth == 1 && st.producer_live == -1 && st.consumer_live == -1
               ? 0
               : 50;
}

static int nobody_creates_coalesce_0666(const char *name)
{
    rq_coalesce *c;
    int rc = rq_coalesce_open(&c, name, RQ_OBSERVER, 0666);
    rq_coalesce_close(c);
    return code(rc);
}

/* ---- adoption -------------------------------------------------------------- */

/* nobody makes a 0666 queue first; root's create (0600) must not take it,
 * nor may root's producer or consumer use it: a secret pushed there would
 * be nobody's to pop. */
static void test_foreign_queue_is_not_adopted(void **state)
{
    (void)state;
    need_root();
    const char *name = th_name("adopt");
    assert_int_equal(as_nobody(nobody_creates_0666, name), 0);
    rq *q = NULL;
    rq_config cfg = {4, 64, 0, 0};
    assert_int_equal(rq_open(&q, name, RQ_OBSERVER, &cfg), RQ_EOWNER);
    assert_null(q);
    assert_int_equal(rq_open(&q, name, RQ_PRODUCER, &cfg), RQ_EOWNER);
    assert_int_equal(rq_open(&q, name, RQ_PRODUCER, NULL), RQ_EOWNER);
    assert_int_equal(rq_open(&q, name, RQ_CONSUMER, NULL), RQ_EOWNER);
    /* an observer only reads: no check */
    assert_int_equal(rq_open(&q, name, RQ_OBSERVER, NULL), RQ_OK);
    rq_close(q);
    /* the caller may say a foreign owner is fine, and how wide */
    rq_config any = {4, 64, RQ_ANY_OWNER, 0666};
    assert_int_equal(rq_open(&q, name, RQ_PRODUCER, &any), RQ_OK);
    rq_close(q);
    rq_config attach_any = {0, 0, RQ_ANY_OWNER, 0};
    assert_int_equal(rq_open(&q, name, RQ_CONSUMER, &attach_any), RQ_OK);
    rq_close(q);
    /* the lock object is nobody's too, and mode 0666 */
    struct stat st;
    assert_int_equal(shm_path_stat("rql", name, &st), 0);
    assert_int_equal(st.st_uid, NOBODY);
    assert_int_equal(st.st_mode & 0777, 0666);
    assert_int_equal(rq_unlink(name), RQ_OK);
}

/* An empty file nobody put at the queue's path is not initialised. */
static void test_precreated_empty_file_is_not_initialised(void **state)
{
    (void)state;
    need_root();
    const char *name = th_name("empty");
    assert_int_equal(as_nobody(nobody_makes_empty_file, name), 0);
    rq *q = NULL;
    rq_config cfg = {4, 64, 0, 0};
    assert_int_equal(rq_open(&q, name, RQ_PRODUCER, &cfg), RQ_EOWNER);
    struct stat st;
    assert_int_equal(shm_path_stat("rq", name, &st), 0);
    assert_int_equal(st.st_size, 0); /* untouched */
    assert_int_equal(st.st_uid, NOBODY);
    assert_int_not_equal(shm_path_stat("rql", name, &st), 0); /* no lock object made */
    assert_int_equal(rq_unlink(name), RQ_OK);
}

/* Root's objects are trusted by everyone: nobody may use a 0666 queue root
 * made (the administrator can read any queue anyway). */
static void test_root_owned_queue_is_usable(void **state)
{
    (void)state;
    need_root();
    const char *name = th_name("rootq");
    rq_config cfg = {4, 64, 0, 0666};
    rq *q;
    assert_int_equal(rq_open(&q, name, RQ_CONSUMER, &cfg), RQ_OK);
    assert_int_equal(as_nobody(nobody_pushes, name), 0);
    char b[4];
    size_t len;
    assert_int_equal(rq_pop(q, b, sizeof b, &len, 0), RQ_OK);
    rq_close(q);
    assert_int_equal(rq_unlink(name), RQ_OK);
}

/* Same user, but the queue is wider open than this caller asks for. */
static void test_wider_mode_than_asked_is_refused(void **state)
{
    (void)state;
    const char *name = th_name("wide");
    rq *q, *p = NULL;
    rq_config wide = {4, 64, 0, 0666};
    assert_int_equal(rq_open(&q, name, RQ_OBSERVER, &wide), RQ_OK);
    rq_config narrow = {4, 64, 0, 0600};
    assert_int_equal(rq_open(&p, name, RQ_PRODUCER, &narrow), RQ_EOWNER);
    rq_config deflt = {4, 64, 0, 0}; /* 0 means 0600 */
    assert_int_equal(rq_open(&p, name, RQ_PRODUCER, &deflt), RQ_EOWNER);
    rq_config attach_narrow = {0, 0, 0, 0640};
    assert_int_equal(rq_open(&p, name, RQ_PRODUCER, &attach_narrow), RQ_EOWNER);
    assert_int_equal(rq_open(&p, name, RQ_PRODUCER, &wide), RQ_OK);
    rq_close(p);
    assert_int_equal(rq_open(&p, name, RQ_PRODUCER, NULL), RQ_OK); /* no mode asked */
    rq_close(p);
    rq_config narrower_is_fine = {4, 64, 0, 0600};
    rq_close(q);
    assert_int_equal(rq_unlink(name), RQ_OK);
    assert_int_equal(rq_open(&q, name, RQ_OBSERVER, &narrower_is_fine), RQ_OK);
    assert_int_equal(rq_open(&p, name, RQ_PRODUCER, &wide), RQ_OK); /* narrower than asked */
    rq_close(p);
    rq_close(q);
    assert_int_equal(rq_unlink(name), RQ_OK);
}

/* The lock object gets the write classes of the queue's mode, and goes
 * with rq_unlink. */
static void test_lock_object_mode_and_unlink(void **state)
{
    (void)state;
    static const struct {
        uint32_t mode, lock_mode;
    } cases[] = {{0644, 0600}, {0666, 0666}, {0660, 0660}, {0600, 0600}, {0622, 0666}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *name = th_name("lmode");
        rq_config cfg = {4, 64, 0, cases[i].mode};
        rq *q;
        assert_int_equal(rq_open(&q, name, RQ_OBSERVER, &cfg), RQ_OK);
        struct stat st;
        assert_int_equal(shm_path_stat("rql", name, &st), 0);
        assert_int_equal(st.st_mode & 0777, cases[i].lock_mode);
        rq_close(q);
        assert_int_equal(rq_unlink(name), RQ_OK);
        assert_int_not_equal(shm_path_stat("rql", name, &st), 0);
        assert_int_not_equal(shm_path_stat("rq", name, &st), 0);
    }
    const char *name = th_name("clmode");
    rq_coalesce *c;
    assert_int_equal(rq_coalesce_open(&c, name, RQ_OBSERVER, 0640), RQ_OK);
    struct stat st;
    assert_int_equal(shm_path_stat("rqcl", name, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    rq_coalesce_close(c);
    assert_int_equal(rq_coalesce_unlink(name), RQ_OK);
    assert_int_not_equal(shm_path_stat("rqcl", name, &st), 0);
}

static void test_foreign_coalescing_object_is_not_adopted(void **state)
{
    (void)state;
    need_root();
    const char *name = th_name("cadopt");
    assert_int_equal(as_nobody(nobody_creates_coalesce_0666, name), 0);
    rq_coalesce *c = NULL;
    assert_int_equal(rq_coalesce_open(&c, name, RQ_CONSUMER, 0), RQ_EOWNER);
    assert_int_equal(rq_coalesce_attach(&c, name, RQ_PRODUCER), RQ_EOWNER);
    assert_int_equal(rq_coalesce_attach(&c, name, RQ_OBSERVER), RQ_OK);
    rq_coalesce_close(c);
    assert_int_equal(rq_coalesce_attach_timed(&c, name, RQ_PRODUCER, RQ_MODE_ANY_OWNER, 1000),
                     RQ_OK);
    rq_coalesce_close(c);
    assert_int_equal(rq_coalesce_open(&c, name, RQ_CONSUMER, RQ_MODE_ANY_OWNER | 0666), RQ_OK);
    rq_coalesce_close(c);
    assert_int_equal(rq_coalesce_unlink(name), RQ_OK);
}

/* ---- hangs ----------------------------------------------------------------- */

/* A child takes the init lock as a creator does and is stopped: opens
 * give up at their bound instead of hanging. */
static void test_stopped_creator_times_out(void **state)
{
    (void)state;
    const char *name = th_name("stopped");
    rq *q;
    rq_config cfg = {4, 64, 0, 0};
    assert_int_equal(rq_open(&q, name, RQ_OBSERVER, &cfg), RQ_OK);
    rq_close(q);
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        rq_plat_segment *s;
        int created;
        if (rq_plat_segment_open(&s, "rq", name, 0, 0, &created) != RQ_OK ||
            rq_plat_lock(s, RQ_LOCK_INIT, RQ_LOCK_TRY) != RQ_OK)
            _exit(1);
        (void)!write(ready[1], "x", 1);
        raise(SIGSTOP);
        _exit(0);
    }
    char c;
    assert_int_equal(read(ready[0], &c, 1), 1);
    int status;
    assert_int_equal(waitpid(pid, &status, WUNTRACED), pid);
    assert_true(WIFSTOPPED(status));
    uint64_t t0 = th_now_ms();
    /* An observer only reads a complete segment and takes no lock: the
     * stopped creator does not hold it up at all. */
    assert_int_equal(rq_open_timed(&q, name, RQ_OBSERVER, NULL, 300), RQ_OK);
    assert_true(th_now_ms() - t0 < 300);
    rq_close(q);
    t0 = th_now_ms();
    assert_int_equal(rq_open_timed(&q, name, RQ_CONSUMER, NULL, 300), RQ_ETIMEDOUT);
    uint64_t took = th_now_ms() - t0;
    assert_true(took >= 300 && took < 3000);
    assert_int_equal(rq_open_timed(&q, name, RQ_PRODUCER, &cfg, 0), RQ_ETIMEDOUT);
    rq_coalesce *co;
    const char *cname = th_name("cstopped");
    rq_coalesce_unlink(cname);
    assert_int_equal(rq_coalesce_open_timed(&co, cname, RQ_CONSUMER, 0, 100), RQ_OK);
    rq_coalesce_close(co);
    /* the holder dies: the lock is free at once */
    kill(pid, SIGKILL);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_int_equal(rq_open_timed(&q, name, RQ_PRODUCER, NULL, 1000), RQ_OK);
    rq_close(q);
    close(ready[0]);
    close(ready[1]);
    assert_int_equal(rq_unlink(name), RQ_OK);
    assert_int_equal(rq_coalesce_unlink(cname), RQ_OK);
}

/* nobody may read a 0644 queue: it opens the segment read-only and takes
 * read locks on its first bytes (where the locks used to be).  Opens and
 * roles are unaffected, and nobody cannot open the lock object. */
static int nobody_squats(const char *arg)
{
    char path[300];
    int ready = atoi(arg), go;
    const char *name = strchr(arg, ':') + 1;
    go = atoi(strchr(arg, ',') + 1);
    snprintf(path, sizeof path, "/rq.%s", name);
    int fd = shm_open(path, O_RDONLY, 0);
    if (fd < 0)
        return 1;
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = F_RDLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = 0;
    fl.l_len = 3;
    if (fcntl(fd, F_OFD_SETLK, &fl) != 0)
        return 2;
    (void)!write(ready, "x", 1);
    char c;
    (void)!read(go, &c, 1); /* hold until the parent is done */
    return 0;
}

static void test_read_only_squatter_blocks_nothing(void **state)
{
    (void)state;
    need_root();
    const char *name = th_name("squat");
    rq_config cfg = {4, 64, 0, 0644};
    rq *o;
    assert_int_equal(rq_open(&o, name, RQ_OBSERVER, &cfg), RQ_OK);
    int ready[2], go[2];
    assert_int_equal(pipe(ready), 0);
    assert_int_equal(pipe(go), 0);
    char arg[400];
    snprintf(arg, sizeof arg, "%d,%d:%s", ready[1], go[0], name);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(as_nobody(nobody_squats, arg));
    char c;
    assert_int_equal(read(ready[0], &c, 1), 1);
    rq *p, *q;
    assert_int_equal(rq_open_timed(&p, name, RQ_PRODUCER, &cfg, 2000), RQ_OK);
    assert_int_equal(rq_open_timed(&q, name, RQ_CONSUMER, NULL, 2000), RQ_OK);
    assert_int_equal(rq_push(p, "s", 1, 0), RQ_OK);
    rq_stats st;
    assert_int_equal(rq_stat(o, &st), RQ_OK);
    assert_int_equal(st.producer_live, 1);
    assert_int_equal(st.consumer_live, 1);
    assert_int_equal(st.producer_pid, getpid());
    assert_int_equal(as_nobody(nobody_opens_locks, name), 0);
    assert_int_equal(as_nobody(nobody_observes, name), 0);
    (void)!write(go[1], "x", 1);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0); /* the squat really held */
    rq_close(p);
    rq_close(q);
    rq_close(o);
    close(ready[0]);
    close(ready[1]);
    close(go[0]);
    close(go[1]);
    assert_int_equal(rq_unlink(name), RQ_OK);
}

/* ---- validation and clean failure ------------------------------------------ */

static void test_impossible_geometry_creates_nothing(void **state)
{
    (void)state;
    const char *name = th_name("huge");
    rq *q = (rq *)1;
    rq_config cfg = {RQ_SLOT_COUNT_MAX, RQ_SLOT_SIZE_MAX, 0, 0};
    assert_int_equal(rq_open(&q, name, RQ_PRODUCER, &cfg), RQ_EINVAL);
    assert_null(q);
    struct stat st;
    assert_int_not_equal(shm_path_stat("rq", name, &st), 0);
    assert_int_not_equal(shm_path_stat("rql", name, &st), 0);
    assert_int_equal(rq_open(&q, name, RQ_CONSUMER, NULL), RQ_ENOENT);
}

/* A creation that fails after the object exists (the segment cannot be
 * sized: a file-size limit stands in for a full /dev/shm) removes what it
 * made. */
static void test_failed_create_removes_the_object(void **state)
{
    (void)state;
    const char *name = th_name("nospace");
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        rq *q;
        rq_config cfg = {1u << 20, 1024, 0, 0}; /* about 1 GiB */
        signal(SIGXFSZ, SIG_IGN);
        /* RLIMIT_FSIZE bounds ftruncate on tmpfs: EFBIG. */
        struct rlimit lim = {1u << 20, 1u << 20};
        if (setrlimit(RLIMIT_FSIZE, &lim) != 0)
            _exit(98);
        int rc = rq_open(&q, name, RQ_PRODUCER, &cfg);
        _exit(rc == RQ_ESYS ? 0 : 10 + code(rc));
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    struct stat st;
    assert_int_not_equal(shm_path_stat("rq", name, &st), 0);
    assert_int_not_equal(shm_path_stat("rql", name, &st), 0);
    rq *q;
    assert_int_equal(rq_open(&q, name, RQ_CONSUMER, NULL), RQ_ENOENT);
}

int main(int argc, char **argv)
{
    th_init(argc, argv, NULL, 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_foreign_queue_is_not_adopted),
        cmocka_unit_test(test_precreated_empty_file_is_not_initialised),
        cmocka_unit_test(test_root_owned_queue_is_usable),
        cmocka_unit_test(test_wider_mode_than_asked_is_refused),
        cmocka_unit_test(test_lock_object_mode_and_unlink),
        cmocka_unit_test(test_foreign_coalescing_object_is_not_adopted),
        cmocka_unit_test(test_stopped_creator_times_out),
        cmocka_unit_test(test_read_only_squatter_blocks_nothing),
        cmocka_unit_test(test_impossible_geometry_creates_nothing),
        cmocka_unit_test(test_failed_create_removes_the_object),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
