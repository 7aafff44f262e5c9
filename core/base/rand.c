#include "base/rand.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define RAND_POOL 512

static _Thread_local unsigned char pool[RAND_POOL];
static _Thread_local size_t pool_left;

static void rand_fill(void *out, size_t n)
{
    unsigned char *p = out;
    while (n > 0) {
        ssize_t r = getrandom(p, n, 0);
        if (r < 0) {
            if (errno == EINTR) continue;
            fprintf(stderr, "kith: getrandom failed: %s\n", strerror(errno));
            abort();
        }
        p += r;
        n -= (size_t)r;
    }
}

void rand_bytes(void *out, size_t n)
{
    if (n > RAND_POOL / 2) {
        rand_fill(out, n);
        return;
    }
    if (pool_left < n) {
        rand_fill(pool, RAND_POOL);
        pool_left = RAND_POOL;
    }
    /* Hand out bytes from the end and wipe them, so none is ever used twice. */
    memcpy(out, pool + pool_left - n, n);
    memset(pool + pool_left - n, 0, n);
    pool_left -= n;
}
