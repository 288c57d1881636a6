/*
 * consumer.c - a program built against an *installed* rq, the way a user
 * would build one: through find_package(rq CONFIG) or through pkg-config.
 * It checks the header's version against the package's (EXPECTED_VERSION)
 * and moves a message through a queue and a request through a coalescing
 * object.  Prints "ok" and exits 0, or says what is off and exits 1.
 */
#include <rq.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define STR_(x) #x
#define STR(x) STR_(x)

static int check(int rc, const char *what)
{
    if (rc != RQ_OK)
        fprintf(stderr, "package consumer: %s: %s (%s)\n", what, rq_strerror(rc), rq_errname(rc));
    return rc == RQ_OK;
}

int main(void)
{
    const char *header_version =
        STR(RQ_VERSION_MAJOR) "." STR(RQ_VERSION_MINOR) "." STR(RQ_VERSION_PATCH);
    if (strcmp(header_version, EXPECTED_VERSION) != 0) {
        fprintf(stderr, "package consumer: rq.h says %s, the package says %s\n", header_version,
                EXPECTED_VERSION);
        return 1;
    }
    if (RQ_VERSION_HEX != ((RQ_VERSION_MAJOR << 16) | (RQ_VERSION_MINOR << 8) | RQ_VERSION_PATCH))
        return 1;

    char name[64];
    snprintf(name, sizeof name, "rq-package-test.%ld", (long)getpid());
    rq_unlink(name);
    rq_config cfg = {.slot_count = 4, .slot_size = 32, .flags = 0, .mode = 0};
    rq *producer = NULL, *consumer = NULL;
    int ok = check(rq_open(&producer, name, RQ_PRODUCER, &cfg), "rq_open producer") &&
             check(rq_open(&consumer, name, RQ_CONSUMER, NULL), "rq_open consumer") &&
             check(rq_push(producer, "installed", 9, 0), "rq_push");
    char buf[32];
    size_t len = 0;
    ok = ok && check(rq_pop(consumer, buf, sizeof buf, &len, 0), "rq_pop");
    if (ok && (len != 9 || memcmp(buf, "installed", 9) != 0)) {
        fprintf(stderr, "package consumer: popped the wrong message\n");
        ok = 0;
    }
    rq_close(producer);
    rq_close(consumer);
    ok = check(rq_unlink(name), "rq_unlink") && ok;

    rq_coalesce *requester = NULL, *observer = NULL;
    rq_coalesce_stats st;
    rq_coalesce_unlink(name);
    ok = ok && check(rq_coalesce_open(&requester, name, RQ_PRODUCER, 0), "rq_coalesce_open") &&
         check(rq_coalesce_request(requester), "rq_coalesce_request") &&
         check(rq_coalesce_attach(&observer, name, RQ_OBSERVER), "rq_coalesce_attach") &&
         check(rq_coalesce_stat(observer, &st), "rq_coalesce_stat");
    if (ok && (st.requests != 1 || !st.owed)) {
        fprintf(stderr, "package consumer: the request was not counted\n");
        ok = 0;
    }
    rq_coalesce_close(requester);
    rq_coalesce_close(observer);
    rq_coalesce_unlink(name);
    if (!ok)
        return 1;
    printf("ok\n");
    return 0;
}
