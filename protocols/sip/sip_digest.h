/*
 * sip_digest.h - HTTP Digest authentication for SIP (RFC 3261 §22, RFC 2617, RFC 7616, with
 * the SHA-256 algorithms RFC 8760 brings to SIP): MD5, MD5-sess, SHA-256 and SHA-256-sess
 * with qop "auth" (and "auth-int" when configured). The server side issues challenges and
 * checks Authorization / Proxy-Authorization credentials against a stored HA1; the client
 * side answers a challenge (the presence gateway subscribing to a call-control system that
 * challenges it, and the tests).
 *
 * What the server stores. Never the password: per hash family an HA1 =
 * H(username ":" realm ":" password) computed when the account is created or its password
 * changes (sip_digest_ha1), kept as a small blob (sip_digest_ha1_encode). The -sess variants
 * use the same HA1 as their base algorithm (RFC 7616 §3.4.2), so an account needs at most two:
 * MD5 and SHA-256. An HA1 is a password equivalent for its realm: anyone who holds it can
 * authenticate, so storage protects it as it would a password.
 *
 * Usernames and passwords are hashed as the bytes given. SIP has no "charset" directive (RFC
 * 3261 §25.1 has none) and UAs hash what the user typed, in practice UTF-8, unprepared; so does
 * this module. The username is the SIP user (the local part), the realm the domain.
 *
 * Nonces are stateless (RFC 7616 §5.4 suggests the shape):
 *     nonce = base64url( ts || HMAC-SHA-256(nonce_key, ts || realm)[0..15] )
 * with ts the issue time, 8 bytes big-endian Unix seconds: 24 bytes, 32 characters without
 * padding. Any node that shares nonce_key checks any other's nonces, no state is kept per
 * challenge, and a nonce is bound to its realm. A nonce that is authentic but older than
 * nonce_lifetime_s (or more than SIP_DIGEST_CLOCK_SKEW_S in the future) is stale: when its
 * response is right, the answer is a new challenge with stale=true, and the UA retries without
 * asking its user (RFC 7616 §3.3). Challenges for one realm within one second carry the same
 * nonce; the client's cnonce keeps responses apart (qop is always offered, RFC 3261 §22.4).
 *
 * Replay. Within its lifetime a stateless nonce is accepted again and again: a captured
 * request can be replayed until the nonce goes stale. What bounds that:
 *   - the lifetime (default 300 s);
 *   - sip_digest_nc_guard_t, an optional record of the nonce-counts seen per nonce (RFC 7616
 *     §3.3 "nc"), 128 bytes, that the caller keeps per client: a registration binding, a
 *     connection or a subscription dialog. A per-account guard would also work, but because
 *     nonces repeat within a second, two devices of one account would then trip over each
 *     other's nc=1. What the guard does not cover: replays to another guard (another binding,
 *     connection, shard or node), nonces it has forgotten (it holds SIP_DIGEST_GUARD_SLOTS),
 *     and RFC 2069 responses without qop, which carry no nonce-count;
 *   - the transport: over TLS a captured request is no use to anyone.
 * SIP requests also carry their own freshness (Call-ID, CSeq, Via branch), which the
 * transaction and dialog layers check; Digest with qop=auth does not sign them.
 *
 * A server exchange:
 *
 *     no credentials for this realm, or BAD / WRONG_REALM from verify:
 *         sip_digest_challenge_headers(&conf, realm, now_s, false, proxy, &hdrs);  // 401/407
 *     r = sip_digest_creds_parse(hdr->value, &creds, scratch, sizeof(scratch));
 *         // 1: Digest credentials; 0: another scheme (try the next header); < 0: 400
 *     look up the account by creds.username and the realm, and its HA1 blob for
 *         sip_digest_alg_base(creds.alg); decode it (ha1 = NULL when there is none)
 *     switch (sip_digest_verify(&conf, &req, &creds, ha1, ha1_len, ha1_alg)) {
 *     case SIP_DIGEST_OK:          optionally sip_digest_nc_guard_check(); accept
 *     case SIP_DIGEST_STALE:       challenge again with stale = true
 *     case SIP_DIGEST_BAD:         challenge again (stale = false)
 *     case SIP_DIGEST_WRONG_REALM: credentials for another realm: look at the next header,
 *                                  else challenge
 *     case SIP_DIGEST_MALFORMED:   400 Bad Request
 *     }
 *
 * Memory. Nothing allocates (BoringSSL's HMAC may use scratch memory internally; failing to
 * get it is fatal, as in buf.h). Parsed credentials and challenges are slices of the value
 * parsed or, for quoted strings with escapes or folds, of the caller's scratch buffer; they
 * are valid while both are.
 *
 * Threads. Every function is reentrant and may be called from any shard; none blocks. A
 * sip_digest_conf_t is read-only once set up and may be shared by all shards. A guard belongs
 * to whoever holds it.
 *
 * Errors are 0 or -errno unless a function says otherwise; verification answers with a
 * sip_digest_result_t. Arguments the caller controls out of range (an unknown algorithm, a
 * configuration with no algorithm, an HA1 of the wrong length) are programmer errors and crash.
 */
#ifndef PRESENCED_SIP_DIGEST_H
#define PRESENCED_SIP_DIGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/buf.h"
#include "engine/common.h"

/* ---- Limits -------------------------------------------------------------------------- */

/* SHA-256 is the largest hash spoken here; MD5 is 16 bytes. Hex doubles them. */
#define SIP_DIGEST_MAX_BYTES 32
#define SIP_DIGEST_HEX_MAX_BYTES (2 * SIP_DIGEST_MAX_BYTES)

/* The nonce key: an HMAC-SHA-256 key as long as the hash (RFC 2104 §3). */
#define SIP_DIGEST_NONCE_KEY_BYTES 32

/* 8 bytes of timestamp and 16 of MAC (128 bits: forging one is out of reach); in base64url
 * without padding, 24 bytes are exactly 32 characters. */
#define SIP_DIGEST_NONCE_RAW_BYTES 24
#define SIP_DIGEST_NONCE_CHARS 32

/* Upper bound on nonce_lifetime_s: a day. UAs reuse a nonce for their next REGISTER refresh
 * (typically an hour later) and get a stale challenge then, which costs one round trip; a
 * longer lifetime only widens the replay window. */
#define SIP_DIGEST_NONCE_LIFETIME_MAX_S 86400u

/* How far in the future an authentic nonce may be dated and still count as fresh: the clock
 * difference tolerated between the cluster's nodes (NTP keeps them within a second; a minute
 * covers a node that has just stepped its clock). */
#define SIP_DIGEST_CLOCK_SKEW_S 60u

/* A whole Authorization or WWW-Authenticate value we parse. Real ones are 200-400 bytes (the
 * longest parts are the URI and, for other servers' challenges, the nonce and opaque);
 * sip_msg allows 8 KiB per field. */
#define SIP_DIGEST_VALUE_MAX_BYTES 4096

/* One parameter's value after unquoting (username, realm, uri, nonce, opaque, cnonce...). A
 * SIP URI in practice stays under 256 bytes; four times that leaves room. */
#define SIP_DIGEST_FIELD_MAX_BYTES 1024

/* Parameters in one value, known and unknown: a response has at most 11 known ones; three
 * times that bounds the loop. */
#define SIP_DIGEST_PARAMS_MAX 32

/* Random bytes of a client cnonce: 144 bits, 24 base64url characters. */
#define SIP_DIGEST_CNONCE_RANDOM_BYTES 18

/* One challenge we write: "Digest realm=\"" and a realm escaped to at most twice its length,
 * the nonce, an opaque escaped likewise, algorithm, qop and stale (see the _Static_assert in
 * sip_digest.c). Our own realms and opaque values are short; this is the worst case. */
#define SIP_DIGEST_CHALLENGE_MAX_BYTES (192 + 4 * SIP_DIGEST_FIELD_MAX_BYTES)

/* The HA1 blob: one algorithm byte and the digest. */
#define SIP_DIGEST_HA1_BLOB_MAX_BYTES (1 + SIP_DIGEST_MAX_BYTES)

/* Nonces a guard remembers: a UA works with one nonce at a time, two around a stale retry. */
#define SIP_DIGEST_GUARD_SLOTS 4

/* ---- Algorithms and qop ------------------------------------------------------------- */

/* The values are stored in HA1 blobs: never renumber. */
typedef enum {
    SIP_DIGEST_ALG_OTHER = 0,           /* parsed but unsupported (SHA-512-256, a typo) */
    SIP_DIGEST_MD5 = 1,                 /* RFC 2617 §3.2.1; the default when absent */
    SIP_DIGEST_MD5_SESS = 2,
    SIP_DIGEST_SHA256 = 3,              /* RFC 7616 §3.2, RFC 8760 §2 */
    SIP_DIGEST_SHA256_SESS = 4,
} sip_digest_alg_t;

#define SIP_DIGEST_ALG_BIT(a) (1u << (a))
#define SIP_DIGEST_ALGS_ALL                                                          \
    (SIP_DIGEST_ALG_BIT(SIP_DIGEST_MD5) | SIP_DIGEST_ALG_BIT(SIP_DIGEST_MD5_SESS) |  \
     SIP_DIGEST_ALG_BIT(SIP_DIGEST_SHA256) | SIP_DIGEST_ALG_BIT(SIP_DIGEST_SHA256_SESS))

typedef enum {
    SIP_DIGEST_QOP_NONE = 0,            /* no qop directive: RFC 2069 compatibility */
    SIP_DIGEST_QOP_AUTH,
    SIP_DIGEST_QOP_AUTH_INT,
    SIP_DIGEST_QOP_OTHER,               /* an unknown token */
} sip_digest_qop_t;

/* MD5, MD5-sess, SHA-256 and SHA-256-sess are supported; OTHER is not. */
bool sip_digest_alg_supported(sip_digest_alg_t alg);

/* The algorithm token ("SHA-256-sess"); static storage. alg must be supported. */
const char *sip_digest_alg_name(sip_digest_alg_t alg);

/* The algorithm named by a token, case-insensitively (RFC 7616 §3.3); OTHER if unknown. */
sip_digest_alg_t sip_digest_alg_lookup(str_t name);

/* The algorithm whose HA1 a supported one uses: MD5 for MD5-sess, SHA-256 for SHA-256-sess. */
sip_digest_alg_t sip_digest_alg_base(sip_digest_alg_t alg);

/* Digest length of a supported algorithm's hash: 16 or 32. */
size_t sip_digest_alg_len(sip_digest_alg_t alg);

/* ---- Stored credentials ------------------------------------------------------------- */

/*
 * HA1 = H(user ":" realm ":" password) for alg's hash (binary, sip_digest_alg_len(alg)
 * bytes, into out with room for SIP_DIGEST_MAX_BYTES; *out_len set). A -sess algorithm gives
 * its base algorithm's HA1. Returns 0, or -EINVAL for an unsupported algorithm, an empty user
 * or password, or a field over SIP_DIGEST_FIELD_MAX_BYTES.
 */
int sip_digest_ha1(sip_digest_alg_t alg, str_t user, str_t realm, str_t password, uint8_t *out,
                   size_t *out_len);

/*
 * The storage blob: u8 base algorithm (1 MD5, 3 SHA-256) | HA1 (16 or 32 bytes). encode
 * stores a -sess algorithm as its base; returns 0 with *out_len, -EINVAL for an unsupported
 * algorithm or an HA1 of the wrong length, -ENOSPC (cap >= SIP_DIGEST_HA1_BLOB_MAX_BYTES
 * always suffices). decode accepts exactly what encode writes: 0 with *alg and the HA1 in out
 * (room for SIP_DIGEST_MAX_BYTES) and *out_len, else -EBADMSG (other algorithm byte, wrong
 * length); outputs are written only on success.
 */
int sip_digest_ha1_encode(sip_digest_alg_t alg, const uint8_t *ha1, size_t ha1_len,
                          uint8_t *out, size_t cap, size_t *out_len);
int sip_digest_ha1_decode(const uint8_t *blob, size_t len, sip_digest_alg_t *alg, uint8_t *out,
                          size_t *out_len);

/* ---- Server configuration ---------------------------------------------------------- */

/*
 * Owned by the caller, read-only while in use, shareable across shards.
 *
 * nonce_key must be secret (whoever has it can mint nonces), the same on every node of a
 * cluster (a nonce from one node is checked on another) and kept across restarts: with a new
 * key every outstanding nonce fails as forged, so each UA gets a non-stale challenge and may
 * ask its user for the password again.
 *
 * algs: the algorithms offered (SIP_DIGEST_ALG_BIT of each), at least one. A challenge goes
 * out per algorithm, strongest first (RFC 8760 §2.4: SHA-256, SHA-256-sess, MD5, MD5-sess),
 * and credentials with an algorithm not offered are refused. Offer an algorithm only if
 * accounts have its base HA1.
 */
typedef struct {
    uint8_t nonce_key[SIP_DIGEST_NONCE_KEY_BYTES];
    uint32_t nonce_lifetime_s;  /* 1..SIP_DIGEST_NONCE_LIFETIME_MAX_S; 300 is a good value */
    uint8_t algs;
    bool offer_auth_int;        /* qop="auth,auth-int" instead of qop="auth" */
    bool accept_no_qop;         /* accept RFC 2069 responses, which RFC 2543 UAs send (RFC
                                   3261 §22.4 says a UA answering our qop must send one) */
    str_t opaque;               /* sent in every challenge, required back unchanged (RFC 7616
                                   §3.3); empty for none. At most SIP_DIGEST_FIELD_MAX_BYTES,
                                   no control characters */
} sip_digest_conf_t;

/* ---- Nonces ------------------------------------------------------------------------ */

/* A fresh nonce for realm at now_s into out (SIP_DIGEST_NONCE_CHARS characters and a NUL). */
void sip_digest_nonce_make(const sip_digest_conf_t *conf, str_t realm, uint64_t now_s,
                           char out[SIP_DIGEST_NONCE_CHARS + 1]);

/*
 * Checks a nonce for realm at now_s: 0 when it is ours, for this realm and fresh;
 * -ETIMEDOUT when it is ours and for this realm but older than the lifetime or dated more than
 * SIP_DIGEST_CLOCK_SKEW_S ahead; -EBADMSG otherwise (not our format, another realm, another
 * key, tampered). The MAC is compared in constant time. *issued_s (may be NULL) receives the
 * timestamp when the nonce is authentic.
 */
int sip_digest_nonce_check(const sip_digest_conf_t *conf, str_t realm, str_t nonce,
                           uint64_t now_s, uint64_t *issued_s);

/* ---- Challenges (server) ----------------------------------------------------------- */

/*
 * One WWW-Authenticate / Proxy-Authenticate value (RFC 3261 §22.1, §25.1 challenge) for one
 * algorithm, with a fresh nonce:
 *   Digest realm="example.com", nonce="...", opaque="...", algorithm=SHA-256, qop="auth",
 *   stale=true
 * (opaque when configured, stale only when true). realm: the domain being authenticated, at
 * most SIP_DIGEST_FIELD_MAX_BYTES and without control characters. Into out, NUL-terminated,
 * *out_len without the NUL (cap >= SIP_DIGEST_CHALLENGE_MAX_BYTES suffices). Returns 0,
 * -EINVAL (realm empty, too long or with control characters; alg not offered), -ENOSPC.
 */
int sip_digest_challenge(const sip_digest_conf_t *conf, str_t realm, uint64_t now_s,
                         sip_digest_alg_t alg, bool stale, char *out, size_t cap,
                         size_t *out_len);

/*
 * Appends to out one header line "WWW-Authenticate: <value>\r\n" (or Proxy-Authenticate when
 * proxy is set: 407 instead of 401, RFC 3261 §22.3) per offered algorithm, in the order of
 * RFC 8760 §2.4, ready for sip_response_t.headers. Returns 0, or -EINVAL as above with out
 * untouched.
 */
int sip_digest_challenge_headers(const sip_digest_conf_t *conf, str_t realm, uint64_t now_s,
                                 bool stale, bool proxy, buf_t *out);

/* ---- Credentials (server) ---------------------------------------------------------- */

/*
 * An Authorization / Proxy-Authorization value (RFC 3261 §25.1 credentials, RFC 7616 §3.4).
 * Strings are unquoted: slices of the value, or of the scratch buffer where a quoted-pair or a
 * fold had to be resolved. Empty when absent.
 */
typedef struct {
    str_t username;
    str_t realm;
    str_t nonce;
    str_t uri;                  /* digest-uri: the Request-URI as the UA saw it */
    str_t response;             /* 32 or 64 hex digits (any case) for a supported algorithm */
    str_t cnonce;
    str_t opaque;
    str_t algorithm;            /* the token as sent; empty when absent (then MD5) */
    str_t qop_name;             /* the token as sent; empty when absent */
    str_t nc_text;              /* the 8 hex digits as sent; empty when absent */
    sip_digest_alg_t alg;       /* MD5 when absent, OTHER when not supported */
    sip_digest_qop_t qop;
    uint32_t nc;                /* nonce-count; 0 when absent */
    bool userhash;              /* userhash=true (RFC 7616 §3.4.4): we never offer it */
} sip_digest_creds_t;

/*
 * Parses one credentials value (LWS around it is fine). Parameter names, the scheme and the
 * algorithm and qop tokens are case-insensitive (RFC 7616 §3.3, §3.4); every value may be a
 * token or a quoted-string (some UAs quote qop and algorithm, some leave nc bare); parameters
 * we do not know are checked for syntax and ignored.
 *
 * Returns 1 for Digest credentials, with *out filled; 0 when the value is for another scheme
 * (declined: look at the next header); or
 *   -EBADMSG   malformed: syntax, an empty element, a known parameter twice, username,
 *              realm, nonce, uri or response missing, response not hex of the algorithm's
 *              length, nc not 8 hex digits, qop without cnonce and nc or either without qop
 *              (RFC 7616 §3.4), a control character in a value once unquoted
 *   -EMSGSIZE  the value over SIP_DIGEST_VALUE_MAX_BYTES, more than SIP_DIGEST_PARAMS_MAX
 *              parameters, or a field over SIP_DIGEST_FIELD_MAX_BYTES
 *   -ENOSPC    scratch too small (cap >= the value's length always suffices)
 * *out is unspecified after an error.
 */
int sip_digest_creds_parse(str_t value, sip_digest_creds_t *out, char *scratch, size_t cap);

/*
 * Writes credentials as a value, in the order of RFC 7616's examples:
 *   Digest username="..", realm="..", nonce="..", uri="..", response="..", algorithm=..,
 *   cnonce="..", opaque="..", qop=auth, nc=00000001
 * (cnonce, qop and nc only with a qop; opaque only when non-empty; algorithm as its name, or as
 * sent for OTHER; qop likewise). NUL-terminated, *out_len without it. Returns 0, -EINVAL (a
 * string with a control character, an unsupported algorithm or qop that is not a token, qop
 * without cnonce, an empty required field), -ENOSPC. What this writes parses back to the same
 * fields.
 */
int sip_digest_creds_write(const sip_digest_creds_t *c, char *out, size_t cap,
                           size_t *out_len);

/* ---- Verification (server) --------------------------------------------------------- */

typedef enum {
    SIP_DIGEST_OK = 0,          /* the UA knows the password and the nonce is fresh */
    SIP_DIGEST_BAD,             /* wrong response, unknown user, forged or foreign nonce:
                                   challenge again */
    SIP_DIGEST_STALE,           /* right response to an authentic expired nonce: challenge
                                   again with stale=true */
    SIP_DIGEST_MALFORMED,       /* answer 400 (see sip_digest_verify) */
    SIP_DIGEST_WRONG_REALM,     /* credentials for another realm */
} sip_digest_result_t;

/* "ok", "bad", "stale", "malformed", "wrong-realm": for logs and metrics. */
const char *sip_digest_result_name(sip_digest_result_t r);

/* The request being authenticated; every slice is borrowed for the call. */
typedef struct {
    str_t realm;                /* the realm challenged for (the domain); exact match */
    str_t method;               /* the request line's method, case as sent (A2, RFC 2617
                                   §3.2.2.3) */
    str_t request_uri;          /* empty: uri= is not checked (see sip_digest_verify) */
    str_t body;                 /* the message body, hashed for qop=auth-int */
    uint64_t now_s;             /* Unix seconds */
} sip_digest_request_t;

/*
 * Verifies parsed credentials against an account's HA1, in this order:
 *  1. MALFORMED when the credentials cannot be checked as sent: an algorithm not supported or
 *     not offered, a qop not offered (none at all unless accept_no_qop), userhash=true,
 *     nc=0, opaque other than the configured one, or a uri that differs from
 *     req->request_uri (RFC 2617 §3.2.2.5 answers that with 400);
 *  2. WRONG_REALM when creds->realm is not req->realm (compared exactly: realms are
 *     case-sensitive, RFC 7616 §3.3);
 *  3. BAD when the nonce is not ours for this realm;
 *  4. the expected response is computed and compared in constant time with creds->response:
 *     BAD when it differs, when ha1 is NULL (no such account: the work is the same, so timing
 *     does not tell a missing account from a wrong password), or when ha1_alg's hash is not
 *     the one creds->alg uses;
 *  5. STALE when the nonce is expired, else OK.
 *
 * The uri check is only what the caller asks for: with req->request_uri empty uri= is hashed
 * but not compared. A registrar or presence server that is the request's target passes the
 * Request-URI as received and gets a byte-for-byte comparison; a proxy whose upstream may have
 * rewritten the Request-URI, or a caller that wants RFC 3261 §19.1.4 URI equivalence, passes
 * empty and compares creds->uri itself. Nothing here checks that the username belongs to the
 * From or To identity: that is policy (RFC 3261 §22.1, §10.3 step 6).
 *
 * ha1: the account's HA1 for sip_digest_alg_base(creds->alg) (decoded blob), or NULL;
 * ha1_len must be sip_digest_alg_len(ha1_alg) when ha1 is given.
 */
sip_digest_result_t sip_digest_verify(const sip_digest_conf_t *conf,
                                      const sip_digest_request_t *req,
                                      const sip_digest_creds_t *creds, const uint8_t *ha1,
                                      size_t ha1_len, sip_digest_alg_t ha1_alg);

/* n bytes as 2 * n lowercase hex digits and a NUL into out. */
void sip_digest_hex(const uint8_t *in, size_t n, char *out);

/*
 * The response the credentials should carry (RFC 7616 §3.4.1; RFC 2069 when qop is NONE),
 * as lowercase hex into out (2 * sip_digest_alg_len(creds->alg) characters and a NUL), from
 * the fields as sent: nonce, cnonce, nc_text, qop_name, uri. method and body as in
 * sip_digest_request_t. ha1 is the base algorithm's HA1 (ha1_len must match). For -sess:
 *   HA1' = H(hex(HA1) ":" nonce ":" cnonce)   (RFC 7616 §3.4.2)
 * creds->alg must be supported and qop not OTHER. No nonce or realm checks: verify does those.
 */
void sip_digest_response_hex(const sip_digest_creds_t *creds, str_t method, str_t body,
                             const uint8_t *ha1, size_t ha1_len,
                             char out[SIP_DIGEST_HEX_MAX_BYTES + 1]);

/* ---- Replay guard (server, optional) ----------------------------------------------- */

/* One remembered nonce: its timestamp and MAC prefix identify it; nc_max and a 64-wide
 * window of counts below it (as IPsec's anti-replay window, RFC 4303 §3.4.3) let requests
 * that a datagram transport reordered through. Private. */
typedef struct {
    uint64_t issued_s;          /* 0: free */
    uint8_t mac[8];
    uint32_t nc_max;
    uint64_t seen;              /* bit i: nc_max - i was accepted */
} sip_digest_nc_slot_t;

typedef struct {
    sip_digest_nc_slot_t slot[SIP_DIGEST_GUARD_SLOTS];
} sip_digest_nc_guard_t;

void sip_digest_nc_guard_init(sip_digest_nc_guard_t *g);

/*
 * After sip_digest_verify returned OK for creds: records the nonce-count and returns 0, or
 * -EALREADY when this nonce-count was seen before or is more than 64 below the highest seen
 * for the nonce (a replay; answer it as STALE, which makes an honest UA start afresh with a
 * new nonce). Credentials without qop are not tracked (0). When every slot holds a live nonce,
 * the oldest is forgotten, and replays of it are no longer caught. The nonce must be one that
 * verify accepted (a programmer error otherwise).
 */
int sip_digest_nc_guard_check(sip_digest_nc_guard_t *g, const sip_digest_conf_t *conf,
                              const sip_digest_creds_t *creds, uint64_t now_s);

/* ---- Client ------------------------------------------------------------------------ */

/* A WWW-Authenticate / Proxy-Authenticate value (RFC 7616 §3.3); slices as for credentials. */
typedef struct {
    str_t realm;
    str_t nonce;
    str_t opaque;               /* empty when absent */
    str_t algorithm;            /* as sent; empty when absent (then MD5) */
    str_t domain;               /* not used, kept for the caller */
    sip_digest_alg_t alg;
    bool has_qop;               /* a qop directive was present */
    bool qop_auth;              /* ... and offered "auth" */
    bool qop_auth_int;          /* ... and offered "auth-int" */
    bool stale;
    bool userhash;
} sip_digest_challenge_t;

/*
 * Parses one challenge value. Returns 1 for Digest, 0 for another scheme, or -EBADMSG
 * (syntax, a known parameter twice, realm or nonce missing, an empty nonce, a control
 * character in a value),
 * -EMSGSIZE, -ENOSPC as sip_digest_creds_parse. Unknown qop options and parameters are
 * ignored; stale is true only for "true" in any case.
 */
int sip_digest_challenge_parse(str_t value, sip_digest_challenge_t *out, char *scratch,
                               size_t cap);

/*
 * Whether we can answer a parsed challenge: a supported algorithm, and "auth" or "auth-int"
 * offered, or no qop at all for a non-sess algorithm (RFC 2069). A UA given several challenges
 * answers the first one it can (RFC 8760 §2.4: the server lists them by preference).
 */
bool sip_digest_challenge_usable(const sip_digest_challenge_t *ch);

/* What the client answers with. Slices borrowed for the call. */
typedef struct {
    str_t username;
    str_t password;             /* the password; ignored when ha1 is set */
    const uint8_t *ha1;         /* or the HA1 for the challenge's base algorithm and realm */
    size_t ha1_len;
    str_t method;               /* the request's method */
    str_t uri;                  /* its Request-URI, as sent */
    str_t body;                 /* its body, for auth-int */
    bool prefer_auth_int;       /* answer auth-int when both are offered */
    uint32_t nc;                /* how many times this nonce has been used, this time
                                   included; 0 means 1 */
    str_t cnonce;               /* test hook: this cnonce instead of a random one */
} sip_digest_client_req_t;

/*
 * Answers a challenge: writes an Authorization / Proxy-Authorization value (see
 * sip_digest_creds_write) with the challenge's realm, nonce, opaque and algorithm, qop "auth"
 * (or "auth-int" when it is the only option or preferred), nc, and a cnonce of
 * SIP_DIGEST_CNONCE_RANDOM_BYTES from RAND_bytes. Into out, NUL-terminated. Returns 0,
 * -ENOTSUP (the challenge is not usable), -EINVAL (empty username or uri, or a control
 * character in one; a method that is not a token; ha1_len not the algorithm's; a password
 * that sip_digest_ha1 refuses),
 * -ENOSPC, -EIO (no random bytes).
 */
int sip_digest_respond(const sip_digest_challenge_t *ch, const sip_digest_client_req_t *req,
                       char *out, size_t cap, size_t *out_len);

#endif
