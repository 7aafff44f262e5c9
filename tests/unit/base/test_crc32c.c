/* Tests core/base/crc32c.c: known CRC-32C vectors, the hardware path against
 * the portable one on every length and alignment, and incremental use. */
#include "testutil.h"

#include "base/crc32c.h"

#include <string.h>

/* Deterministic bytes, so a failure reproduces. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint8_t rng_byte(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint8_t)(rng_state >> 24);
}

static void known_vectors(void **state)
{
    (void)state;
    assert_int_equal(crc32c(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(crc32c_sw(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(crc32c(0, "", 0), 0);
    assert_int_equal(crc32c_sw(0, NULL, 0), 0);

    /* RFC 3720 (iSCSI), appendix B.4. */
    uint8_t b[32];
    memset(b, 0, sizeof b);
    assert_int_equal(crc32c(0, b, 32), 0x8A9136AAu);
    assert_int_equal(crc32c_sw(0, b, 32), 0x8A9136AAu);
    memset(b, 0xff, sizeof b);
    assert_int_equal(crc32c(0, b, 32), 0x62A8AB43u);
    assert_int_equal(crc32c_sw(0, b, 32), 0x62A8AB43u);
    for (int i = 0; i < 32; i++)
        b[i] = (uint8_t)i;
    assert_int_equal(crc32c(0, b, 32), 0x46DD794Eu);
    assert_int_equal(crc32c_sw(0, b, 32), 0x46DD794Eu);
    for (int i = 0; i < 32; i++)
        b[i] = (uint8_t)(31 - i);
    assert_int_equal(crc32c(0, b, 32), 0x113FDB5Cu);
    assert_int_equal(crc32c_sw(0, b, 32), 0x113FDB5Cu);
}

static void hw_equals_sw_all_lengths_and_offsets(void **state)
{
    (void)state;
    uint8_t buf[300 + 16];
    for (int round = 0; round < 4; round++) {
        for (size_t i = 0; i < sizeof buf; i++)
            buf[i] = rng_byte();
        for (size_t off = 0; off < 8; off++)
            for (size_t len = 0; len <= 300; len++) {
                uint32_t hw = crc32c(0, buf + off, len);
                uint32_t sw = crc32c_sw(0, buf + off, len);
                if (hw != sw)
                    fail_msg("round %d offset %zu length %zu: crc32c %08x, crc32c_sw %08x", round,
                             off, len, hw, sw);
                /* extending a non-zero CRC */
                uint32_t seed = 0xDEADBEEFu + (uint32_t)len;
                if (crc32c(seed, buf + off, len) != crc32c_sw(seed, buf + off, len))
                    fail_msg("seeded: offset %zu length %zu differs", off, len);
            }
    }
}

static void incremental_equals_one_shot(void **state)
{
    (void)state;
    uint8_t buf[300];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = rng_byte();
    for (size_t len = 0; len <= sizeof buf; len += 7) {
        uint32_t whole = crc32c(0, buf, len);
        uint32_t whole_sw = crc32c_sw(0, buf, len);
        assert_int_equal(whole, whole_sw);
        for (size_t cut = 0; cut <= len; cut++) {
            uint32_t a = crc32c(crc32c(0, buf, cut), buf + cut, len - cut);
            uint32_t s = crc32c_sw(crc32c_sw(0, buf, cut), buf + cut, len - cut);
            if (a != whole || s != whole)
                fail_msg("length %zu cut at %zu: %08x / %08x, one shot %08x", len, cut, a, s,
                         whole);
        }
        /* byte at a time, mixing both implementations */
        uint32_t c = 0;
        for (size_t i = 0; i < len; i++)
            c = (i & 1) ? crc32c(c, buf + i, 1) : crc32c_sw(c, buf + i, 1);
        assert_int_equal(c, whole);
    }
}

static void detects_single_bit_flips(void **state)
{
    (void)state;
    uint8_t buf[64];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = rng_byte();
    uint32_t ref = crc32c(0, buf, sizeof buf);
    for (size_t i = 0; i < sizeof buf * 8; i++) {
        buf[i / 8] ^= (uint8_t)(1u << (i % 8));
        assert_int_not_equal(crc32c(0, buf, sizeof buf), ref);
        buf[i / 8] ^= (uint8_t)(1u << (i % 8));
    }
    assert_int_equal(crc32c(0, buf, sizeof buf), ref);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(known_vectors),
        cmocka_unit_test(hw_equals_sw_all_lengths_and_offsets),
        cmocka_unit_test(incremental_equals_one_shot),
        cmocka_unit_test(detects_single_bit_flips),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
