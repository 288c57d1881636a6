/*
 * test_exactly_once.c - examples/exactly_once.c under a kill torture
 * (POSIX only).
 *
 * A producer (a child of this test) pushes "m<seq>" for the queue's next
 * sequence numbers, resuming after each restart where rq_next_seq says;
 * the example consumer appends "<seq> m<seq>" lines to a file.  Both are
 * SIGKILLed at random moments, again and again, and restarted.  At the end
 * the file must hold every message exactly once, in order: no line lost,
 * none twice, none torn.
 *
 *   test_exactly_once PATH_OF_rq_exactly_once
 * (RQ_TEST_KILLS overrides the default of 1,000 kills.)
 */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "helpers.h"
#include "rq.h"

extern char **environ;

static const char *example_path;
static unsigned long kills_wanted;

/* Pushes "m<seq>" until killed (or LIMIT messages exist, if not 0). */
static int producer_main(const char *queue)
{
    rq *p;
    if (rq_open(&p, queue, RQ_PRODUCER, NULL) != RQ_OK)
        return 50;
    for (;;) {
        uint64_t seq;
        if (rq_next_seq(p, &seq) != RQ_OK)
            return 51;
        char msg[32];
        int n = snprintf(msg, sizeof msg, "m%llu", (unsigned long long)seq);
        if (rq_push(p, msg, (size_t)n, RQ_INFINITE) != RQ_OK)
            return 52;
    }
}

static pid_t start_consumer(const char *queue, const char *output, const char *count)
{
    char *argv[] = {(char *)example_path, (char *)queue, (char *)output, (char *)count, NULL};
    pid_t pid;
    assert_int_equal(posix_spawn(&pid, example_path, NULL, NULL, argv, environ), 0);
    return pid;
}

static void kill_producer(th_pid pid)
{
    th_kill(pid);
    int status;
    assert_int_equal(th_wait(pid, 10000, &status), 0);
    assert_true(th_was_killed(status));
}

static void kill_and_reap(pid_t pid)
{
    kill(pid, SIGKILL);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    /* Killed, or (rarely) exited on its own: a consumer never exits with
     * COUNT 0, a producer never exits at all. */
    if (!WIFSIGNALED(status))
        fail_msg("a child exited with status %d before it was killed", WEXITSTATUS(status));
}

/* Every line "i m<i>" for i = 0 .. total - 1, in order, each once. */
static void check_output(const char *output, uint64_t total)
{
    FILE *f = fopen(output, "r");
    assert_non_null(f);
    char line[128];
    uint64_t expect = 0;
    while (fgets(line, sizeof line, f)) {
        char want[64];
        snprintf(want, sizeof want, "%llu m%llu\n", (unsigned long long)expect,
                 (unsigned long long)expect);
        if (strcmp(line, want) != 0)
            fail_msg("line %llu is \"%s\", expected \"%s\"", (unsigned long long)expect, line,
                     want);
        expect++;
    }
    fclose(f);
    assert_int_equal(expect, total);
}

/* Messages pushed (PRODUCER) or released (consumer) so far. */
static uint64_t progress(rq *keep, int producer)
{
    rq_stats st;
    assert_int_equal(rq_stat(keep, &st), RQ_OK);
    return producer ? st.pushed : st.popped;
}

/* Waits (at most 5 s) until the side just restarted has moved messages
 * since SINCE: so that every kill lands in the middle of real work, not in
 * a process start (slow under the sanitizers). */
static void await_progress(rq *keep, int producer, uint64_t since)
{
    uint64_t until = th_now_ms() + 5000;
    while (progress(keep, producer) == since && th_now_ms() < until)
        th_sleep_us(200);
}

static void test_the_output_holds_every_message_once(void **state)
{
    (void)state;
    const char *queue = th_name("once");
    char output[] = "/tmp/rq_exactly_once.XXXXXX";
    int fd = mkstemp(output);
    assert_true(fd >= 0);
    close(fd);
    rq *keep = th_open(queue, RQ_OBSERVER, 64, 64, 0);

    uint64_t rng = 0x5eed ^ (uint64_t)th_getpid();
    th_pid producer = th_spawn("producer_main", queue, 600);
    pid_t consumer = start_consumer(queue, output, "0");
    unsigned long kills = 0, producer_kills = 0;
    uint64_t started = th_now_ms();
    uint64_t since[2] = {0, 0}; /* [consumer, producer] at its last start */
    while (kills < kills_wanted) {
        int victim = (int)(th_rand(&rng) % 2);
        await_progress(keep, victim, since[victim]);
        th_sleep_us(th_rand(&rng) % 2000);
        since[victim] = progress(keep, victim);
        if (victim) {
            kill_producer(producer);
            producer = th_spawn("producer_main", queue, 600);
            producer_kills++;
        } else {
            kill_and_reap(consumer);
            consumer = start_consumer(queue, output, "0");
        }
        kills++;
    }
    kill_producer(producer);
    kill_and_reap(consumer);

    /* Everything published so far must reach the file exactly once. */
    rq *p;
    assert_int_equal(rq_open(&p, queue, RQ_PRODUCER, NULL), RQ_OK);
    uint64_t total;
    assert_int_equal(rq_next_seq(p, &total), RQ_OK);
    rq_close(p);
    char count[32];
    snprintf(count, sizeof count, "%llu", (unsigned long long)total);
    consumer = start_consumer(queue, output, count);
    int status;
    assert_int_equal(waitpid(consumer, &status, 0), consumer);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    check_output(output, total);

    rq_stats st;
    assert_int_equal(rq_stat(keep, &st), RQ_OK);
    print_message("exactly once: %lu kills (%lu of the producer) in %.1f s, %llu messages, "
                  "each in the output once; %llu consumer takeovers\n",
                  kills, producer_kills, (double)(th_now_ms() - started) / 1000.0,
                  (unsigned long long)total, (unsigned long long)st.consumer_takeovers);
    assert_true(total > kills); /* the run did real work between kills */
    rq_close(keep);
    rq_unlink(queue);
    unlink(output);
}

int main(int argc, char **argv)
{
    static const struct th_child children[] = {TH_CHILD(producer_main)};
    TH_INIT(argc, argv, children);
    if (argc != 2) {
        fprintf(stderr, "usage: %s PATH_OF_rq_exactly_once\n", argv[0]);
        return 2;
    }
    example_path = argv[1];
    kills_wanted = th_kill_count("exactly-once kills", 1000, 1000);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_the_output_holds_every_message_once),
    };
    return cmocka_run_group_tests_name("exactly_once", tests, NULL, NULL);
}
