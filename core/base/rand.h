/*
 * base/rand: cryptographically secure random bytes from the kernel (getrandom),
 * buffered per thread so that IDs cost no system call each.
 */
#ifndef KITH_BASE_RAND_H
#define KITH_BASE_RAND_H

#include <stddef.h>

/* Fills out with n secure random bytes. Aborts if the kernel cannot supply them
 * (a machine without entropy cannot safely mint IDs or keys). Any thread. */
void rand_bytes(void *out, size_t n);

#endif
