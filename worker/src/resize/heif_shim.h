/* The calls `heif.rs` makes into libheif (see heif_shim.c). */
#ifndef RZ_HEIF_SHIM_H
#define RZ_HEIF_SHIM_H

#include <stddef.h>
#include <stdint.h>

enum { RZ_HEIF_OK = 0, RZ_HEIF_ERROR = 1, RZ_HEIF_OOM = 2, RZ_HEIF_UNSUPPORTED = 3 };
enum { RZ_HEIF_YCBCR420 = 0, RZ_HEIF_RGB = 1, RZ_HEIF_RGBA = 2 };

/* Pixels to encode: one interleaved plane (RGB, RGBA) or Y, Cb, Cr, each
 * with its stride in bytes; chroma planes are ceil(w/2) × ceil(h/2). */
struct rz_heif_pixels {
  int kind;
  int width, height;
  const uint8_t *p[3];
  int stride[3];
};

/* The primary image as its header describes it, before decoding. */
struct rz_heif_info {
  int width, height, alpha;
  uint8_t *icc; /* rz_heif_free */
  size_t icc_len;
};

int rz_heif_encode_avif(const struct rz_heif_pixels *px, int quality, int speed, uint8_t **out, size_t *out_len,
                        char *err, size_t errlen);
int rz_heif_info(const uint8_t *data, size_t len, int max_side, struct rz_heif_info *info, char *err, size_t errlen);
int rz_heif_decode(const uint8_t *data, size_t len, int max_side, int alpha, uint8_t *out, size_t out_len, int width,
                   int height, char *err, size_t errlen);
void rz_heif_free(uint8_t *p);

#endif
