#ifndef LWR_TURBO_H
#define LWR_TURBO_H

#define LWR_JPEG_MSG 200

// lwr_jpeg_header reads the image size. 0 on success, else msg says why.
int lwr_jpeg_header(const unsigned char *data, unsigned long size, int *width, int *height, char *msg);

// lwr_jpeg_decode decodes the region (x0, y0, w, h), in pixels of the image
// scaled by scale/8, as RGB into out (w·h·3 bytes), clipping the region to
// the image (outw, outh). An image of more than max_pixels pixels, a
// truncated one and one with corrupt data are errors. 0 on success, else
// msg says why.
int lwr_jpeg_decode(const unsigned char *data, unsigned long size, int scale, int x0, int y0, int w, int h,
                    long long max_pixels, unsigned char *out, int *outw, int *outh, char *msg);

#endif
