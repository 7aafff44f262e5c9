/*
 * loop/loop_inbox: run tasks on a libuv loop's thread, posted from any thread.
 *
 * An inbox is a mutex-protected FIFO plus a uv_async_t. Producers (the store's
 * writer thread, worker threads) push intrusive tasks; the loop thread runs
 * them in push order. uv_async_send coalesces wake-ups, so a burst of
 * completions costs one loop iteration.
 */
#ifndef KITH_LOOP_INBOX_H
#define KITH_LOOP_INBOX_H

#include <uv.h>

typedef struct loop_task loop_task_t;
typedef void (*loop_task_fn)(loop_task_t *task);

/* Embed in the object the task is about; fn runs on the inbox's loop thread and
 * owns the task from then on. */
struct loop_task {
    loop_task_t *next;
    loop_task_fn fn;
};

typedef struct loop_inbox {
    uv_async_t async;
    uv_mutex_t lock; /* guards head, tail and closing */
    loop_task_t *head;
    loop_task_t *tail;
    int closing;
    void (*on_closed)(struct loop_inbox *);
} loop_inbox_t;

/* Initialises the inbox on loop; call on the loop's thread. 0 or KITH_EIO. */
int loop_inbox_init(loop_inbox_t *ib, uv_loop_t *loop);

/* Queues task to run on the loop thread. Any thread. */
void loop_inbox_push(loop_inbox_t *ib, loop_task_t *task);

/* Runs every queued task now. Loop thread only. */
void loop_inbox_drain(loop_inbox_t *ib);

/* Runs what is queued, then closes the handle; on_closed (may be NULL) runs
 * after libuv's close callback, when ib may be freed. Loop thread only; no
 * producer may push after this. */
void loop_inbox_close(loop_inbox_t *ib, void (*on_closed)(loop_inbox_t *));

#endif
