/*
 * The native reference for pgtable_walk4_random: the same VT-d second-stage layout (4 levels, 4 KiB
 * tables, 64k 4 KiB pages mapped contiguously at 1 GiB) walked with the same checks' skeleton (present,
 * leaf, address), random pages in the same order generator. Build: cc -O2 -o walk4 walk4.c
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PAGES 65536
static uint64_t *mem;           /* table memory, 4 KiB pages */
static uint64_t next_page = 1;  /* page 0 is the root */

static uint64_t alloc_table(void) { return (next_page++) * 4096; }

static void map4k(uint64_t iova, uint64_t pa) {
  uint64_t table = 0;
  for (int level = 4; level > 1; level--) {
    uint64_t *e = &mem[(table + ((iova >> (12 + 9 * (level - 1))) & 511) * 8) / 8];
    if (!(*e & 3)) *e = alloc_table() | 3;
    table = *e & 0xffffffffff000ull;
  }
  mem[(table + ((iova >> 12) & 511) * 8) / 8] = pa | 3;
}

static inline uint64_t walk(uint64_t iova) {
  uint64_t table = 0;
  for (int level = 4; level >= 1; level--) {
    uint64_t e = mem[(table + ((iova >> (12 + 9 * (level - 1))) & 511) * 8) / 8];
    if (!(e & 3)) return ~0ull;
    if (level == 1 || (e & 0x80)) return (e & 0xffffffffff000ull) | (iova & 0xfff);
    table = e & 0xffffffffff000ull;
  }
  return ~0ull;
}

int main(void) {
  mem = calloc(256 * 4096 / 8, 8);
  for (uint64_t i = 0; i < PAGES; i++) map4k((1ull << 30) + i * 4096, i << 12);
  static double order[1 << 20];
  uint32_t s = 1;
  for (int i = 0; i < (1 << 20); i++) { s = s * 1103515245u + 12345u; order[i] = (double)((1ull << 30) + (uint64_t)(s & 65535) * 4096); }
  double best = 1e30; uint64_t sink = 0;
  for (int k = 0; k < 15; k++) {
    struct timespec a, b; clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < (1 << 20); i++) sink += walk((uint64_t)order[i]);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ns = ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / (1 << 20);
    if (ns < best) best = ns;
  }
  printf("{\"name\":\"native_walk4_random\",\"ops_per_s\":%.0f,\"ns_per_op\":%.2f,\"sink\":%llu}\n", 1e9 / best, best, (unsigned long long)(sink & 1));
  return 0;
}
