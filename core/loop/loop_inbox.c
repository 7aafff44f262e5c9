#include "loop/loop_inbox.h"

#include "base/err.h"

#include <stddef.h>

static void inbox_on_async(uv_async_t *h)
{
    loop_inbox_drain(h->data);
}

int loop_inbox_init(loop_inbox_t *ib, uv_loop_t *loop)
{
    ib->head = ib->tail = NULL;
    ib->closing = 0;
    ib->on_closed = NULL;
    if (uv_mutex_init(&ib->lock) != 0) return err_set(KITH_EIO, "cannot create inbox lock");
    int rc = uv_async_init(loop, &ib->async, inbox_on_async);
    if (rc != 0) {
        uv_mutex_destroy(&ib->lock);
        return err_set(KITH_EIO, "uv_async_init: %s", uv_strerror(rc));
    }
    ib->async.data = ib;
    return 0;
}

void loop_inbox_push(loop_inbox_t *ib, loop_task_t *task)
{
    task->next = NULL;
    uv_mutex_lock(&ib->lock);
    if (ib->tail)
        ib->tail->next = task;
    else
        ib->head = task;
    ib->tail = task;
    uv_mutex_unlock(&ib->lock);
    uv_async_send(&ib->async);
}

void loop_inbox_drain(loop_inbox_t *ib)
{
    uv_mutex_lock(&ib->lock);
    loop_task_t *t = ib->head;
    ib->head = ib->tail = NULL;
    uv_mutex_unlock(&ib->lock);
    while (t) {
        loop_task_t *next = t->next;
        t->fn(t); /* may free t */
        t = next;
    }
}

static void inbox_on_close(uv_handle_t *h)
{
    loop_inbox_t *ib = h->data;
    uv_mutex_destroy(&ib->lock);
    if (ib->on_closed) ib->on_closed(ib);
}

void loop_inbox_close(loop_inbox_t *ib, void (*on_closed)(loop_inbox_t *))
{
    loop_inbox_drain(ib);
    ib->closing = 1;
    ib->on_closed = on_closed;
    uv_close((uv_handle_t *)&ib->async, inbox_on_close);
}
