/*
 * presence.c - see presence.h.
 */
#include "engine/presence.h"

#define PRES_OBSERVERS_MAX 4

static pres_list_fn pres_providers[PRES_PROVIDERS];
static pres_changed_fn pres_observers[PRES_OBSERVERS_MAX];
static pres_sub_changed_fn pres_sub_observers[PRES_OBSERVERS_MAX];
static pres_sub_get_fn pres_get;
static pres_sub_request_fn pres_request;
static im_deliver_fn im_deliver_hook;
static im_failed_fn im_failed_hook;
static im_offer_fn im_offers[PRES_PROVIDERS];

static pres_line_fn pres_line_hook;

void pres_watch_lines(pres_line_fn fn)
{
    pres_line_hook = fn;
}

void pres_line_changed(shard_t *sh, str_t user, str_t uri)
{
    if (pres_line_hook)
        pres_line_hook(sh, user, uri);
}

void im_register_delivery(im_deliver_fn deliver, im_failed_fn failed)
{
    im_deliver_hook = deliver;
    im_failed_hook = failed;
}

void im_register_offer(pres_provider_t p, im_offer_fn offer)
{
    ASSERT(p < PRES_PROVIDERS);
    im_offers[p] = offer;
}

im_result_t im_deliver(shard_t *sh, const im_msg_t *msg)
{
    return im_deliver_hook ? im_deliver_hook(sh, msg) : IM_UNREACHABLE;
}

im_result_t im_offer(shard_t *sh, const im_msg_t *msg, pres_provider_t except)
{
    for (unsigned p = 0; p < PRES_PROVIDERS; p++)
        if (p != except && im_offers[p] && im_offers[p](sh, msg) == IM_SENT)
            return IM_SENT;
    return IM_UNREACHABLE;
}

void im_failed(shard_t *sh, const im_msg_t *msg, unsigned status)
{
    if (im_failed_hook)
        im_failed_hook(sh, msg, status);
}

void pres_provide(pres_provider_t p, pres_list_fn list)
{
    ASSERT(p < PRES_PROVIDERS);
    pres_providers[p] = list;
}

static void pres_add(void **table, void *fn)
{
    for (unsigned i = 0; i < PRES_OBSERVERS_MAX; i++) {
        if (table[i] == fn)
            return;
        if (!table[i]) {
            table[i] = fn;
            return;
        }
    }
    PANIC("too many presence observers");
}

void pres_observe(pres_changed_fn fn)
{
    pres_add((void **)pres_observers, (void *)fn);
}

void pres_observe_subs(pres_sub_changed_fn fn)
{
    pres_add((void **)pres_sub_observers, (void *)fn);
}

void pres_keep_subs(pres_sub_get_fn get, pres_sub_request_fn request)
{
    pres_get = get;
    pres_request = request;
}

void pres_sources(shard_t *sh, str_t user, pres_each_fn each, void *ctx)
{
    for (unsigned p = 0; p < PRES_PROVIDERS; p++)
        if (pres_providers[p])
            pres_providers[p](sh, user, each, ctx);
}

void pres_changed(shard_t *sh, str_t user, pres_provider_t from)
{
    for (unsigned i = 0; i < PRES_OBSERVERS_MAX && pres_observers[i]; i++)
        pres_observers[i](sh, user, from);
}

void pres_sub_changed(shard_t *sh, str_t user, str_t contact, sub_state_t state)
{
    for (unsigned i = 0; i < PRES_OBSERVERS_MAX && pres_sub_observers[i]; i++)
        pres_sub_observers[i](sh, user, contact, state);
}

sub_state_t pres_sub_get(shard_t *sh, str_t user, str_t contact)
{
    return pres_get ? pres_get(sh, user, contact) : 0;
}

void pres_sub_request(shard_t *sh, str_t user, str_t contact)
{
    if (pres_request)
        pres_request(sh, user, contact);
}
