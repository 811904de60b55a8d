/*
 * fuzz.h - the libFuzzer entry point every target in tests/fuzz defines.
 * Built with -fsanitize=fuzzer it is driven by libFuzzer; otherwise replay.c
 * runs it over the committed corpus.
 */
#ifndef PRESENCED_FUZZ_H
#define PRESENCED_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
