/*
 * JPEG to raw Y, Cb, Cr planes, with chroma DCT-scaled further than luma.
 *
 * TurboJPEG's decompress-to-YUV decodes every component at the luma scale,
 * so a 4:2:0 photo decoded at 1/2 hands over chroma planes at half the
 * decoded luma size: for a 320 px thumbnail of a 1600 px photo that is
 * 400 px of chroma resampled down to 160. libjpeg can run each component's
 * IDCT at its own scaled size; here chroma gets its own, smaller, scale
 * (2×2 instead of 4×4 IDCTs, a quarter of the samples to resample), chosen
 * by the caller. TurboJPEG itself overrides the same per-component fields
 * (`DCT_scaled_size`, `MCU_sample_width`) for its YUV output; we do it
 * through the IDCT manager's own `start_pass`, so each component also gets
 * the IDCT routine (and multiplier table) that matches its size.
 *
 * The planes are written in place at their block-padded width (no
 * intermediate buffer, no copy). Warnings (corrupt or truncated data) are
 * errors, as in TurboJPEG, so the decoder refuses exactly what the
 * TurboJPEG path refuses; progressive files are bounded by a scan limit.
 */

#include <setjmp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jpeglib.h"
#include "jerror.h"
#include "jpeg_huffman.h"

/* The public header leaves this opaque; its first member is libjpeg's hook
 * to select the IDCT routines from each component's DCT_scaled_size. */
struct jpeg_inverse_dct {
  void (*start_pass)(j_decompress_ptr cinfo);
};

typedef struct {
  struct jpeg_error_mgr pub;
  jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
} rz_error_mgr;

typedef struct {
  struct jpeg_progress_mgr pub;
  unsigned scan_limit;
} rz_progress_mgr;

typedef struct {
  struct jpeg_decompress_struct cinfo;
  rz_error_mgr err;
  rz_progress_mgr progress;
  int own_entropy;
  rz_huff_state huff;
} rz_decoder;

typedef struct {
  int components;
  /* Per component: allocated (block-padded) size and meaningful size. */
  int stride[3];
  int rows[3];
  int width[3];
  int height[3];
} rz_planes;

static void rz_error_exit(j_common_ptr cinfo)
{
  rz_error_mgr *err = (rz_error_mgr *)cinfo->err;
  (*cinfo->err->format_message)(cinfo, err->message);
  longjmp(err->jump, 1);
}

static void rz_emit_message(j_common_ptr cinfo, int msg_level)
{
  /* Level -1 is a warning: corrupt data or premature end of file. */
  if (msg_level < 0) {
    rz_error_mgr *err = (rz_error_mgr *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, err->message);
    longjmp(err->jump, 1);
  }
}

static void rz_progress(j_common_ptr cinfo)
{
  rz_progress_mgr *p = (rz_progress_mgr *)cinfo->progress;
  j_decompress_ptr d = (j_decompress_ptr)cinfo;
  if (cinfo->is_decompressor && (unsigned)d->input_scan_number > p->scan_limit) {
    rz_error_mgr *err = (rz_error_mgr *)cinfo->err;
    snprintf(err->message, sizeof err->message, "Progressive JPEG image has more than %u scans",
             p->scan_limit);
    longjmp(err->jump, 1);
  }
}

rz_decoder *rz_new(void)
{
  /* volatile: read again after a longjmp back into this frame */
  rz_decoder *volatile d = calloc(1, sizeof *d);
  if (!d)
    return NULL;
  d->cinfo.err = jpeg_std_error(&d->err.pub);
  d->err.pub.error_exit = rz_error_exit;
  d->err.pub.emit_message = rz_emit_message;
  if (setjmp(d->err.jump)) {
    free(d);
    return NULL;
  }
  jpeg_create_decompress(&d->cinfo);
  d->cinfo.client_data = &d->huff;
  d->own_entropy = 1;
  d->progress.pub.progress_monitor = rz_progress;
  return d;
}

/* Whether baseline scans go through jpeg_huffman.c (the default) or libjpeg's decoder. */
void rz_set_own_entropy(rz_decoder *d, int on)
{
  d->own_entropy = on;
}

void rz_free(rz_decoder *d)
{
  if (!d)
    return;
  jpeg_destroy_decompress(&d->cinfo);
  free(d);
}

const char *rz_message(const rz_decoder *d)
{
  return d->err.message;
}

static long div_round_up(long a, long b)
{
  return (a + b - 1) / b;
}

/*
 * Reads the header and prepares decoding with luma at `luma_size`/8 and
 * chroma at `chroma_size`/8 of their stored resolution (sizes 1, 2, 4 or 8,
 * chroma_size <= luma_size). Returns 0 and fills `out`, 1 when the image is
 * not one-component grey or three-component YCbCr with chroma at most 2×2
 * subsampled (the caller then takes another path), -1 on error.
 */
int rz_start(rz_decoder *d, const unsigned char *data, size_t len, int luma_size, int chroma_size,
             unsigned scan_limit, rz_planes *out)
{
  j_decompress_ptr cinfo = &d->cinfo;
  int ci;
  d->err.message[0] = 0;
  if (setjmp(d->err.jump)) {
    jpeg_abort_decompress(cinfo);
    return -1;
  }
  jpeg_abort_decompress(cinfo);
  d->progress.scan_limit = scan_limit;
  cinfo->progress = &d->progress.pub;
  jpeg_mem_src(cinfo, data, (unsigned long)len);
  jpeg_read_header(cinfo, TRUE);

  if (cinfo->num_components == 3) {
    jpeg_component_info *c = cinfo->comp_info;
    if (cinfo->jpeg_color_space != JCS_YCbCr || c[0].h_samp_factor > 2 || c[0].v_samp_factor > 2 ||
        c[1].h_samp_factor != 1 || c[1].v_samp_factor != 1 || c[2].h_samp_factor != 1 ||
        c[2].v_samp_factor != 1) {
      jpeg_abort_decompress(cinfo);
      return 1;
    }
  } else if (cinfo->num_components != 1 || cinfo->jpeg_color_space != JCS_GRAYSCALE) {
    jpeg_abort_decompress(cinfo);
    return 1;
  }

  cinfo->scale_num = (unsigned)luma_size;
  cinfo->scale_denom = 8;
  cinfo->raw_data_out = TRUE;
  cinfo->do_fancy_upsampling = FALSE;
  cinfo->dct_method = JDCT_ISLOW;
  jpeg_start_decompress(cinfo);

  for (ci = 0; ci < cinfo->num_components; ci++) {
    jpeg_component_info *c = &cinfo->comp_info[ci];
    int size = ci == 0 ? luma_size : chroma_size;
    c->DCT_scaled_size = size;
    c->MCU_sample_width = c->MCU_width * size;
  }
  (*cinfo->idct->start_pass)(cinfo);
  if (d->own_entropy)
    rz_huff_install(cinfo, &d->huff);

  out->components = cinfo->num_components;
  for (ci = 0; ci < cinfo->num_components; ci++) {
    jpeg_component_info *c = &cinfo->comp_info[ci];
    int size = c->DCT_scaled_size;
    out->stride[ci] = (int)c->width_in_blocks * size;
    out->rows[ci] = (int)cinfo->total_iMCU_rows * c->v_samp_factor * size;
    out->width[ci] = (int)div_round_up((long)cinfo->image_width * c->h_samp_factor * size,
                                       (long)cinfo->max_h_samp_factor * DCTSIZE);
    out->height[ci] = (int)div_round_up((long)cinfo->image_height * c->v_samp_factor * size,
                                        (long)cinfo->max_v_samp_factor * DCTSIZE);
  }
  return 0;
}

/* Decodes into `planes[ci]` (stride and rows as rz_start reported). 0 or -1. */
int rz_read(rz_decoder *d, unsigned char **planes)
{
  j_decompress_ptr cinfo = &d->cinfo;
  JSAMPROW rows[3][4 * DCTSIZE];
  JSAMPARRAY arrays[3];
  JDIMENSION imcu;
  int ci, r;
  if (setjmp(d->err.jump)) {
    jpeg_abort_decompress(cinfo);
    return -1;
  }
  for (imcu = 0; imcu < cinfo->total_iMCU_rows; imcu++) {
    for (ci = 0; ci < cinfo->num_components; ci++) {
      jpeg_component_info *c = &cinfo->comp_info[ci];
      int n = c->v_samp_factor * c->DCT_scaled_size;
      size_t stride = (size_t)c->width_in_blocks * c->DCT_scaled_size;
      unsigned char *base = planes[ci] + (size_t)imcu * n * stride;
      for (r = 0; r < n; r++)
        rows[ci][r] = base + r * stride;
      arrays[ci] = rows[ci];
    }
    if (jpeg_read_raw_data(cinfo, arrays, cinfo->max_v_samp_factor * cinfo->min_DCT_scaled_size) == 0)
      ERREXIT(cinfo, JERR_INPUT_EMPTY);
  }
  jpeg_finish_decompress(cinfo);
  return 0;
}
