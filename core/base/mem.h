/*
 * base/mem: allocation that aborts on out-of-memory.
 *
 * Internal allocations use these and never check for NULL. Budgets that a user
 * can exceed (Lua states, request bodies) are enforced elsewhere and return
 * KITH_ENOMEM / KITH_ELIMIT instead of aborting. Free with free().
 */
#ifndef KITH_BASE_MEM_H
#define KITH_BASE_MEM_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
void *xmemdup(const void *p, size_t n);

/* Tunes the allocator for this program; call first thing in main(). LMDB
 * allocates ~3 MB of scratch for every nested transaction (one per write op)
 * and frees it at once: glibc would hand that memory back to the kernel and
 * take it again every time (trimming, mmap/munmap), which measured as the
 * write path's largest cost. We keep it: blocks under 32 MB come from the
 * heap and up to 256 MB of free heap is kept. */
void mem_init(void);

/* Number of elements in a fixed array. */
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
