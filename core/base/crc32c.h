/*
 * base/crc32c: CRC-32C (Castagnoli), the checksum of every stored record.
 * Uses the SSE4.2 crc32 instruction when the CPU has it, a table otherwise.
 * Thread-safe; crc32c(0, p, n) starts a new checksum, crc32c(prev, p, n) extends it.
 */
#ifndef KITH_BASE_CRC32C_H
#define KITH_BASE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

uint32_t crc32c(uint32_t crc, const void *data, size_t len);

/* The portable implementation, for tests that compare both paths. */
uint32_t crc32c_sw(uint32_t crc, const void *data, size_t len);

#endif
