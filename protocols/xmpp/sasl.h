/*
 * sasl.h - SASL for XMPP (RFC 6120 §6): the server side of SCRAM-SHA-256 and
 * SCRAM-SHA-1 (RFC 5802, RFC 7677) and PLAIN (RFC 4616), the stored SCRAM
 * credentials that both verify against, and a SCRAM client for the unit tests
 * and presbench.
 *
 * The XMPP stream code owns the dance (<auth/>, <challenge/>, <response/>,
 * <success/>, <failure/>) and its base64 layer; this module sees the decoded
 * SASL payloads only and never touches the network or storage.
 *
 * Credentials. An account keeps one sasl_scram_creds_t per hash family, never
 * the password: salt, iteration count, StoredKey and ServerKey (RFC 5802 §3).
 * SCRAM verifies a proof against StoredKey; PLAIN re-derives StoredKey from the
 * offered password with the stored salt and count and compares (so PLAIN needs
 * no plaintext either). sasl_scram_creds_encode/decode give the versioned blob
 * that storage keeps.
 *
 * Passwords are prepared as the PRECIS OpaqueString profile (RFC 8265 §4.2)
 * before every derivation, on the server, in the tools that enrol users and in
 * the client here, so that all of them hash the same bytes (see
 * sasl_password_prepare for exactly what that is). Usernames are handed back
 * decoded but otherwise untouched: preparing them (RFC 8265 §3.3) is the JID
 * module's job (xmpp_jid_prep_localpart), done once at the edge.
 *
 * SCRAM server exchange, one per authenticating connection:
 *
 *     sasl_scram_server_init(&ex, &conf);
 *     rc = sasl_scram_server_start(&ex, SASL_HASH_SHA256, msg, len);
 *     key = xmpp_jid_prep_localpart(sasl_scram_server_username(&ex)) "@" domain;
 *     creds = lookup(key);                                        // NULL if none
 *     rc = sasl_scram_server_first(&ex, creds, key, out, sizeof(out), &n);
 *                                                                 // challenge
 *     rc = sasl_scram_server_final(&ex, msg, len, out, sizeof(out), &n);
 *     // rc == 0: <success> carrying out ("v=..."); else <failure> with
 *     // sasl_failure_name(sasl_failure_for_error(rc))
 *     sasl_scram_server_fini(&ex);
 *
 * An unknown user gets a challenge that looks like a real one (a salt derived
 * from a server secret and the account key the caller looked up, stable across
 * attempts and spellings, and the configured iteration count), and fails with
 * not-authorized at the final step exactly as a wrong password does, so
 * usernames cannot be probed.
 *
 * Memory. Every object here is a plain struct with fixed buffers sized by the
 * constants below; nothing allocates (BoringSSL's one-shot HMAC/PBKDF2 may use
 * scratch memory internally, released before they return). Slices handed out
 * point into the object (or, for PLAIN, into the caller's message) and are
 * valid until the object is re-initialised or finalised.
 *
 * Threads. An exchange belongs to the shard that owns the connection and is
 * used there only. All functions are reentrant; none blocks. The PBKDF2 calls
 * (sasl_scram_derive, sasl_scram_creds_new, sasl_plain_verify,
 * sasl_scram_client_final) cost iterations x 2 hash blocks, about a millisecond
 * at 4096 iterations: a shard may afford that per PLAIN login, a SCRAM server
 * step never pays it (it only computes a few HMACs).
 *
 * Errors are 0 or -errno. sasl_failure_for_error maps every error the server
 * side returns to an RFC 6120 §6.5 condition. Calling functions out of order,
 * or with arguments the caller controls out of range, is a programmer error
 * and crashes.
 */
#ifndef PRESENCED_XMPP_SASL_H
#define PRESENCED_XMPP_SASL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/common.h"

/* ---- Limits -------------------------------------------------------------- */

/* SHA-256 is the largest hash we speak (RFC 7677). */
#define SASL_DIGEST_MAX_BYTES 32

/* Stored credentials carry at least 128 bits of salt (NIST SP 800-132 §5.1); new
 * ones get exactly that. 64 leaves room for imported credentials (Prosody uses a
 * 36-byte UUID string as its salt). A SCRAM client accepts 1..64 from a server. */
#define SASL_SALT_MIN_BYTES 16
#define SASL_SALT_NEW_BYTES 16
#define SASL_SALT_MAX_BYTES 64

/* RFC 7677 §4: the iteration count SHOULD be at least 4096. Stored credentials,
 * the configured default and our client enforce that minimum; the derivation
 * primitive itself accepts any count from 1 (the RFC test vectors use 4096 too).
 * The maximum bounds the CPU a forged blob or a hostile server can demand:
 * ten million SHA-256 iterations are several seconds of one core, far beyond the
 * ~600,000 current guidance recommends for PBKDF2-HMAC-SHA256. */
#define SASL_ITERATIONS_DEFAULT 4096u
#define SASL_ITERATIONS_MIN 4096u
#define SASL_ITERATIONS_MAX 10000000u

/* Passwords, before and after preparation. RFC 4616 §2 requires accepting 255
 * bytes; four times that holds any passphrase people type. The code-point
 * buffer used by NFC has the same number of entries (see sasl_password_prepare). */
#define SASL_PASSWORD_MAX_BYTES 1024

/* PLAIN identities (RFC 4616 §2 asks for at least 255 bytes): the authcid is a
 * localpart (RFC 7622 §3.3.1: at most 1023 bytes), the authzid a JID (three parts
 * of at most 1023 bytes, RFC 7622 §3.1, and two separators). */
#define SASL_USERNAME_MAX_BYTES 1023
#define SASL_AUTHZID_MAX_BYTES 3071

/* A whole SCRAM client-first-message (gs2 header, n=, r=, extensions), which is
 * kept verbatim for the AuthMessage (RFC 5802 §3). Clients send well under 200
 * bytes (short username, 24-48 byte nonce, no authzid); 1 KiB is five times that
 * and keeps the exchange object under 3 KiB. SCRAM usernames and authzids are
 * therefore bounded by this message, not by the PLAIN limits above. */
#define SASL_CLIENT_FIRST_MAX_BYTES 1024

/* Client nonce: clients use 16-48 printable characters; RFC 5802 sets no bound. */
#define SASL_CNONCE_MAX_BYTES 256

/* Server nonce: 18 random bytes, base64 without padding = 24 printable
 * characters, 144 bits of freshness. The test hook may set up to 64. */
#define SASL_SNONCE_RANDOM_BYTES 18
#define SASL_SNONCE_MAX_BYTES 64

/* "r=" cnonce snonce ",s=" base64(salt) ",i=" count, and a NUL: 2 + 256 + 64 +
 * 3 + 88 + 3 + 8 + 1 = 425. */
#define SASL_SERVER_FIRST_MAX_BYTES 512

/* "c=" base64(gs2 header < 1 KiB) = 1368, ",r=" 320, ",p=" 44 come to about
 * 1740 at most; the rest is room for extensions (RFC 5802 §7). */
#define SASL_CLIENT_FINAL_MAX_BYTES 2048

/* "v=" base64(32 bytes) = 46, and a NUL. */
#define SASL_SERVER_FINAL_MAX_BYTES 64

/* Encoded credentials: 7 header bytes, salt, two keys (see sasl_scram_creds_encode). */
#define SASL_CREDS_BLOB_MAX_BYTES (7 + SASL_SALT_MAX_BYTES + 2 * SASL_DIGEST_MAX_BYTES)

/* ---- Mechanisms, hashes and failure conditions ----------------------------- */

typedef enum {
    SASL_HASH_SHA1 = 1,
    SASL_HASH_SHA256 = 2,
} sasl_hash_t;

typedef enum {
    SASL_MECH_SCRAM_SHA_256 = 0,
    SASL_MECH_SCRAM_SHA_1,
    SASL_MECH_PLAIN,
    SASL_MECH_COUNT,
} sasl_mech_t;

/* RFC 6120 §6.5; sasl_failure_name gives the element name. */
typedef enum {
    SASL_FAIL_ABORTED = 0,
    SASL_FAIL_ACCOUNT_DISABLED,
    SASL_FAIL_CREDENTIALS_EXPIRED,
    SASL_FAIL_ENCRYPTION_REQUIRED,
    SASL_FAIL_INCORRECT_ENCODING,
    SASL_FAIL_INVALID_AUTHZID,
    SASL_FAIL_INVALID_MECHANISM,
    SASL_FAIL_MALFORMED_REQUEST,
    SASL_FAIL_MECHANISM_TOO_WEAK,
    SASL_FAIL_NOT_AUTHORIZED,
    SASL_FAIL_TEMPORARY_AUTH_FAILURE,
    SASL_FAIL_COUNT,
} sasl_failure_t;

/* Digest length of a hash: 20 or 32. */
size_t sasl_hash_len(sasl_hash_t hash);

/* "SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN" (static storage). */
const char *sasl_mech_name(sasl_mech_t mech);

/* The mechanism named by an <auth mechanism='...'/> attribute (exact, case-
 * sensitive, RFC 4422 §3.1), or -ENOENT (answer invalid-mechanism). */
int sasl_mech_from_name(str_t name, sasl_mech_t *out);

/* "not-authorized", ... (static storage). */
const char *sasl_failure_name(sasl_failure_t failure);

/*
 * The condition to fail with after a server-side error of this module:
 *   -EACCES                              not-authorized (bad proof or password,
 *                                        unknown user, c= or r= that do not match)
 *   -EBADMSG, -EMSGSIZE, -EILSEQ,
 *   -EPROTONOSUPPORT, -ENOTSUP, -EINVAL  malformed-request
 *   anything else (-ENOSPC, -EIO)        temporary-auth-failure
 */
sasl_failure_t sasl_failure_for_error(int err);

/* A short English reason for the optional <text/> of a <failure/> (static
 * storage), e.g. "channel binding is not supported" for -EPROTONOSUPPORT. Says
 * nothing that tells a wrong password from an unknown user. */
const char *sasl_error_text(int err);

/* ---- Passwords and UTF-8 ---------------------------------------------------- */

/* Well-formed UTF-8 (RFC 3629: no overlongs, surrogates or code points past
 * U+10FFFF). NUL counts as valid here; callers that forbid it check. */
bool sasl_utf8_valid(const char *s, size_t len);

/*
 * Prepares a password as the PRECIS OpaqueString profile (RFC 8265 §4.2) does,
 * into out (cap bytes; SASL_PASSWORD_MAX_BYTES always suffices), no NUL added:
 *   1. the input must be well-formed UTF-8 and every code point assigned in
 *      the Unicode version of the linked utf8proc (FreeformClass disallows
 *      unassigned code points, RFC 8264 §9.12; NFC is only stable for assigned
 *      ones);
 *   2. non-ASCII spaces (general category Zs) map to U+0020 (§4.2.2.1 step 1);
 *   3. NFC (§4.2.2.1 step 4); no width or case mapping, as the profile says;
 *   4. control characters (Cc, which includes NUL, TAB and DEL) are rejected
 *      (FreeformClass, RFC 8264 §9.12), and so is an empty result (§4.2.2.2).
 * Not enforced: the rest of FreeformClass's disallowed set (old Hangul jamo,
 * default-ignorable code points) and the join-control context rules. That only
 * makes us accept a few passwords a strict implementation would refuse; the
 * preparation is deterministic, so enrolment and login still agree.
 *
 * Returns 0 and *out_len, -EILSEQ (invalid UTF-8, unassigned or control
 * character), -EINVAL (empty), -EMSGSIZE (input, decomposition or result over
 * SASL_PASSWORD_MAX_BYTES, or the result does not fit in cap).
 */
int sasl_password_prepare(const char *in, size_t len, char *out, size_t cap, size_t *out_len);

/* ---- SCRAM credentials --------------------------------------------------- */

typedef struct {
    sasl_hash_t hash;
    uint32_t iterations;
    uint8_t salt_len;
    uint8_t salt[SASL_SALT_MAX_BYTES];
    uint8_t stored_key[SASL_DIGEST_MAX_BYTES];      /* H(ClientKey); hash-length bytes used */
    uint8_t server_key[SASL_DIGEST_MAX_BYTES];      /* HMAC(SaltedPassword, "Server Key") */
} sasl_scram_creds_t;

/*
 * RFC 5802 §3 for one password: prepares it (sasl_password_prepare),
 * SaltedPassword = Hi(password, salt, i) (PBKDF2), then StoredKey and
 * ServerKey, into *out (salt and count copied in). salt_len 1..SASL_SALT_MAX_BYTES
 * and iterations 1..SASL_ITERATIONS_MAX (the primitive accepts the short salts
 * of the RFC examples and of other servers; policy is in creds_new and in the
 * blob format). Costs `iterations` PBKDF2 rounds.
 * Returns 0, -EINVAL (salt or count out of range), the errors of
 * sasl_password_prepare, or -EIO (BoringSSL failed).
 */
int sasl_scram_derive(sasl_hash_t hash, const char *password, size_t password_len,
                      const uint8_t *salt, size_t salt_len, uint32_t iterations,
                      sasl_scram_creds_t *out);

/* Credentials for a new or changed password: SASL_SALT_NEW_BYTES of salt from
 * RAND_bytes, iterations in SASL_ITERATIONS_MIN..MAX (-EINVAL otherwise), then
 * sasl_scram_derive. */
int sasl_scram_creds_new(sasl_hash_t hash, const char *password, size_t password_len,
                         uint32_t iterations, sasl_scram_creds_t *out);

/*
 * The storage blob, all integers big-endian:
 *   u8 version (1) | u8 hash (1 SHA-1, 2 SHA-256) | u32 iterations | u8 salt_len
 *   | salt | StoredKey | ServerKey        (7 + salt_len + 2 x digest bytes)
 * encode writes it into out (cap >= SASL_CREDS_BLOB_MAX_BYTES always suffices)
 * and returns 0 with *out_len, -EINVAL when the creds break the stored policy
 * (salt under SASL_SALT_MIN_BYTES, count outside SASL_ITERATIONS_MIN..MAX), or
 * -ENOSPC. decode accepts exactly what encode produces and nothing else: 0, or
 * -EBADMSG for a wrong version, unknown hash, out-of-policy salt length or
 * count, and any length other than the exact one (truncated or trailing bytes).
 * *out is written only on success.
 */
int sasl_scram_creds_encode(const sasl_scram_creds_t *creds, uint8_t *out, size_t cap,
                            size_t *out_len);
int sasl_scram_creds_decode(const uint8_t *blob, size_t len, sasl_scram_creds_t *out);

/* ---- SCRAM server -------------------------------------------------------- */

/*
 * Per-server configuration, owned by the caller and outliving every exchange
 * that points to it (read-only, so shards may share one).
 *
 * fake_salt_key makes the salt shown for an unknown user: HMAC-SHA-256 over the
 * hash family and account key, truncated to SASL_SALT_NEW_BYTES. It must be
 * secret (else anyone can tell fake salts from real ones), the same on every
 * node of a cluster and persisted across restarts (else the salt for a
 * non-existent user changes and gives it away).
 *
 * fake_iterations is the count shown for an unknown user; set it to what new
 * credentials are created with (SASL_ITERATIONS_DEFAULT unless configured), so
 * it matches most real accounts. SASL_ITERATIONS_MIN..MAX.
 */
typedef struct {
    uint8_t fake_salt_key[32];
    uint32_t fake_iterations;
} sasl_scram_conf_t;

/*
 * One server-side exchange. Embed it in the connection's pre-auth state (it is
 * about 2.7 KiB and allocates nothing); fields are private.
 *
 *   INIT --start--> STARTED --server_first--> CHALLENGED --server_final--> DONE
 *     \               \                          \
 *      +---------------+--------------------------+--(any error)--> FAILED
 *
 * FAILED is sticky: every later step returns the error that caused it.
 */
typedef struct {
    const sasl_scram_conf_t *conf;
    uint8_t state;
    uint8_t hash;                   /* sasl_hash_t */
    bool unknown_user;              /* server_first got NULL creds */
    int err;                        /* FAILED: what every later call returns */
    uint16_t first_len;             /* client-first-message, verbatim in first[] */
    uint16_t gs2_len;               /* its gs2 header, "n,," etc. (first[0..gs2_len)) */
    uint16_t cnonce_off, cnonce_len;        /* in first[] */
    uint16_t user_off, user_len;            /* decoded, in names[] */
    uint16_t authzid_off, authzid_len;      /* decoded, in names[]; len 0 if none */
    uint16_t snonce_len;
    uint16_t server_first_len;
    uint8_t stored_key[SASL_DIGEST_MAX_BYTES];
    uint8_t server_key[SASL_DIGEST_MAX_BYTES];
    char snonce[SASL_SNONCE_MAX_BYTES];
    char first[SASL_CLIENT_FIRST_MAX_BYTES];
    char names[SASL_CLIENT_FIRST_MAX_BYTES];        /* decoding only shrinks */
    char server_first[SASL_SERVER_FIRST_MAX_BYTES];
} sasl_scram_server_t;

/* Readies an exchange (any previous content is wiped); conf is borrowed. */
void sasl_scram_server_init(sasl_scram_server_t *ex, const sasl_scram_conf_t *conf);

/* Wipes the keys and messages; ex may be initialised again. */
void sasl_scram_server_fini(sasl_scram_server_t *ex);

/*
 * Parses the client-first-message (RFC 5802 §7) of SCRAM-<hash>, copying it.
 *   gs2 header: "n" or "y" (we advertise no -PLUS, so a 'y' client has nothing
 *   to complain about, RFC 5802 §6), optional "a=" authzid, then the bare
 *   message: "n=" username, "r=" nonce (printable ASCII but ','), optional
 *   extensions (ALPHA "=" value; ignored, as RFC 5802 §7 requires, except
 *   "m=" which must fail). Usernames and authzids decode "=2C" and "=3D"
 *   (uppercase, RFC 5802 §5.1) and must be non-empty UTF-8 without NUL.
 * Returns 0 (then read sasl_scram_server_username/authzid), or:
 *   -EBADMSG          malformed (missing or misplaced attribute, empty value,
 *                     bad escape, invalid UTF-8, non-printable nonce)
 *   -EMSGSIZE         message over SASL_CLIENT_FIRST_MAX_BYTES, nonce over
 *                     SASL_CNONCE_MAX_BYTES
 *   -EPROTONOSUPPORT  "p=": the client wants channel binding (no -PLUS here)
 *   -ENOTSUP          "m=" mandatory extension
 */
int sasl_scram_server_start(sasl_scram_server_t *ex, sasl_hash_t hash, const char *msg,
                            size_t len);

/* After a successful start: the decoded username and authzid (empty if none),
 * valid until init or fini. */
static inline str_t sasl_scram_server_username(const sasl_scram_server_t *ex)
{
    return (str_t){ ex->names + ex->user_off, ex->user_len };
}

static inline str_t sasl_scram_server_authzid(const sasl_scram_server_t *ex)
{
    return (str_t){ ex->names + ex->authzid_off, ex->authzid_len };
}

/* Test hook (and the simulator's determinism): the server nonce part to use
 * instead of a random one. Between start and server_first; 1..SASL_SNONCE_MAX_BYTES
 * printable characters other than ','. */
void sasl_scram_server_set_nonce(sasl_scram_server_t *ex, const char *nonce, size_t len);

/*
 * Builds the server-first-message "r=<cnonce><snonce>,s=<salt>,i=<count>" into
 * out (cap >= SASL_SERVER_FIRST_MAX_BYTES suffices; NUL-terminated, *out_len
 * without the NUL). creds are the account's for this hash family (a different
 * family is a programmer error) and are copied; NULL for an unknown user gives
 * the fake but stable challenge described at the top.
 *
 * account is the key the caller looked the user up by: the prepared username
 * with its domain, "local@domain" as storage keys it (borrowed for the call).
 * The fake salt is derived from it, not from the name as sent, so that every
 * spelling that would reach one real account (and one real salt) also reaches
 * one fake salt, and the same name on two domains gets two. If preparation
 * refused the name, pass the decoded username with the domain. Unused when
 * creds is given.
 *
 * Returns 0, -ENOSPC, or -EIO (no random bytes); or the sticky error after a
 * failed start.
 */
int sasl_scram_server_first(sasl_scram_server_t *ex, const sasl_scram_creds_t *creds,
                            str_t account, char *out, size_t cap, size_t *out_len);

/*
 * Verifies the client-final-message "c=<gs2 b64>,r=<nonce>[,ext...],p=<proof>"
 * (RFC 5802 §7) and on success writes the server-final-message "v=<signature>"
 * into out (cap >= SASL_SERVER_FINAL_MAX_BYTES; NUL-terminated) to send with
 * <success/> (RFC 6120 §6.3.10). The proof is checked in constant time.
 * Returns 0, or:
 *   -EACCES    wrong proof, unknown user, c= other than base64 of the gs2 header
 *              verbatim, r= other than the combined nonce
 *   -EBADMSG   malformed: attribute missing, misplaced or empty, c= or p= not
 *              base64, proof not hash-length, bad extension
 *   -EMSGSIZE  over SASL_CLIENT_FINAL_MAX_BYTES
 *   -ENOTSUP   "m=" extension
 *   -ENOSPC, -EIO
 * or the sticky error of an earlier step.
 */
int sasl_scram_server_final(sasl_scram_server_t *ex, const char *msg, size_t len, char *out,
                            size_t cap, size_t *out_len);

/* ---- SCRAM client (tests, presbench) ---------------------------------------- */

/*
 * What a client may keep between logins with the same password so that it
 * stretches the password once per salt rather than once per login (RFC 5802
 * §5.1 lets clients cache SaltedPassword-derived keys). Only for one password:
 * the caller keeps one cache per password. Load generators log thousands of
 * accounts provisioned with one password and salt in.
 */
typedef struct {
    bool valid;
    uint8_t hash;
    uint32_t iterations;
    uint8_t salt_len;
    uint8_t salt[SASL_SALT_MAX_BYTES];
    uint8_t client_key[SASL_DIGEST_MAX_BYTES];
    uint8_t stored_key[SASL_DIGEST_MAX_BYTES];
    uint8_t server_key[SASL_DIGEST_MAX_BYTES];
} sasl_scram_key_cache_t;


/*
 *   INIT --client_first--> SENT_FIRST --client_final--> SENT_FINAL --verify--> DONE
 * and FAILED after any error. Fields are private.
 */
typedef struct {
    uint8_t state;
    uint8_t hash;
    bool cb_capable;                /* send 'y' rather than 'n' */
    int err;                        /* FAILED: what every later call returns */
    uint16_t first_len, gs2_len;    /* first[] = gs2 header + bare message */
    uint16_t cnonce_off, cnonce_len;
    uint16_t cnonce_set_len;        /* test hook: nonce given in cnonce_set[] */
    uint8_t server_signature[SASL_DIGEST_MAX_BYTES];
    sasl_scram_key_cache_t *cache;  /* NULL: derive on every login */
    char cnonce_set[SASL_CNONCE_MAX_BYTES];
    char first[SASL_CLIENT_FIRST_MAX_BYTES];
} sasl_scram_client_t;

/* Use cache (owned by the caller, outliving c) in client_final. */
void sasl_scram_client_set_key_cache(sasl_scram_client_t *c, sasl_scram_key_cache_t *cache);

/* cb_capable: the client could do channel binding but the server offered no
 * -PLUS mechanism, so it sends gs2 flag 'y' (RFC 5802 §6); else 'n'. */
void sasl_scram_client_init(sasl_scram_client_t *c, sasl_hash_t hash, bool cb_capable);

/* Wipes the expected server signature. */
void sasl_scram_client_fini(sasl_scram_client_t *c);

/* Test hook: the client nonce to use instead of 24 random base64 characters.
 * Before client_first; 1..SASL_CNONCE_MAX_BYTES printable characters but ','. */
void sasl_scram_client_set_nonce(sasl_scram_client_t *c, const char *nonce, size_t len);

/*
 * Builds the client-first-message for username (and authzid, empty for none),
 * escaping ',' and '=' (RFC 5802 §5.1); neither is prepared here. Into out
 * (NUL-terminated; cap >= SASL_CLIENT_FIRST_MAX_BYTES suffices). Returns 0,
 * -EINVAL (empty username, NUL or invalid UTF-8 in a name), -EMSGSIZE (the
 * message would pass SASL_CLIENT_FIRST_MAX_BYTES), -ENOSPC, -EIO.
 */
int sasl_scram_client_first(sasl_scram_client_t *c, str_t username, str_t authzid, char *out,
                            size_t cap, size_t *out_len);

/*
 * Takes the server-first-message, derives the keys from password (prepared as
 * sasl_password_prepare says; costs the server's iteration count) and builds
 * the client-final-message with its proof into out (NUL-terminated; cap >=
 * SASL_CLIENT_FINAL_MAX_BYTES suffices). Returns 0, or -EBADMSG (server-first
 * malformed, its nonce not extending ours, salt not 1..SASL_SALT_MAX_BYTES),
 * -EMSGSIZE (server-first of SASL_SERVER_FIRST_MAX_BYTES or more), -EPROTO
 * (iteration count outside SASL_ITERATIONS_MIN..MAX: we refuse to derive a
 * weak verifier), -ENOTSUP ("m="), the password errors, -ENOSPC, -EIO.
 */
int sasl_scram_client_final(sasl_scram_client_t *c, const char *password, size_t password_len,
                            const char *server_first, size_t len, char *out, size_t cap,
                            size_t *out_len);

/* Checks the server-final-message: 0 when "v=" carries the expected server
 * signature (compared in constant time), -EACCES for a wrong signature or a
 * server "e=" error, -EBADMSG when malformed, -EMSGSIZE past
 * SASL_CLIENT_FINAL_MAX_BYTES, -ENOTSUP for "m=". Any error is sticky. */
int sasl_scram_client_verify(sasl_scram_client_t *c, const char *server_final, size_t len);

/* ---- PLAIN ------------------------------------------------------------------- */

/*
 * Splits a PLAIN message "[authzid] NUL authcid NUL passwd" (RFC 4616 §2) into
 * slices of msg (borrowed: valid while msg is). Exactly two NULs; authcid and
 * passwd non-empty; each field UTF-8 and within SASL_AUTHZID_MAX_BYTES,
 * SASL_USERNAME_MAX_BYTES and SASL_PASSWORD_MAX_BYTES. The authcid comes back as
 * sent: preparing it is the caller's. Returns 0, -EBADMSG (wrong NUL count,
 * empty authcid or password), -EILSEQ (invalid UTF-8), -EMSGSIZE (a field too
 * long). *authzid, *authcid and *password are written only on success.
 */
int sasl_plain_parse(const char *msg, size_t len, str_t *authzid, str_t *authcid,
                     str_t *password);

/*
 * Checks a PLAIN password against the account's SCRAM credentials: derives with
 * the stored salt and count (PBKDF2: the expensive part) and compares StoredKey
 * in constant time. Returns 0, -EACCES (wrong password, or one that preparation
 * rejects: it cannot have been enrolled), -EIO.
 */
int sasl_plain_verify(const sasl_scram_creds_t *creds, str_t password);

#endif
