/*
 * Sequential-Huffman entropy decoding for libjpeg-turbo, faster on photos.
 *
 * Entropy decoding is most of the cost of a shrink-on-load thumbnail: the
 * scaled IDCTs are cheap, but every coefficient of every block has to be
 * Huffman-decoded to find where the next block starts. libjpeg-turbo's
 * decoder looks up the Huffman code (8 bits of lookahead), then reads the
 * coefficient's magnitude bits, then sign-extends them, refilling its bit
 * buffer one byte at a time with a check for 0xFF on each.
 *
 * Here one lookup of the next RZ_FAST_BITS bits yields whole coefficients
 * (run, value, bits to consume) whenever code and magnitude fit together,
 * which covers most coefficients of a photo, and for AC coefficients up to
 * two of them, or one and the end of the block: the chain from one lookup
 * to the next (shift, load, shift) is what bounds the speed, and a photo's
 * many small coefficients often come in pairs that fit. The bit buffer
 * refills eight bytes at a time whenever none of them is 0xFF (a stuffed
 * byte or marker). Longer codes and magnitudes fall back to the canonical
 * decode libjpeg uses.
 *
 * It plugs in as libjpeg's `decode_mcu` after jpeg_start_decompress, so
 * marker parsing, table validation, restart markers, IDCTs and sample
 * handling all stay libjpeg's, and the coefficients it hands over are the
 * ones libjpeg's decoder produces (a test compares every plane of the
 * corpus). Running into a marker or the end of the data inside the scan is
 * reported as libjpeg's JWRN_HIT_MARKER warning, and an invalid code as
 * JWRN_HUFF_BAD_CODE; the caller's error manager turns warnings into errors.
 * The source must be jpeg_mem_src (the whole scan in memory).
 */

#include <string.h>

#include "jerror.h"
#include "jpeg_huffman.h"

/* The public header leaves these opaque; these are the leading members of
 * libjpeg-turbo's definitions (jpegint.h), the ones used here. */
struct jpeg_entropy_decoder {
  void (*start_pass)(j_decompress_ptr cinfo);
  boolean (*decode_mcu)(j_decompress_ptr cinfo, JBLOCKROW *MCU_data);
};

struct jpeg_marker_reader {
  void (*reset_marker_reader)(j_decompress_ptr cinfo);
  int (*read_markers)(j_decompress_ptr cinfo);
  jpeg_marker_parser_method read_restart_marker;
  boolean saw_SOI;
  boolean saw_SOF;
  int next_restart_num;
  unsigned int discarded_bytes;
};

/* DC fast-table entry: bits 0-4 the bits to consume, 5-7 the kind, 8-15
 * the symbol (SYMBOL), 16-31 the coefficient difference (FULL). */
enum { SLOW = 0, FULL = 1 << 5, SYMBOL = 2 << 5 };
#define KIND(e) ((e) & (7 << 5))
#define LENGTH(e) ((e) & 31)

/*
 * AC fast-table entry, two steps in one:
 *   k += run1; block[k] = val1; k += step2; block[k] = val2; consume len
 * (bits 0-4 len, 5-9 len1, 10 AC_SLOW, 16-23 run1, 24-31 step2, 32-47
 * val1, 48-63 val2). A lone coefficient has step2 0 and val2 = val1 (the
 * same store twice); a run of sixteen zeros is a coefficient 0 after a run
 * of 15; the end of the block is a step of 64 with value 0. Storing zeros
 * is harmless: every position at or past k is still zero, and positions
 * past 63 land on 63 (natural_order), which is zero until k reaches it.
 * When the first step reaches position 63 the block is full and only len1
 * bits are consumed: what follows belongs to the next block. AC_SLOW
 * entries carry the symbol in bits 16-23 and its code length in len1 (0
 * when the code is longer than RZ_FAST_BITS).
 */
#define AC_SLOW (1u << 10)
#define AC_LEN(e) ((int)((e) & 31))
#define AC_LEN1(e) ((int)((e) >> 5 & 31))
#define AC_RUN1(e) ((int)((e) >> 16 & 0xFF))
#define AC_STEP2(e) ((int)((e) >> 24 & 0xFF))
#define AC_VAL1(e) ((JCOEF)(int16_t)(uint16_t)((e) >> 32))
#define AC_VAL2(e) ((JCOEF)(int16_t)(uint16_t)((e) >> 48))
#define END_STEP 64

static uint64_t ac_entry(int len, int len1, int run1, int step2, int val1, int val2)
{
  return (uint64_t)len | (uint64_t)len1 << 5 | (uint64_t)run1 << 16 | (uint64_t)step2 << 24 |
         (uint64_t)(uint16_t)val1 << 32 | (uint64_t)(uint16_t)val2 << 48;
}

/* Zigzag to natural order, padded with 63s: a corrupt run past the end of a
 * block lands on coefficient 63, as in libjpeg, and so does the end-of-block
 * step. */
static const uint8_t natural_order[128] = {
  0,  1,  8,  16, 9,  2,  3,  10, 17, 24, 32, 25, 18, 11, 4,  5,  12, 19, 26, 33, 40, 48,
  41, 34, 27, 20, 13, 6,  7,  14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23,
  30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63, 63, 63,
  63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63,
  63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63,
  63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63};

static int extend(int v, int s)
{
  return v < (1 << (s - 1)) ? v - (1 << s) + 1 : v;
}

#define MASK(s) ((1 << (s)) - 1)

static void build_dc(const uint8_t *size, const unsigned *code, int n, const UINT8 *huffval,
                     rz_huff_table *t)
{
  int p, i;
  memset(t->fast.dc, 0, sizeof t->fast.dc);
  for (p = 0; p < n; p++) {
    int len = size[p], s = huffval[p];
    if (len > RZ_FAST_BITS)
      continue;
    for (i = 0; i < 1 << (RZ_FAST_BITS - len); i++) {
      int32_t e;
      if (s == 0) {
        e = FULL | len;
      } else if (len + s <= RZ_FAST_BITS) {
        int v = extend(i >> (RZ_FAST_BITS - len - s) & MASK(s), s);
        e = (int32_t)((uint32_t)v << 16) | FULL | (len + s);
      } else {
        e = s << 8 | SYMBOL | len;
      }
      t->fast.dc[(int)code[p] << (RZ_FAST_BITS - len) | i] = e;
    }
  }
}

static void build_ac(const uint8_t *size, const unsigned *code, int n, const UINT8 *huffval,
                     rz_huff_table *t)
{
  /* Code length (0: longer than RZ_FAST_BITS) and symbol by bit prefix. */
  uint8_t len_of[1 << RZ_FAST_BITS], sym_of[1 << RZ_FAST_BITS];
  int p, i;
  memset(len_of, 0, sizeof len_of);
  for (p = 0; p < n; p++) {
    int len = size[p];
    if (len > RZ_FAST_BITS)
      continue;
    for (i = 0; i < 1 << (RZ_FAST_BITS - len); i++) {
      len_of[(int)code[p] << (RZ_FAST_BITS - len) | i] = (uint8_t)len;
      sym_of[(int)code[p] << (RZ_FAST_BITS - len) | i] = huffval[p];
    }
  }
  for (i = 0; i < 1 << RZ_FAST_BITS; i++) {
    int l1 = len_of[i], r1 = sym_of[i] >> 4, s1 = sym_of[i] & 15;
    int used, val1, rest, l2, r2, s2, j;
    if (!l1) {
      t->fast.ac[i] = AC_SLOW;
      continue;
    }
    if (s1 == 0 && r1 != 15) {
      t->fast.ac[i] = ac_entry(l1, l1, 0, END_STEP, 0, 0);
      continue;
    }
    if (s1 == 0) {
      used = l1;
      r1 = 15;
      val1 = 0;
    } else if (l1 + s1 <= RZ_FAST_BITS) {
      used = l1 + s1;
      val1 = extend(i >> (RZ_FAST_BITS - used) & MASK(s1), s1);
    } else {
      t->fast.ac[i] = AC_SLOW | (uint64_t)sym_of[i] << 16 | (uint64_t)l1 << 5;
      continue;
    }
    t->fast.ac[i] = ac_entry(used, used, r1, 0, val1, val1);
    /* A second symbol, when its code (and magnitude) is within the rest. */
    rest = RZ_FAST_BITS - used;
    j = i << used & MASK(RZ_FAST_BITS);
    l2 = len_of[j];
    if (!l2 || l2 > rest)
      continue;
    r2 = sym_of[j] >> 4;
    s2 = sym_of[j] & 15;
    if (s2 == 0 && r2 != 15)
      t->fast.ac[i] = ac_entry(used + l2, used, r1, END_STEP, val1, 0);
    else if (s2 == 0)
      t->fast.ac[i] = ac_entry(used + l2, used, r1, 16, val1, 0);
    else if (l2 + s2 <= rest)
      t->fast.ac[i] = ac_entry(used + l2 + s2, used, r1, 1 + r2, val1,
                               extend(i >> (rest - l2 - s2) & MASK(s2), s2));
  }
}

static void build_table(const JHUFF_TBL *src, int is_dc, rz_huff_table *t)
{
  uint8_t size[257];
  unsigned code[257];
  int p, l, i, n = 0;
  unsigned c = 0;

  for (l = 1; l <= 16; l++)
    for (i = 0; i < src->bits[l] && n < 256; i++)
      size[n++] = (uint8_t)l;
  size[n] = 0;
  /* Canonical codes; libjpeg has already refused tables that overflow. */
  for (p = 0, l = size[0]; size[p]; l++, c <<= 1)
    while (size[p] == l)
      code[p++] = c++;

  memcpy(t->huffval, src->huffval, sizeof t->huffval);
  for (p = 0, l = 1; l <= 16; l++) {
    if (src->bits[l]) {
      t->valoffset[l] = p - (int)code[p];
      p += src->bits[l];
      t->maxcode[l] = (int32_t)code[p - 1];
    } else {
      t->maxcode[l] = -1;
    }
  }
  t->maxcode[17] = 0x7FFFFFFF;

  if (is_dc)
    build_dc(size, code, n, src->huffval, t);
  else
    build_ac(size, code, n, src->huffval, t);
}

static uint64_t load_be64(const uint8_t *p)
{
  uint64_t v;
  memcpy(&v, p, 8);
  return __builtin_bswap64(v);
}

/* Byte by byte: removes stuffing, stops at a marker or the end of data.
 * Works on the state in `st`, so that the decoder's copies of the bit
 * buffer stay in registers (no address of them is ever taken). */
static void refill_slow(rz_huff_state *st)
{
  const uint8_t *p = st->p, *end = st->end;
  while (st->bits <= 56 && !st->stopped) {
    unsigned c;
    if (p >= end) {
      st->stopped = 1;
      break;
    }
    c = *p;
    if (c == 0xFF) {
      /* FF FF ... 00 is one data byte, as libjpeg reads it. */
      const uint8_t *q = p + 1;
      while (q < end && *q == 0xFF)
        q++;
      if (q >= end || *q != 0) {
        st->stopped = 1;
        break;
      }
      p = q + 1;
    } else {
      p++;
    }
    st->buf |= (uint64_t)c << (56 - st->bits);
    st->bits += 8;
  }
  st->p = p;
}

#define HAS_FF(w) (((~(w) - 0x0101010101010101ULL) & (w) & 0x8080808080808080ULL) != 0)

/* At least 32 bits in the buffer (zeros past the end of the segment). */
#define REFILL()                                                                                 \
  do {                                                                                           \
    if (bits < 32) {                                                                             \
      if (__builtin_expect(end - p >= 8, 1)) {                                                   \
        uint64_t w_ = load_be64(p);                                                              \
        if (__builtin_expect(!HAS_FF(w_), 1)) {                                                  \
          buf |= w_ >> bits;                                                                     \
          p += (63 - bits) >> 3;                                                                 \
          bits |= 56;                                                                            \
          break;                                                                                 \
        }                                                                                        \
      }                                                                                          \
      st->buf = buf;                                                                             \
      st->bits = bits;                                                                           \
      st->p = p;                                                                                 \
      refill_slow(st);                                                                           \
      buf = st->buf;                                                                             \
      bits = st->bits;                                                                           \
      p = st->p;                                                                                 \
    }                                                                                            \
  } while (0)

#define CONSUME(n)                                                                               \
  do {                                                                                           \
    buf <<= (n);                                                                                 \
    bits -= (n);                                                                                 \
  } while (0)

/* A code longer than RZ_FAST_BITS, decoded canonically from the top 16
 * bits of `buf`: returns the symbol and, in bits 8 and up, the code length. */
static int decode_long(j_decompress_ptr cinfo, const rz_huff_table *t, uint64_t buf)
{
  int l = RZ_FAST_BITS + 1;
  int32_t code = (int32_t)(buf >> (64 - l));
  while (l <= 16 && code > t->maxcode[l]) {
    l++;
    code = (int32_t)(buf >> (64 - l));
  }
  if (l > 16) {
    WARNMS(cinfo, JWRN_HUFF_BAD_CODE);
    /* Only reached with an error manager that returns from warnings. */
    return 16 << 8;
  }
  return l << 8 | t->huffval[(code + t->valoffset[l]) & 0xFF];
}

/* Hands libjpeg's marker reader the input from the first byte not loaded
 * into the bit buffer: at a marker, its first 0xFF. The marker reader then
 * counts any data it skips before the marker, as behind libjpeg's decoder. */
static void sync_source(j_decompress_ptr cinfo, const rz_huff_state *st)
{
  struct jpeg_source_mgr *src = cinfo->src;
  src->next_input_byte = st->p;
  src->bytes_in_buffer = (size_t)(st->end - st->p);
}

static void start_segment(j_decompress_ptr cinfo, rz_huff_state *st)
{
  int ci;
  st->buf = 0;
  st->bits = 0;
  st->stopped = 0;
  st->p = cinfo->src->next_input_byte;
  st->end = st->p + cinfo->src->bytes_in_buffer;
  for (ci = 0; ci < MAX_COMPS_IN_SCAN; ci++)
    st->last_dc[ci] = 0;
  st->restarts_to_go = cinfo->restart_interval;
}

static void process_restart(j_decompress_ptr cinfo, rz_huff_state *st)
{
  /* Whole bytes left over count as skipped data, as in libjpeg. */
  if (st->bits > 0)
    cinfo->marker->discarded_bytes += (unsigned)st->bits / 8;
  sync_source(cinfo, st);
  if (!(*cinfo->marker->read_restart_marker)(cinfo))
    ERREXIT(cinfo, JERR_CANT_SUSPEND);
  start_segment(cinfo, st);
}

static boolean decode_mcu(j_decompress_ptr cinfo, JBLOCKROW *MCU_data)
{
  rz_huff_state *st = (rz_huff_state *)cinfo->client_data;
  uint64_t buf;
  int bits, blkn;
  const uint8_t *p, *end;

  if (cinfo->restart_interval && st->restarts_to_go == 0)
    process_restart(cinfo, st);

  buf = st->buf;
  bits = st->bits;
  p = st->p;
  end = st->end;

  for (blkn = 0; blkn < st->blocks; blkn++) {
    /* Without a block (libjpeg skipping rows) the coefficients go nowhere. */
    JCOEF *block = MCU_data ? MCU_data[blkn][0] : st->scratch;
    const rz_huff_table *dc = st->dc[blkn], *ac = st->ac[blkn];
    int32_t e;
    int k, diff, ci = st->component[blkn];

    REFILL();
    e = dc->fast.dc[buf >> (64 - RZ_FAST_BITS)];
    if (KIND(e) == FULL) {
      diff = e >> 16;
      CONSUME(LENGTH(e));
    } else {
      int s;
      if (KIND(e) == SYMBOL) {
        s = e >> 8 & 0xFF;
        CONSUME(LENGTH(e));
      } else {
        s = decode_long(cinfo, dc, buf);
        CONSUME(s >> 8);
      }
      s &= 15; /* libjpeg has refused DC symbols above 15 already */
      diff = s ? extend((int)(buf >> (64 - s)), s) : 0;
      if (s)
        CONSUME(s);
    }
    /* Unsigned: corrupt data can walk the predictor out of int's range. */
    st->last_dc[ci] = (int)((unsigned)st->last_dc[ci] + (unsigned)diff);
    block[0] = (JCOEF)st->last_dc[ci];

    for (k = 1;;) {
      uint64_t a;
      REFILL();
      a = ac->fast.ac[buf >> (64 - RZ_FAST_BITS)];
      if (__builtin_expect(!(a & AC_SLOW), 1)) {
        k += AC_RUN1(a);
        if (__builtin_expect(k >= 63, 0)) {
          block[natural_order[k]] = AC_VAL1(a);
          CONSUME(AC_LEN1(a));
          break;
        }
        block[natural_order[k]] = AC_VAL1(a);
        k += AC_STEP2(a);
        block[natural_order[k]] = AC_VAL2(a);
        CONSUME(AC_LEN(a));
      } else {
        int sym, r, s;
        if (AC_LEN1(a)) {
          sym = (int)(a >> 16 & 0xFF);
          CONSUME(AC_LEN1(a));
        } else {
          sym = decode_long(cinfo, ac, buf);
          CONSUME(sym >> 8);
        }
        r = sym >> 4 & 15;
        s = sym & 15;
        if (s) {
          k += r;
          block[natural_order[k]] = (JCOEF)extend((int)(buf >> (64 - s)), s);
          CONSUME(s);
        } else if (r == 15) {
          k += 15;
        } else {
          break;
        }
      }
      if (k >= 63)
        break;
      k++;
    }
  }

  st->buf = buf;
  st->bits = bits;
  st->p = p;
  if (bits < 0) {
    /* The scan ran into a marker or the end of the data. */
    WARNMS(cinfo, JWRN_HIT_MARKER);
  }
  if (cinfo->restart_interval)
    st->restarts_to_go--;
  sync_source(cinfo, st);
  return TRUE;
}

int rz_huff_install(j_decompress_ptr cinfo, rz_huff_state *st)
{
  int blkn, ci, built = 0;
  if (cinfo->progressive_mode || cinfo->arith_code || cinfo->data_precision != 8 ||
      jpeg_has_multiple_scans(cinfo) || cinfo->Ss != 0 || cinfo->Se != DCTSIZE2 - 1 ||
      cinfo->Ah != 0 || cinfo->Al != 0 || cinfo->comps_in_scan != cinfo->num_components ||
      cinfo->comps_in_scan > MAX_COMPS_IN_SCAN || cinfo->blocks_in_MCU > D_MAX_BLOCKS_IN_MCU ||
      cinfo->client_data != st)
    return 0;

  /* Only the tables this scan's components use (bit n: table n, DC first). */
  for (ci = 0; ci < cinfo->comps_in_scan; ci++) {
    jpeg_component_info *c = cinfo->cur_comp_info[ci];
    int dc = c->dc_tbl_no, ac = c->ac_tbl_no;
    if (dc < 0 || dc >= NUM_HUFF_TBLS || ac < 0 || ac >= NUM_HUFF_TBLS ||
        !cinfo->dc_huff_tbl_ptrs[dc] || !cinfo->ac_huff_tbl_ptrs[ac])
      return 0;
    if (!(built & 1 << dc))
      build_table(cinfo->dc_huff_tbl_ptrs[dc], 1, &st->tables[dc]);
    if (!(built & 1 << (NUM_HUFF_TBLS + ac)))
      build_table(cinfo->ac_huff_tbl_ptrs[ac], 0, &st->tables[NUM_HUFF_TBLS + ac]);
    built |= 1 << dc | 1 << (NUM_HUFF_TBLS + ac);
  }
  st->blocks = cinfo->blocks_in_MCU;
  for (blkn = 0; blkn < cinfo->blocks_in_MCU; blkn++) {
    jpeg_component_info *c = cinfo->cur_comp_info[cinfo->MCU_membership[blkn]];
    st->component[blkn] = cinfo->MCU_membership[blkn];
    st->dc[blkn] = &st->tables[c->dc_tbl_no];
    st->ac[blkn] = &st->tables[NUM_HUFF_TBLS + c->ac_tbl_no];
  }
  start_segment(cinfo, st);
  cinfo->entropy->decode_mcu = decode_mcu;
  return 1;
}
