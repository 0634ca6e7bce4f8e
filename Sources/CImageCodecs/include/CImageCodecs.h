// Thin C shims around libjpeg-turbo and libpng (Debian: libjpeg-dev, libpng-dev).
//
// Every entry point traps library errors with setjmp/longjmp and reports them as a message in
// `err` (NUL-terminated, at most `errlen` bytes) with a non-zero return, instead of letting the
// libraries' default handlers print and call exit(). Buffers returned through `out` pointers are
// malloc'd; release them with cic_free.
#ifndef CIMAGECODECS_H
#define CIMAGECODECS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Decodes a JPEG held in memory to interleaved RGB8 (rows top to bottom, HWC).
/// Grayscale is replicated to RGB; CMYK/YCCK are converted to RGB as PIL does (Adobe files are
/// treated as inverted CMYK). Images with more than `max_pixels` pixels are rejected before
/// any pixel buffer is allocated. Returns 0 on success.
int cic_jpeg_decode(const uint8_t *data, size_t size, uint64_t max_pixels,
                    uint8_t **out_pixels, int *out_width, int *out_height,
                    char *err, size_t errlen);

/// Reads only the JPEG header: dimensions and the number of colour components.
int cic_jpeg_info(const uint8_t *data, size_t size, int *out_width, int *out_height,
                  int *out_components, char *err, size_t errlen);

/// Encodes interleaved 8-bit pixels to JPEG. `components` is 1 (grayscale), 3 (RGB) or 4 (CMYK,
/// written with an Adobe marker, values stored as given). `quality` is 1...100 (libjpeg scale);
/// `progressive` selects libjpeg's simple progressive scan script. Returns 0 on success.
int cic_jpeg_encode(const uint8_t *pixels, int width, int height, int components,
                    int quality, int progressive,
                    uint8_t **out_data, size_t *out_size, char *err, size_t errlen);

/// Decodes a PNG held in memory to RGB8: palette and low bit depths are expanded, 16-bit samples
/// are reduced to 8 bits, alpha is dropped, gray is replicated. Returns 0 on success.
int cic_png_decode(const uint8_t *data, size_t size, uint64_t max_pixels,
                   uint8_t **out_pixels, int *out_width, int *out_height,
                   char *err, size_t errlen);

/// Encodes interleaved 8-bit pixels to PNG. `components` is 1 (gray), 3 (RGB) or 4 (RGBA).
int cic_png_encode(const uint8_t *pixels, int width, int height, int components,
                   uint8_t **out_data, size_t *out_size, char *err, size_t errlen);

/// Decodes a PNG held in memory *without* colour conversion, for label masks and depth maps:
/// a palette PNG gives its palette indices (not the colours), a grayscale PNG its gray values
/// (1/2/4/8-bit samples unscaled, 16-bit samples as 0...65535). One uint16 per pixel.
/// `out_color_type` / `out_bit_depth` always report the file's IHDR (PNG_COLOR_TYPE_*: 0 gray,
/// 2 RGB, 3 palette, 4 gray+alpha, 6 RGBA). Returns 0 on success, 2 when the file is a valid PNG
/// of another colour type (RGB, alpha) that has no single sample per pixel, 1 on other errors.
int cic_png_decode_samples(const uint8_t *data, size_t size, uint64_t max_pixels,
                           uint16_t **out_samples, int *out_width, int *out_height,
                           int *out_color_type, int *out_bit_depth, char *err, size_t errlen);

/// Encodes one sample per pixel: `mode` 0 = 8-bit palette PNG with `palette` (palette_len RGB
/// triplets, 1...256; samples must be below palette_len), 1 = 8-bit gray, 2 = 16-bit gray.
int cic_png_encode_samples(const uint16_t *samples, int width, int height, int mode,
                           const uint8_t *palette, int palette_len,
                           uint8_t **out_data, size_t *out_size, char *err, size_t errlen);

/// Releases a buffer returned by one of the functions above.
void cic_free(void *p);

#ifdef __cplusplus
}
#endif

#endif
