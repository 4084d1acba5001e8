/* workspace.c: the growable scratch arena operators take their temporary buffers from. */
#include "internal.h"
#include <stdlib.h>

nad_workspace *nad_workspace_new(size_t initial_bytes)
{
    nad_workspace *ws = calloc(1, sizeof *ws);
    if (!ws) {
        nad_fail(NAD_ENOMEM, "workspace_new: out of memory");
        return NULL;
    }
    if (initial_bytes && !nad_workspace_get(ws, initial_bytes)) {
        free(ws);
        return NULL;
    }
    return ws;
}

void nad_workspace_free(nad_workspace *ws)
{
    if (!ws) return;
    nad_free_aligned(ws->data);
    free(ws);
}

size_t nad_workspace_capacity(const nad_workspace *ws) { return ws ? ws->capacity : 0; }

void *nad_workspace_get(nad_workspace *ws, size_t bytes)
{
    if (!ws) {
        nad_fail(NAD_EINVAL, "workspace: NULL workspace");
        return NULL;
    }
    if (bytes <= ws->capacity) return ws->data;
    /* grow by at least half again, so a slowly rising request does not reallocate each time */
    size_t cap = ws->capacity + ws->capacity / 2;
    if (cap < bytes) cap = bytes;
    void *p = nad_alloc_zeroed(cap);
    if (!p) {
        nad_fail(NAD_ENOMEM, "workspace: out of memory for %zu bytes", cap);
        return NULL;
    }
    nad_free_aligned(ws->data);
    ws->data = p;
    ws->capacity = cap;
    return p;
}
