/*
 * fuzz_config - arbitrary bytes into cfg_load_string.
 *
 * Besides "no crash, no leak, no sanitizer report", it checks the properties the rest of
 * the node relies on: an error always comes with a message naming the text, only -EINVAL
 * or -E2BIG come back, and whatever loads is written back by cfg_format as a file that
 * loads to an equal configuration (so `presenced --print-config` output can be fed back).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/config.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char out[16384];
    cfg_t cfg, again;
    char err[256];

    cfg_defaults(&cfg);
    err[0] = '\0';
    int rc = cfg_load_string(&cfg, (const char *)data, size, "fuzz", err, sizeof err);
    if (rc != 0) {
        if ((rc != -EINVAL && rc != -E2BIG) || strncmp(err, "fuzz:", 5) != 0)
            abort();
        return 0;
    }

    int n = cfg_format(&cfg, out, sizeof out);
    if (n <= 0)
        abort();
    cfg_defaults(&again);
    if (cfg_load_string(&again, out, (size_t)n, "formatted", err, sizeof err) != 0)
        abort();
    if (!cfg_equal(&cfg, &again))
        abort();
    return 0;
}
