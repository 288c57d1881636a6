/*
 * fuzz_segment.c - libFuzzer target: a hostile segment at open.
 *
 * Each input makes a real object through the library (kind and geometry
 * from the head), then writes the input's image over its header and slots
 * (and may truncate or extend it) through a second mapping, as a hostile
 * or broken peer could have left it.  Then handles open it with the roles
 * the input chooses, through the real validation in rq_open /
 * rq_coalesce_open, and run the input's operations with timeout 0.
 * harness.h describes the input; harness.c traps on any result the API
 * does not allow.
 *
 * SPDX-License-Identifier: MIT
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "harness.h"
#include "layout.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Writes the image over the object and gives it the size the head asks. */
static void write_image(const struct fz_head *h, struct fz_in *in)
{
    size_t len = h->image_len;
    if (len > in->size - in->pos)
        len = in->size - in->pos;
    const uint8_t *image = in->data + in->pos;
    in->pos += len;
    struct fz_view v;
    fz_view_open(&v, h, h->size);
    if (v.size > 0) /* the MPSC lock area too: plain data since layout 2 */
        memcpy(v.addr, image, len < v.size ? len : v.size);
    fz_view_close(&v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_init();
    struct fz_in in = {data, size, 0};
    struct fz_head h;
    fz_read_head(&in, &h);
    fz_make_object(&h);
    write_image(&h, &in);
    fz_run(&h, &in, NULL, 0);
    fz_check_no_leaks();
    return 0;
}
