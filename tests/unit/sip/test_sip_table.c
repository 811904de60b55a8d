/*
 * The SIP service's chained tables: nodes found by key through several
 * doublings, deleted ones gone and the rest still found, counts kept, and a
 * key stored at an offset other than the first bytes after the link.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "protocols/sip/sip_int.h"
#include "tests/unit/t.h"

typedef struct node {
    struct node *next;
    unsigned value;
    char key[24];
} node_t;

int main(void)
{
    enum { N = 20000 };
    node_t *nodes = calloc(N, sizeof(*nodes));
    CHECK(nodes != NULL);
    sip_table_t t;
    sip_table_init(&t, 4, offsetof(node_t, key));
    for (unsigned i = 0; i < N; i++) {
        nodes[i].value = i;
        snprintf(nodes[i].key, sizeof(nodes[i].key), "z9hG4bK-%u", i);
        sip_table_add(&t, &nodes[i]);
    }
    CHECK_EQ(t.count, N);
    CHECK(t.n >= N);                /* grew: chains stay short */
    CHECK((t.n & (t.n - 1)) == 0);
    unsigned found = 0;
    for (unsigned i = 0; i < N; i++) {
        node_t *n = sip_table_find(&t, nodes[i].key);
        found += n == &nodes[i];
    }
    CHECK_EQ(found, N);
    CHECK(sip_table_find(&t, "z9hG4bK-absent") == NULL);

    for (unsigned i = 0; i < N; i += 2)
        sip_table_del(&t, &nodes[i]);
    CHECK_EQ(t.count, N / 2);
    unsigned gone = 0, kept = 0;
    for (unsigned i = 0; i < N; i++) {
        node_t *n = sip_table_find(&t, nodes[i].key);
        if (i % 2)
            kept += n == &nodes[i];
        else
            gone += n == NULL;
    }
    CHECK_EQ(gone, N / 2);
    CHECK_EQ(kept, N / 2);
    sip_table_del(&t, &nodes[0]);   /* not in the table any more: nothing happens */
    CHECK_EQ(t.count, N / 2);

    /* Every node is in exactly one chain. */
    unsigned walked = 0;
    for (unsigned i = 0; i < t.n; i++)
        for (node_t *n = t.slots[i]; n; n = n->next)
            walked++;
    CHECK_EQ(walked, N / 2);

    sip_table_fini(&t);
    free(nodes);
    T_DONE();
}
