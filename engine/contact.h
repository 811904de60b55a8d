/*
 * contact.h - a user's contact list entries as they are stored.
 *
 * One record per (user, contact) in the rosters column family: the
 * subscription state (sub.h, shared by every protocol), the name the user gave
 * the contact and the groups it is filed under (XMPP roster items, RFC 6121
 * §2.1.2; SIP resource lists render the same data). Plus one version counter
 * per user for roster versioning (XEP-0237, RFC 6121 §2.6).
 *
 * Keys: "<user>\0<contact>" for an entry and "<user>\0" for the version, so
 * that a prefix scan of "<user>\0" reads the version first and then the
 * entries in contact order. User and contact are canonical bare JIDs (which
 * never contain a NUL byte).
 *
 * Values are a small versioned binary format; decoding bounds-checks every
 * length, so a damaged record is an error, never a crash.
 *
 * Threads: pure functions, any thread.
 */
#ifndef PRESENCED_CONTACT_H
#define PRESENCED_CONTACT_H

#include "engine/buf.h"
#include "engine/common.h"
#include "engine/sub.h"

/* RFC 6121 leaves these open; limits keep one record bounded (a roster item
 * is pushed whole to every resource). 1023 matches a JID part's limit. */
#define CONTACT_NAME_MAX 1023
#define CONTACT_GROUP_MAX 1023
#define CONTACT_GROUPS_MAX 64
#define CONTACT_KEY_MAX 3071        /* a bare JID: 1023 + '@' + 1023 + slack */

typedef struct {
    sub_state_t sub;
    str_t name;                     /* empty: no name */
    unsigned n_groups;
    str_t groups[CONTACT_GROUPS_MAX];
} contact_t;

/* Appends the record's storage value to out. -EINVAL if a limit is passed or
 * the state is invalid. */
int contact_encode(const contact_t *c, buf_t *out);
/* Fills c with slices into value. 0 or -EBADMSG. */
int contact_decode(const void *value, size_t len, contact_t *c);

/* Storage keys; appended to out. */
void contact_key(str_t user, str_t contact, buf_t *out);
void contact_version_key(str_t user, buf_t *out);
/* Splits an entry key back; -EBADMSG for a version key or garbage. */
int contact_key_split(const void *key, size_t len, str_t *user, str_t *contact);

/* The version counter's value: 8 bytes little-endian. */
void contact_version_encode(uint64_t version, buf_t *out);
int contact_version_decode(const void *value, size_t len, uint64_t *version);

#endif
