/*
 * test_coalesce_attach.c - rq_coalesce_attach: opens an existing coalescing
 * object in any role and never creates, nor repairs, one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "helpers.h"
#include "layout.h"
#include "rq.h"

static const char *fresh(const char *tag)
{
    const char *n = th_name(tag);
    rq_coalesce_unlink(n);
    return n;
}

/* 1 if the OS object rqc.NAME exists. */
static int object_exists(const char *name)
{
    return th_raw_exists("rqc", name);
}

static void test_attach_never_creates(void **state)
{
    (void)state;
    const char *name = fresh("ca.missing");
    rq_coalesce *c = (rq_coalesce *)1;
    for (int role = RQ_PRODUCER; role <= RQ_OBSERVER; role++) {
        assert_int_equal(rq_coalesce_attach(&c, name, role), RQ_ENOENT);
        assert_null(c);
    }
    assert_false(object_exists(name));
    assert_int_equal(rq_coalesce_attach(NULL, name, RQ_OBSERVER), RQ_EINVAL);
    assert_int_equal(rq_coalesce_attach(&c, "bad/name", RQ_OBSERVER), RQ_EINVAL);
    assert_int_equal(rq_coalesce_attach(&c, name, 0), RQ_EINVAL);
    assert_false(object_exists(name));
}

static void test_attach_opens_an_existing_object_in_every_role(void **state)
{
    (void)state;
    const char *name = fresh("ca.roles");
    rq_coalesce *made = NULL;
    assert_int_equal(rq_coalesce_open(&made, name, RQ_OBSERVER, 0), RQ_OK);
#ifndef _WIN32
    rq_coalesce_close(made);
#endif /* Windows: kept open, or the object would go with it */

    rq_coalesce *req = NULL, *worker = NULL, *obs = NULL, *second = (rq_coalesce *)1;
    assert_int_equal(rq_coalesce_attach(&req, name, RQ_PRODUCER), RQ_OK);
    assert_int_equal(rq_coalesce_attach(&worker, name, RQ_CONSUMER), RQ_OK);
    assert_int_equal(rq_coalesce_attach(&second, name, RQ_CONSUMER), RQ_EBUSY);
    assert_null(second);
    assert_int_equal(rq_coalesce_attach(&obs, name, RQ_OBSERVER), RQ_OK);

    assert_int_equal(rq_coalesce_request(req), RQ_OK);
    rq_coalesce_stats st;
    assert_int_equal(rq_coalesce_stat(obs, &st), RQ_OK);
    assert_int_equal(st.requests, 1);
    assert_int_equal(st.owed, 1);
    assert_int_equal(st.worker_live, 1);
    assert_int_equal(st.worker_pid, th_getpid());

    uint64_t ticket;
    assert_int_equal(rq_coalesce_wait(worker, &ticket, 0), RQ_OK);
    assert_int_equal(rq_coalesce_done(worker, ticket), RQ_OK);
    rq_coalesce_close(worker);
    assert_int_equal(rq_coalesce_stat(obs, &st), RQ_OK);
    assert_int_equal(st.owed, 0);
    assert_int_equal(st.rounds, 1);
    assert_int_equal(st.worker_live, 0);
    rq_coalesce_close(req);
#ifndef _WIN32
    rq_coalesce_close(obs);
    assert_int_equal(rq_coalesce_unlink(name), RQ_OK);
#else /* the name exists while a handle is open, and goes with the last */
    assert_int_equal(rq_coalesce_unlink(name), RQ_OK);
    rq_coalesce_close(obs);
    rq_coalesce_close(made);
    assert_int_equal(rq_coalesce_unlink(name), RQ_ENOENT);
#endif
}

static void test_attach_leaves_a_half_made_object_alone(void **state)
{
    (void)state;
    const char *name = fresh("ca.half");
    rq_coalesce *c = NULL;
    assert_int_equal(rq_coalesce_open(&c, name, RQ_OBSERVER, 0), RQ_OK);
    struct th_raw raw;
    th_raw_open(&raw, "rqc", name);
    rq_coalesce_close(c); /* the raw view keeps it (Windows: alive) */
    struct rqc_shm *shm = (struct rqc_shm *)raw.addr;
    rq_store_relaxed_u64(&shm->hdr.magic, 0); /* as if its creator died before magic */

    assert_int_equal(rq_coalesce_attach(&c, name, RQ_OBSERVER), RQ_ENOENT);
    assert_int_equal(rq_load_relaxed_u64(&shm->hdr.magic), 0); /* not repaired */
    /* rq_coalesce_open still makes it again */
    assert_int_equal(rq_coalesce_open(&c, name, RQ_OBSERVER, 0), RQ_OK);
    rq_coalesce_stats st;
    assert_int_equal(rq_coalesce_stat(c, &st), RQ_OK);
    assert_int_equal(st.repairs, 1);
    rq_coalesce_close(c);
    assert_int_equal(rq_coalesce_attach(&c, name, RQ_OBSERVER), RQ_OK);
    rq_coalesce_close(c);
    th_raw_close(&raw);
#ifndef _WIN32 /* Windows: the object went with the raw view, its last holder */
    assert_int_equal(rq_coalesce_unlink(name), RQ_OK);
#endif
}

int main(int argc, char **argv)
{
    /* The harness: each queue this program names (th_name) and leaves
     * behind, when a test fails before its unlink, is removed at exit and
     * fails the run. */
    static const struct th_child children[] = {{"none", NULL}};
    TH_INIT(argc, argv, children);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_attach_never_creates),
        cmocka_unit_test(test_attach_opens_an_existing_object_in_every_role),
        cmocka_unit_test(test_attach_leaves_a_half_made_object_alone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
