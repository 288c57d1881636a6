/*
 * fuzz_bridge_text.c - what rq-bridge out reads from a NATS server and
 * does not trust: the Rq-Pos header of the stream's last message
 * (bwin_parse_pos) and the stream's subjects (bwin_subject_matches).
 *
 * Input: TEXT NUL ID NUL SUBJECT (a missing part is empty), copied into a
 * buffer of exactly that size, so that ASan sees any read past a string.
 * Checked: a position read back is written the one way out writes it
 * (ID:SEQ, the same text); a subject without wildcards matches only
 * itself.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "window.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 3);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    memset(buf + size, 0, 3);
    const char *text = buf;
    const char *id = text + strlen(text) + 1;
    const char *subject = id < buf + size + 1 ? id + strlen(id) + 1 : buf + size + 2;
    if (id > buf + size + 2)
        id = buf + size + 2;
    if (subject > buf + size + 2)
        subject = buf + size + 2;

    uint64_t pos = 0;
    if (bwin_parse_pos(text, id, &pos)) {
        char again[600];
        snprintf(again, sizeof again, "%s:%" PRIu64, id, pos);
        if (strcmp(again, text) != 0) {
            fprintf(stderr, "rq fuzz: \"%s\" read as %s position %" PRIu64 "\n", text, id, pos);
            abort();
        }
    }
    if (bwin_subject_matches(subject, text) && !strpbrk(subject, "*>") &&
        strcmp(subject, text) != 0) {
        fprintf(stderr, "rq fuzz: subject \"%s\" matched \"%s\"\n", subject, text);
        abort();
    }
    free(buf);
    return 0;
}
