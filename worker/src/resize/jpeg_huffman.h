/*
 * A sequential-Huffman entropy decoder that replaces libjpeg-turbo's own
 * `decode_mcu` for one decompression (see jpeg_huffman.c).
 */
#ifndef RZ_JPEG_HUFFMAN_H
#define RZ_JPEG_HUFFMAN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "jpeglib.h"

/* jpeg_huffman.c and jpeg_planes.c re-declare the leading members of three
 * structs that jpeglib.h leaves opaque (jpeg_entropy_decoder,
 * jpeg_marker_reader, jpeg_inverse_dct), as libjpeg-turbo 3.1's jpegint.h
 * defines them; that is the release turbojpeg-sys 1.2 vendors. Another
 * release may lay them out otherwise and memory would be corrupted silently:
 * building against one stops here until the declarations are checked
 * against its jpegint.h and this range is widened. */
#if !defined(LIBJPEG_TURBO_VERSION_NUMBER) || LIBJPEG_TURBO_VERSION_NUMBER < 3001000 || \
    LIBJPEG_TURBO_VERSION_NUMBER >= 3002000
#error "libjpeg-turbo internals re-declared for 3.1.x: check them against this release's jpegint.h"
#endif

#define RZ_FAST_BITS 11

typedef struct {
  /* Indexed by the next RZ_FAST_BITS bits; see jpeg_huffman.c for the layouts. */
  union {
    int32_t dc[1 << RZ_FAST_BITS];
    uint64_t ac[1 << RZ_FAST_BITS];
  } fast;
  /* Canonical decoding of codes longer than RZ_FAST_BITS, as in libjpeg. */
  int32_t maxcode[18];
  int32_t valoffset[17];
  uint8_t huffval[256];
} rz_huff_table;

typedef struct {
  /* MSB-aligned bit buffer; `bits` goes negative once zero padding past the
   * end of the segment is consumed, which is an error at the next check. */
  uint64_t buf;
  int bits;
  int stopped; /* at a marker or the end of the data: no more bytes to load */
  const uint8_t *p, *end;
  int last_dc[MAX_COMPS_IN_SCAN];
  unsigned restarts_to_go;
  /* Per block of the MCU. */
  int blocks;
  int component[D_MAX_BLOCKS_IN_MCU];
  const rz_huff_table *dc[D_MAX_BLOCKS_IN_MCU];
  const rz_huff_table *ac[D_MAX_BLOCKS_IN_MCU];
  rz_huff_table tables[2 * NUM_HUFF_TBLS];
  JCOEF scratch[DCTSIZE2];
} rz_huff_state;

/*
 * Takes over entropy decoding of the scan that jpeg_start_decompress has just
 * set up, when it is a single-scan, baseline or extended sequential Huffman
 * scan of 8-bit samples. `cinfo->client_data` must point at `st`. Returns 1
 * when installed, 0 when libjpeg's decoder stays in charge.
 */
int rz_huff_install(j_decompress_ptr cinfo, rz_huff_state *st);

#endif
