// Region decoding with libjpeg-turbo: scale in the DCT (1/8 … 8/8), skip
// the rows above the region, crop the columns to the iMCUs it covers, stop
// after its last row. Errors come back as text instead of exit().
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

#include "turbo.h"

struct lwr_err {
  struct jpeg_error_mgr pub;
  jmp_buf jump;
  int eof;                      // "Premature end of JPEG file" seen: the file is truncated
  int corrupt;                  // another corrupt-data warning seen: parts of the image are made up
  char first[JMSG_LENGTH_MAX];  // the first such warning
};

static void lwr_error_exit(j_common_ptr cinfo) {
  struct lwr_err *e = (struct lwr_err *)cinfo->err;
  longjmp(e->jump, 1);
}

// lwr_emit_message records warnings instead of printing them. Every
// corrupt-data warning counts (libjpeg fills what it could not decode with
// grey) except extraneous bytes before a marker, which it skips without
// losing image data (common in ImageNet).
static void lwr_emit_message(j_common_ptr cinfo, int level) {
  struct lwr_err *e = (struct lwr_err *)cinfo->err;
  if (level < 0) {
    if (e->pub.msg_code == JWRN_JPEG_EOF) {
      e->eof = 1;
    } else if (e->pub.msg_code != JWRN_EXTRANEOUS_DATA && !e->corrupt) {
      e->corrupt = 1;
      cinfo->err->format_message(cinfo, e->first);
    }
    e->pub.num_warnings++;
  }
}

static void lwr_message(struct jpeg_decompress_struct *c, char *msg) {
  char buf[JMSG_LENGTH_MAX];
  c->err->format_message((j_common_ptr)c, buf);
  snprintf(msg, LWR_JPEG_MSG, "%s", buf);
}

// lwr_errors routes c's errors to e: a longjmp to e->jump (which the
// caller sets) instead of exit(), warnings counted instead of printed.
static void lwr_errors(struct jpeg_decompress_struct *c, struct lwr_err *e) {
  memset(e, 0, sizeof *e);
  c->err = jpeg_std_error(&e->pub);
  e->pub.error_exit = lwr_error_exit;
  e->pub.emit_message = lwr_emit_message;
}

int lwr_jpeg_header(const unsigned char *data, unsigned long size, int *width, int *height, char *msg) {
  struct jpeg_decompress_struct c;
  struct lwr_err e;
  lwr_errors(&c, &e);
  if (setjmp(e.jump)) {
    lwr_message(&c, msg);
    jpeg_destroy_decompress(&c);
    return 1;
  }
  jpeg_create_decompress(&c);
  jpeg_mem_src(&c, data, size);
  jpeg_read_header(&c, TRUE);
  *width = c.image_width;
  *height = c.image_height;
  jpeg_destroy_decompress(&c);
  return 0;
}

int lwr_jpeg_decode(const unsigned char *data, unsigned long size, int scale, int x0, int y0, int w, int h,
                    long long max_pixels, unsigned char *out, int *outw, int *outh, char *msg) {
  struct jpeg_decompress_struct c;
  struct lwr_err e;
  unsigned char *row = NULL;
  lwr_errors(&c, &e);
  if (setjmp(e.jump)) {
    lwr_message(&c, msg);
    jpeg_destroy_decompress(&c);
    free(row);
    return 1;
  }
  jpeg_create_decompress(&c);
  jpeg_mem_src(&c, data, size);
  jpeg_read_header(&c, TRUE);
  if ((long long)c.image_width * c.image_height > max_pixels) {
    snprintf(msg, LWR_JPEG_MSG, "%ux%u pixels: more than the limit of %lld", c.image_width, c.image_height, max_pixels);
    jpeg_destroy_decompress(&c);
    return 1;
  }
  // Bound what libjpeg allocates (a progressive JPEG buffers all its
  // coefficients: 2 bytes per sample) to what an image within the limit
  // needs, whatever the file's tables claim.
  c.mem->max_memory_to_use = (long)(max_pixels * 4 * 2 + (64L << 20));
  int cmyk = c.jpeg_color_space == JCS_CMYK || c.jpeg_color_space == JCS_YCCK;
  c.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
  c.scale_num = scale;
  c.scale_denom = 8;
  c.dct_method = JDCT_ISLOW;
  jpeg_start_decompress(&c);
  int W = c.output_width, H = c.output_height, comps = c.output_components;
  // The region, in scaled pixels, clipped to the image.
  if (x0 < 0) x0 = 0;
  if (y0 < 0) y0 = 0;
  if (x0 + w > W) w = W - x0;
  if (y0 + h > H) h = H - y0;
  if (w <= 0 || h <= 0) {
    snprintf(msg, LWR_JPEG_MSG, "empty region");
    jpeg_destroy_decompress(&c);
    return 1;
  }
  // Crop the scanlines to the blocks the region needs, plus one pixel on
  // each side: chroma upsampling treats the crop's edges as the image's.
  JDIMENSION xoff = x0 > 0 ? x0 - 1 : 0;
  JDIMENSION cw = (x0 + w < W ? x0 + w + 1 : W) - xoff;
  if (cw < (JDIMENSION)W) jpeg_crop_scanline(&c, &xoff, &cw);  // widens to iMCU boundaries
  int skip = x0 - (int)xoff;
  if (y0 > 0) jpeg_skip_scanlines(&c, y0);
  row = malloc((size_t)cw * comps);
  for (int y = 0; y < h; y++) {
    JSAMPROW rows[1] = {row};
    if (jpeg_read_scanlines(&c, rows, 1) != 1) {
      snprintf(msg, LWR_JPEG_MSG, "ends after %d of %d rows", y0 + y, H);
      jpeg_destroy_decompress(&c);
      free(row);
      return 1;
    }
    unsigned char *dst = out + (size_t)y * w * 3;
    const unsigned char *src = row + (size_t)skip * comps;
    if (!cmyk) {
      memcpy(dst, src, (size_t)w * 3);
    } else {
      // Adobe CMYK JPEGs store inverted values: RGB = C·K/255.
      for (int x = 0; x < w; x++) {
        unsigned k = src[4 * x + 3];
        dst[3 * x] = (unsigned char)(src[4 * x] * k / 255);
        dst[3 * x + 1] = (unsigned char)(src[4 * x + 1] * k / 255);
        dst[3 * x + 2] = (unsigned char)(src[4 * x + 2] * k / 255);
      }
    }
  }
  free(row);
  int eof = e.eof, corrupt = e.corrupt;
  jpeg_abort_decompress(&c);
  jpeg_destroy_decompress(&c);
  if (eof) {
    snprintf(msg, LWR_JPEG_MSG, "truncated (premature end of JPEG file)");
    return 1;
  }
  if (corrupt) {
    snprintf(msg, LWR_JPEG_MSG, "corrupt: %s", e.first);
    return 1;
  }
  *outw = w;
  *outh = h;
  return 0;
}
