/*
 * window.c - rq-bridge out's sliding window (window.h).
 */
#include "window.h"

#include <stdint.h>
#include <string.h>

static int acked(unsigned char a)
{
    return a == BWIN_STORED || a == BWIN_DUPLICATE;
}

void bwin_init(bwin *w, uint32_t cap, uint64_t base)
{
    memset(w, 0, sizeof *w);
    w->cap = cap < 1 ? 1 : cap > (uint32_t)BRIDGE_WINDOW_MAX ? (uint32_t)BRIDGE_WINDOW_MAX : cap;
    w->base = base;
}

void bwin_restart(bwin *w, uint64_t base)
{
    for (uint32_t i = 0; i < w->sent; i++)
        w->answer[bwin_slot(w->base + i)] = BWIN_NONE;
    w->base = base;
    w->sent = 0;
    w->prefix = 0;
}

uint32_t bwin_room(const bwin *w)
{
    return w->cap - w->sent;
}

int bwin_publish(bwin *w, uint64_t seq, int redelivered, int64_t now_ms)
{
    if (w->sent >= w->cap || seq != w->base + w->sent)
        return -1;
    uint32_t i = bwin_slot(seq);
    w->answer[i] = BWIN_NONE;
    w->redelivered[i] = redelivered != 0;
    w->sent_ms[i] = now_ms;
    w->sent++;
    return 0;
}

int bwin_answer(bwin *w, uint64_t seq, int answer, int err, int code, uint64_t stream_seq)
{
    if (seq < w->base || seq - w->base >= w->sent)
        return 0;
    uint32_t i = bwin_slot(seq);
    if (w->answer[i] != BWIN_NONE)
        return 0;
    w->answer[i] = (unsigned char)answer;
    w->err[i] = err;
    w->code[i] = code;
    if (acked((unsigned char)answer) && stream_seq > w->last_stream_seq)
        w->last_stream_seq = stream_seq;
    /* The prefix grows only from its end: an answer further on waits there
     * until the gap before it is filled. */
    while (w->prefix < w->sent && acked(w->answer[bwin_slot(w->base + w->prefix)]))
        w->prefix++;
    return 1;
}

int bwin_head(const bwin *w)
{
    return w->sent ? w->answer[bwin_slot(w->base)] : BWIN_NONE;
}

void bwin_release(bwin *w, uint32_t k, bwin_counts *c)
{
    c->duplicates = c->redelivered = 0;
    if (k > w->prefix)
        k = w->prefix;
    for (uint32_t j = 0; j < k; j++) {
        size_t i = bwin_slot(w->base + j);
        c->duplicates += w->answer[i] == BWIN_DUPLICATE;
        c->redelivered += w->redelivered[i];
        w->answer[i] = BWIN_NONE;
    }
    w->base += k;
    w->sent -= k;
    w->prefix -= k;
}

int bwin_parse_pos(const char *text, const char *id, uint64_t *pos)
{
    const char *colon = text ? strrchr(text, ':') : NULL;
    if (!colon || !id || (size_t)(colon - text) != strlen(id) ||
        memcmp(text, id, (size_t)(colon - text)) != 0 || !colon[1] ||
        (colon[1] == '0' && colon[2])) /* one way to write a number: no leading zeros */
        return 0;
    uint64_t v = 0;
    for (const char *c = colon + 1; *c; c++) {
        if (*c < '0' || *c > '9' || v > (UINT64_MAX - (uint64_t)(*c - '0')) / 10)
            return 0;
        v = v * 10 + (uint64_t)(*c - '0');
    }
    *pos = v;
    return 1;
}

/* The length of the token at S (up to '.' or the end). */
static size_t token_len(const char *s)
{
    const char *dot = strchr(s, '.');
    return dot ? (size_t)(dot - s) : strlen(s);
}

int bwin_subject_matches(const char *pattern, const char *subject)
{
    if (!pattern || !subject || !*pattern || !*subject)
        return 0;
    for (;;) {
        size_t p = token_len(pattern), t = token_len(subject);
        if (p == 1 && pattern[0] == '>' && !pattern[1])
            return t > 0;
        if (t == 0 ||
            !((p == 1 && pattern[0] == '*') || (p == t && memcmp(pattern, subject, p) == 0)))
            return 0;
        pattern += p;
        subject += t;
        if (!*pattern || !*subject)
            return !*pattern && !*subject;
        pattern++; /* the dots */
        subject++;
    }
}
