/* libheif behind four calls with plain arguments: the structures and enums of
 * heif.h stay on the C side, where the compiler checks them against the
 * installed header. AVIF is written with libheif's AV1 encoder (libaom); AVIF
 * and HEIC are read with its decoders (dav1d, libde265). */
#include "heif_shim.h"

#include <libheif/heif.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(struct heif_error e, const char *what, char *err, size_t errlen) {
  snprintf(err, errlen, "%s: %s", what, e.message ? e.message : "unknown error");
  /* libheif's own size and count limits refuse the input, not the machine. */
  if (e.subcode == heif_suberror_Security_limit_exceeded) return RZ_HEIF_ERROR;
  switch (e.code) {
    case heif_error_Memory_allocation_error:
      return RZ_HEIF_OOM;
    case heif_error_Unsupported_filetype:
    case heif_error_Unsupported_feature:
      return RZ_HEIF_UNSUPPORTED;
    default:
      return RZ_HEIF_ERROR;
  }
}

struct sink {
  uint8_t *data;
  size_t len, cap;
};

static struct heif_error sink_write(struct heif_context *ctx, const void *data, size_t size, void *userdata) {
  (void)ctx;
  struct sink *s = userdata;
  struct heif_error ok = {heif_error_Ok, heif_suberror_Unspecified, "Success"};
  if (size > s->cap - s->len) {
    size_t cap = s->cap ? s->cap : 4096;
    while (cap - s->len < size) cap *= 2;
    uint8_t *grown = realloc(s->data, cap);
    if (!grown) {
      struct heif_error oom = {heif_error_Memory_allocation_error, heif_suberror_Unspecified, "out of memory"};
      return oom;
    }
    s->data = grown;
    s->cap = cap;
  }
  memcpy(s->data + s->len, data, size);
  s->len += size;
  return ok;
}

/* Copies `rows` rows of `row_bytes` from a strided source into a plane of the image. */
static int fill_plane(struct heif_image *img, enum heif_channel channel, const uint8_t *src, int src_stride,
                      int row_bytes, int rows) {
  int stride = 0;
  uint8_t *dst = heif_image_get_plane(img, channel, &stride);
  if (!dst || stride < row_bytes) return 0;
  for (int y = 0; y < rows; y++) memcpy(dst + (size_t)y * stride, src + (size_t)y * src_stride, row_bytes);
  return 1;
}

int rz_heif_encode_avif(const struct rz_heif_pixels *px, int quality, int speed, uint8_t **out, size_t *out_len,
                        char *err, size_t errlen) {
  *out = NULL;
  *out_len = 0;
  int w = px->width, h = px->height, rc = RZ_HEIF_ERROR;
  struct heif_context *ctx = heif_context_alloc();
  struct heif_encoder *enc = NULL;
  struct heif_image *img = NULL;
  struct heif_encoding_options *opts = NULL;
  struct heif_color_profile_nclx *nclx = NULL;
  struct sink sink = {0};
  struct heif_error e;
  if (!ctx) {
    snprintf(err, errlen, "heif context: out of memory");
    return RZ_HEIF_OOM;
  }
#define TRY(call, what)                        \
  do {                                         \
    e = (call);                                \
    if (e.code != heif_error_Ok) {             \
      rc = fail(e, what, err, errlen);         \
      goto done;                               \
    }                                          \
  } while (0)

  TRY(heif_context_get_encoder_for_format(ctx, heif_compression_AV1, &enc), "AV1 encoder");
  TRY(heif_encoder_set_lossy_quality(enc, quality), "quality");
  TRY(heif_encoder_set_parameter_integer(enc, "speed", speed), "speed");
  /* One job, one core: the worker runs as many jobs as it has cores. */
  TRY(heif_encoder_set_parameter_integer(enc, "threads", 1), "threads");
  TRY(heif_encoder_set_parameter_string(enc, "chroma", "420"), "chroma");

  if (px->kind == RZ_HEIF_YCBCR420) {
    TRY(heif_image_create(w, h, heif_colorspace_YCbCr, heif_chroma_420, &img), "image");
    int cw = (w + 1) / 2, ch = (h + 1) / 2;
    TRY(heif_image_add_plane(img, heif_channel_Y, w, h, 8), "Y plane");
    TRY(heif_image_add_plane(img, heif_channel_Cb, cw, ch, 8), "Cb plane");
    TRY(heif_image_add_plane(img, heif_channel_Cr, cw, ch, 8), "Cr plane");
    if (!fill_plane(img, heif_channel_Y, px->p[0], px->stride[0], w, h) ||
        !fill_plane(img, heif_channel_Cb, px->p[1], px->stride[1], cw, ch) ||
        !fill_plane(img, heif_channel_Cr, px->p[2], px->stride[2], cw, ch)) {
      snprintf(err, errlen, "libheif gave no plane to fill");
      goto done;
    }
    /* JPEG's Y'CbCr as it is: BT.601 matrix, full range, sRGB primaries and
     * transfer. The decoder converts with these, so no conversion here. */
    nclx = heif_nclx_color_profile_alloc();
    if (!nclx) {
      snprintf(err, errlen, "nclx: out of memory");
      rc = RZ_HEIF_OOM;
      goto done;
    }
    nclx->color_primaries = heif_color_primaries_ITU_R_BT_709_5;
    nclx->transfer_characteristics = heif_transfer_characteristic_IEC_61966_2_1;
    nclx->matrix_coefficients = heif_matrix_coefficients_ITU_R_BT_601_6;
    nclx->full_range_flag = 1;
    TRY(heif_image_set_nclx_color_profile(img, nclx), "colour profile");
  } else {
    int alpha = px->kind == RZ_HEIF_RGBA;
    TRY(heif_image_create(w, h, heif_colorspace_RGB, alpha ? heif_chroma_interleaved_RGBA : heif_chroma_interleaved_RGB,
                          &img),
        "image");
    TRY(heif_image_add_plane(img, heif_channel_interleaved, w, h, 8), "pixels");
    if (!fill_plane(img, heif_channel_interleaved, px->p[0], px->stride[0], w * (alpha ? 4 : 3), h)) {
      snprintf(err, errlen, "libheif gave no plane to fill");
      goto done;
    }
  }
  opts = heif_encoding_options_alloc();
  if (!opts) {
    snprintf(err, errlen, "options: out of memory");
    rc = RZ_HEIF_OOM;
    goto done;
  }
  TRY(heif_context_encode_image(ctx, img, enc, opts, NULL), "encode");
  struct heif_writer writer = {1, sink_write};
  TRY(heif_context_write(ctx, &writer, &sink), "write");
  *out = sink.data;
  *out_len = sink.len;
  sink.data = NULL;
  rc = RZ_HEIF_OK;
#undef TRY
done:
  free(sink.data);
  if (nclx) heif_nclx_color_profile_free(nclx);
  if (opts) heif_encoding_options_free(opts);
  if (img) heif_image_release(img);
  if (enc) heif_encoder_release(enc);
  heif_context_free(ctx);
  return rc;
}

void rz_heif_free(uint8_t *p) { free(p); }

/* Opens the primary image of `data`. Refuses images wider or taller than
 * `max_side` inside libheif too, before it allocates for them. */
static int open_primary(const uint8_t *data, size_t len, int max_side, struct heif_context **ctx,
                        struct heif_image_handle **handle, char *err, size_t errlen) {
  *handle = NULL;
  *ctx = heif_context_alloc();
  if (!*ctx) {
    snprintf(err, errlen, "heif context: out of memory");
    return RZ_HEIF_OOM;
  }
  if (max_side > 0) heif_context_set_maximum_image_size_limit(*ctx, max_side);
  struct heif_error e = heif_context_read_from_memory_without_copy(*ctx, data, len, NULL);
  if (e.code == heif_error_Ok) e = heif_context_get_primary_image_handle(*ctx, handle);
  if (e.code != heif_error_Ok) {
    int rc = fail(e, "HEIF", err, errlen);
    heif_context_free(*ctx);
    *ctx = NULL;
    return rc;
  }
  return RZ_HEIF_OK;
}

int rz_heif_info(const uint8_t *data, size_t len, int max_side, struct rz_heif_info *info, char *err, size_t errlen) {
  struct heif_context *ctx;
  struct heif_image_handle *handle;
  memset(info, 0, sizeof *info);
  int rc = open_primary(data, len, max_side, &ctx, &handle, err, errlen);
  if (rc != RZ_HEIF_OK) return rc;
  info->width = heif_image_handle_get_width(handle);
  info->height = heif_image_handle_get_height(handle);
  info->alpha = heif_image_handle_has_alpha_channel(handle);
  enum heif_color_profile_type type = heif_image_handle_get_color_profile_type(handle);
  if (type == heif_color_profile_type_prof || type == heif_color_profile_type_rICC) {
    size_t n = heif_image_handle_get_raw_color_profile_size(handle);
    if (n > 0 && n <= len) {
      info->icc = malloc(n);
      if (info->icc) {
        if (heif_image_handle_get_raw_color_profile(handle, info->icc).code == heif_error_Ok) {
          info->icc_len = n;
        } else {
          free(info->icc);
          info->icc = NULL;
        }
      }
    }
  }
  heif_image_handle_release(handle);
  heif_context_free(ctx);
  return RZ_HEIF_OK;
}

int rz_heif_decode(const uint8_t *data, size_t len, int max_side, int alpha, uint8_t *out, size_t out_len, int width,
                   int height, char *err, size_t errlen) {
  struct heif_context *ctx;
  struct heif_image_handle *handle;
  struct heif_image *img = NULL;
  int rc = open_primary(data, len, max_side, &ctx, &handle, err, errlen);
  if (rc != RZ_HEIF_OK) return rc;
  rc = RZ_HEIF_ERROR;
  int channels = alpha ? 4 : 3;
  if ((size_t)width * height * channels > out_len) {
    snprintf(err, errlen, "output buffer too small");
    goto done;
  }
  /* Strict: a grid with a missing tile or any other decoding warning is an
   * error. Leniently decoded, the missing parts are memory libheif never
   * wrote, which would reach the output. */
  struct heif_decoding_options *opts = heif_decoding_options_alloc();
  if (!opts) {
    snprintf(err, errlen, "decoding options: out of memory");
    rc = RZ_HEIF_OOM;
    goto done;
  }
  opts->strict_decoding = 1;
  struct heif_error e = heif_decode_image(handle, &img, heif_colorspace_RGB,
                                          alpha ? heif_chroma_interleaved_RGBA : heif_chroma_interleaved_RGB, opts);
  heif_decoding_options_free(opts);
  if (e.code != heif_error_Ok) {
    rc = fail(e, "HEIF decode", err, errlen);
    goto done;
  }
  struct heif_error warning;
  if (heif_image_get_decoding_warnings(img, 0, &warning, 1) > 0) {
    rc = fail(warning, "HEIF decode", err, errlen);
    goto done;
  }
  if (heif_image_get_width(img, heif_channel_interleaved) != width ||
      heif_image_get_height(img, heif_channel_interleaved) != height) {
    snprintf(err, errlen, "decoded size differs from the header's");
    goto done;
  }
  int stride = 0;
  const uint8_t *src = heif_image_get_plane_readonly(img, heif_channel_interleaved, &stride);
  size_t row = (size_t)width * channels;
  if (!src || (size_t)stride < row) {
    snprintf(err, errlen, "decoded image has no pixels");
    goto done;
  }
  for (int y = 0; y < height; y++) memcpy(out + (size_t)y * row, src + (size_t)y * stride, row);
  rc = RZ_HEIF_OK;
done:
  if (img) heif_image_release(img);
  heif_image_handle_release(handle);
  heif_context_free(ctx);
  return rc;
}
