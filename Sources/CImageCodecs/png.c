// PNG decode/encode through libpng with errors trapped by setjmp/longjmp.
//
// libpng's default error handler aborts via longjmp to a jmp_buf we must provide; without one it
// calls abort(). We install handlers that copy the message out, and read from / write to memory so
// truncation is seen as a clean "truncated PNG data" error.
#include "CImageCodecs.h"
#include "common.h"

#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <png.h>

// libpng itself refuses widths/heights above 1,000,000 by default; we cap each side at the
// largest value 32-bit row arithmetic in callers comfortably handles, and total pixels separately.
#define CIC_PNG_MAX_SIDE 1000000u

typedef struct {
    char message[256];
} cic_png_error;

typedef struct {
    const uint8_t *data;
    size_t size;
    size_t pos;
} cic_png_reader;

typedef struct {
    uint8_t *data;
    size_t size;
    size_t capacity;
    int failed;
} cic_png_writer;

static void cic_png_error_fn(png_structp png, png_const_charp msg) {
    cic_png_error *e = (cic_png_error *)png_get_error_ptr(png);
    if (e != NULL) snprintf(e->message, sizeof e->message, "%s", msg ? msg : "unknown libpng error");
    png_longjmp(png, 1);
}

static void cic_png_warning_fn(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg;
}

static void cic_png_read_fn(png_structp png, png_bytep out, png_size_t length) {
    cic_png_reader *r = (cic_png_reader *)png_get_io_ptr(png);
    if (length > r->size - r->pos) png_error(png, "truncated PNG data (premature end of file)");
    memcpy(out, r->data + r->pos, length);
    r->pos += length;
}

static void cic_png_write_fn(png_structp png, png_bytep in, png_size_t length) {
    cic_png_writer *w = (cic_png_writer *)png_get_io_ptr(png);
    if (length > SIZE_MAX - w->size) png_error(png, "PNG output too large");
    if (w->size + length > w->capacity) {
        size_t cap = w->capacity ? w->capacity : 4096;
        while (cap < w->size + length) {
            if (cap > SIZE_MAX / 2) png_error(png, "PNG output too large");
            cap *= 2;
        }
        uint8_t *grown = (uint8_t *)realloc(w->data, cap);
        if (grown == NULL) png_error(png, "out of memory while encoding PNG");
        w->data = grown;
        w->capacity = cap;
    }
    memcpy(w->data + w->size, in, length);
    w->size += length;
}

static void cic_png_flush_fn(png_structp png) { (void)png; }

// Checks the signature and creates the read and info structs (neither call can longjmp).
static int cic_png_open_read(const uint8_t *data, size_t size, cic_png_error *perr,
                             png_structp *png, png_infop *info, char *err, size_t errlen) {
    if (data == NULL || size < 8 || png_sig_cmp((png_const_bytep)data, 0, 8) != 0) {
        cic_set_error(err, errlen, "not a PNG file (bad signature)");
        return 1;
    }
    *png = png_create_read_struct(PNG_LIBPNG_VER_STRING, perr, cic_png_error_fn, cic_png_warning_fn);
    if (*png == NULL) { cic_set_error(err, errlen, "cannot create PNG reader"); return 1; }
    *info = png_create_info_struct(*png);
    if (*info == NULL) {
        png_destroy_read_struct(png, NULL, NULL);
        cic_set_error(err, errlen, "cannot create PNG info");
        return 1;
    }
    return 0;
}

// Reads up to the IHDR chunk. Errors longjmp to the caller's setjmp, which is still active.
static void cic_png_read_ihdr(png_structp png, png_infop info, cic_png_reader *reader,
                              png_uint_32 *w, png_uint_32 *h, int *bit_depth, int *color_type) {
    png_set_user_limits(png, CIC_PNG_MAX_SIDE, CIC_PNG_MAX_SIDE);
    png_set_read_fn(png, reader, cic_png_read_fn);
    png_read_info(png, info);
    png_get_IHDR(png, info, w, h, bit_depth, color_type, NULL, NULL, NULL);
}

// Refuses empty images and those above the caller's pixel budget (longjmps on failure).
static void cic_png_check_size(png_structp png, cic_png_error *perr, png_uint_32 w, png_uint_32 h,
                               uint64_t max_pixels) {
    if (w == 0 || h == 0) png_error(png, "PNG has empty dimensions");
    if ((uint64_t)w * (uint64_t)h > max_pixels) {
        snprintf(perr->message, sizeof perr->message, "PNG dimensions %ux%u exceed the limit of %llu pixels",
                 (unsigned)w, (unsigned)h, (unsigned long long)max_pixels);
        png_longjmp(png, 1);
    }
}

// Writes prepared rows (owned by the caller) as one PNG in memory; the palette is used when
// color_type is PNG_COLOR_TYPE_PALETTE. Both encoders end here, so the writer, its setjmp and
// the cleanup exist once.
static int cic_png_write_rows(png_bytep *rows, int width, int height, int bit_depth, int color_type,
                              const uint8_t *palette, int palette_len,
                              uint8_t **out_data, size_t *out_size, char *err, size_t errlen) {
    cic_png_error perr;
    png_structp png = NULL;
    png_infop info = NULL;
    // Heap-held so its contents are well defined after a longjmp.
    cic_png_writer *writer = (cic_png_writer *)calloc(1, sizeof(cic_png_writer));
    perr.message[0] = 0;
    if (writer == NULL) { cic_set_error(err, errlen, "out of memory"); return 1; }
    png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &perr, cic_png_error_fn, cic_png_warning_fn);
    if (png != NULL) info = png_create_info_struct(png);
    if (png == NULL || info == NULL) {
        png_destroy_write_struct(&png, NULL);
        free(writer);
        cic_set_error(err, errlen, "cannot create PNG writer");
        return 1;
    }
    if (setjmp(png_jmpbuf(png))) {
        cic_set_error(err, errlen, "%s", perr.message[0] ? perr.message : "PNG encoding failed");
        png_destroy_write_struct(&png, &info);
        free(writer->data);
        free(writer);
        return 1;
    }
    png_set_write_fn(png, writer, cic_png_write_fn, cic_png_flush_fn);
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, bit_depth, color_type,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (color_type == PNG_COLOR_TYPE_PALETTE) {
        png_color entries[256];
        for (int i = 0; i < palette_len; i++) {
            entries[i].red = palette[3 * i];
            entries[i].green = palette[3 * i + 1];
            entries[i].blue = palette[3 * i + 2];
        }
        png_set_PLTE(png, info, entries, palette_len);
    }
    png_write_info(png, info);
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    *out_data = writer->data;
    *out_size = writer->size;
    free(writer);
    return 0;
}

// The one PNG read path. Converted (`one_sample` 0) it sets libpng's transforms to RGB8: palette
// and low depths expanded, 16-bit reduced, alpha dropped (PIL's convert("RGB") discards it the
// same way, without compositing), gray replicated. Unconverted (`one_sample` 1) it accepts only
// palette and gray files and keeps one sample per pixel, 1 byte below depth 16 (values
// unscaled: palette indices stay indices) and 2 big-endian bytes at 16. On success `*out_rows`
// holds the h rows of `*out_rowbytes` bytes each, contiguous; the IHDR's colour type and depth
// are reported even when the file is refused. Returns 0, 2 for a colour type `one_sample`
// refuses, 1 on other errors.
static int cic_png_read(const uint8_t *data, size_t size, uint64_t max_pixels, int one_sample,
                        uint8_t **out_rows, size_t *out_rowbytes, png_uint_32 *out_w, png_uint_32 *out_h,
                        int *out_color_type, int *out_bit_depth, char *err, size_t errlen) {
    cic_png_error perr;
    cic_png_reader reader = {data, size, 0};
    png_structp png = NULL;
    png_infop info = NULL;
    // Assigned after setjmp and released in the longjmp branch: must be volatile.
    uint8_t *volatile pixels = NULL;
    png_bytep *volatile rows = NULL;

    *out_rows = NULL;
    perr.message[0] = 0;
    if (cic_png_open_read(data, size, &perr, &png, &info, err, errlen) != 0) return 1;
    if (setjmp(png_jmpbuf(png))) {
        cic_set_error(err, errlen, "%s", perr.message[0] ? perr.message : "corrupt PNG data");
        png_destroy_read_struct(&png, &info, NULL);
        free(rows);
        free(pixels);
        return 1;
    }
    png_uint_32 w = 0, h = 0;
    int bit_depth = 0, color_type = 0;
    cic_png_read_ihdr(png, info, &reader, &w, &h, &bit_depth, &color_type);
    *out_color_type = color_type;
    *out_bit_depth = bit_depth;
    if (one_sample && color_type != PNG_COLOR_TYPE_PALETTE && color_type != PNG_COLOR_TYPE_GRAY) {
        png_destroy_read_struct(&png, &info, NULL);
        cic_set_error(err, errlen, "PNG colour type %d has no single sample per pixel", color_type);
        return 2;
    }
    cic_png_check_size(png, &perr, w, h, max_pixels);

    if (one_sample) {
        if (bit_depth < 8) png_set_packing(png);
    } else {
        if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
        if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
        if (bit_depth == 16) png_set_strip_16(png);
        // Palette expansion also turns a tRNS chunk into an alpha channel: strip alpha in every case.
        if ((color_type & PNG_COLOR_MASK_ALPHA) || png_get_valid(png, info, PNG_INFO_tRNS)) png_set_strip_alpha(png);
        if (color_type == PNG_COLOR_TYPE_GRAY || color_type == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
    }
    (void)png_set_interlace_handling(png);
    png_read_update_info(png, info);

    const size_t rowbytes = png_get_rowbytes(png, info);
    if (one_sample) {
        const size_t bytes_per_sample = bit_depth == 16 ? 2 : 1;
        if (png_get_channels(png, info) != 1 || rowbytes != (size_t)w * bytes_per_sample) {
            png_error(png, "unexpected PNG layout for a one-sample-per-pixel image");
        }
    } else if (png_get_channels(png, info) != 3 || png_get_bit_depth(png, info) != 8 || rowbytes != (size_t)w * 3) {
        png_error(png, "unexpected PNG layout after conversion to RGB8");
    }
    pixels = (uint8_t *)malloc(rowbytes * (size_t)h);
    rows = (png_bytep *)malloc(sizeof(png_bytep) * (size_t)h);
    if (pixels == NULL || rows == NULL) png_error(png, "out of memory for PNG pixels");
    for (png_uint_32 y = 0; y < h; y++) rows[y] = pixels + (size_t)y * rowbytes;
    png_read_image(png, rows);
    // Like the JPEG path, stop once all rows are in: chunks after the image data don't matter.
    png_destroy_read_struct(&png, &info, NULL);
    free(rows);
    *out_rows = pixels;
    *out_rowbytes = rowbytes;
    *out_w = w;
    *out_h = h;
    return 0;
}

int cic_png_decode(const uint8_t *data, size_t size, uint64_t max_pixels,
                   uint8_t **out_pixels, int *out_width, int *out_height,
                   char *err, size_t errlen) {
    uint8_t *pixels = NULL;
    size_t rowbytes = 0;
    png_uint_32 w = 0, h = 0;
    int color_type = -1, bit_depth = 0;
    *out_pixels = NULL;
    *out_width = 0;
    *out_height = 0;
    if (cic_png_read(data, size, max_pixels, 0, &pixels, &rowbytes, &w, &h, &color_type, &bit_depth, err, errlen) != 0)
        return 1;
    *out_pixels = pixels;
    *out_width = (int)w;
    *out_height = (int)h;
    return 0;
}

int cic_png_encode(const uint8_t *pixels, int width, int height, int components,
                   uint8_t **out_data, size_t *out_size, char *err, size_t errlen) {
    *out_data = NULL;
    *out_size = 0;
    if (pixels == NULL || width <= 0 || height <= 0 || (unsigned)width > CIC_PNG_MAX_SIDE || (unsigned)height > CIC_PNG_MAX_SIDE) {
        cic_set_error(err, errlen, "cannot encode a %dx%d image as PNG", width, height);
        return 1;
    }
    int color_type;
    switch (components) {
    case 1: color_type = PNG_COLOR_TYPE_GRAY; break;
    case 3: color_type = PNG_COLOR_TYPE_RGB; break;
    case 4: color_type = PNG_COLOR_TYPE_RGB_ALPHA; break;
    default:
        cic_set_error(err, errlen, "PNG encoding needs 1, 3 or 4 components, got %d", components);
        return 1;
    }
    png_bytep *rows = (png_bytep *)malloc(sizeof(png_bytep) * (size_t)height);
    if (rows == NULL) { cic_set_error(err, errlen, "out of memory"); return 1; }
    const size_t stride = (size_t)width * (size_t)components;
    for (int y = 0; y < height; y++) rows[y] = (png_bytep)(pixels + (size_t)y * stride);
    int rc = cic_png_write_rows(rows, width, height, 8, color_type, NULL, 0, out_data, out_size, err, errlen);
    free(rows);
    return rc;
}

int cic_png_decode_samples(const uint8_t *data, size_t size, uint64_t max_pixels,
                           uint16_t **out_samples, int *out_width, int *out_height,
                           int *out_color_type, int *out_bit_depth, char *err, size_t errlen) {
    uint8_t *pixels = NULL;
    size_t rowbytes = 0;
    png_uint_32 w = 0, h = 0;
    *out_samples = NULL;
    *out_width = 0;
    *out_height = 0;
    *out_color_type = -1;
    *out_bit_depth = 0;
    int rc = cic_png_read(data, size, max_pixels, 1, &pixels, &rowbytes, &w, &h, out_color_type, out_bit_depth,
                          err, errlen);
    if (rc != 0) return rc;
    const size_t n = (size_t)w * (size_t)h;
    uint16_t *samples = (uint16_t *)malloc(sizeof(uint16_t) * (n > 0 ? n : 1));
    if (samples == NULL) {
        free(pixels);
        cic_set_error(err, errlen, "out of memory for PNG samples");
        return 1;
    }
    if (*out_bit_depth == 16) {
        // PNG stores 16-bit samples big-endian.
        for (size_t i = 0; i < n; i++) samples[i] = (uint16_t)((pixels[2 * i] << 8) | pixels[2 * i + 1]);
    } else {
        for (size_t i = 0; i < n; i++) samples[i] = pixels[i];
    }
    free(pixels);
    *out_samples = samples;
    *out_width = (int)w;
    *out_height = (int)h;
    return 0;
}

int cic_png_encode_samples(const uint16_t *samples, int width, int height, int mode,
                           const uint8_t *palette, int palette_len,
                           uint8_t **out_data, size_t *out_size, char *err, size_t errlen) {
    *out_data = NULL;
    *out_size = 0;
    if (samples == NULL || width <= 0 || height <= 0 || (unsigned)width > CIC_PNG_MAX_SIDE || (unsigned)height > CIC_PNG_MAX_SIDE) {
        cic_set_error(err, errlen, "cannot encode a %dx%d image as PNG", width, height);
        return 1;
    }
    if (mode < 0 || mode > 2 || (mode == 0 && (palette == NULL || palette_len < 1 || palette_len > 256))) {
        cic_set_error(err, errlen, "bad sample PNG mode %d (palette of %d entries)", mode, palette_len);
        return 1;
    }
    const size_t n = (size_t)width * (size_t)height;
    const size_t bps = mode == 2 ? 2 : 1;
    for (size_t i = 0; i < n; i++) {
        unsigned limit = mode == 0 ? (unsigned)palette_len : (mode == 1 ? 256u : 65536u);
        if (samples[i] >= limit) {
            cic_set_error(err, errlen, "sample %u at pixel %zu does not fit (limit %u)", (unsigned)samples[i], i, limit);
            return 1;
        }
    }
    png_bytep *rows = (png_bytep *)malloc(sizeof(png_bytep) * (size_t)height);
    uint8_t *bytes = (uint8_t *)malloc(n * bps);
    if (rows == NULL || bytes == NULL) {
        free(rows);
        free(bytes);
        cic_set_error(err, errlen, "out of memory");
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        if (bps == 2) { bytes[2 * i] = (uint8_t)(samples[i] >> 8); bytes[2 * i + 1] = (uint8_t)(samples[i] & 0xFF); }
        else bytes[i] = (uint8_t)samples[i];
    }
    for (int y = 0; y < height; y++) rows[y] = (png_bytep)(bytes + (size_t)y * (size_t)width * bps);
    int rc = cic_png_write_rows(rows, width, height, mode == 2 ? 16 : 8,
                                mode == 0 ? PNG_COLOR_TYPE_PALETTE : PNG_COLOR_TYPE_GRAY,
                                palette, palette_len, out_data, out_size, err, errlen);
    free(rows);
    free(bytes);
    return rc;
}
