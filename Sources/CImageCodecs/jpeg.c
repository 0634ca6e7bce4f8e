// JPEG decode/encode through libjpeg-turbo with errors trapped by setjmp/longjmp.
//
// libjpeg's default error_exit prints and calls exit(); a corrupt file must instead come back to
// Swift as a message. Decoding uses JDCT_ISLOW and fancy upsampling, the library defaults that
// PIL also uses, so our pixels match Image.open(...).convert("RGB").
#include "CImageCodecs.h"
#include "common.h"

#include <limits.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <jpeglib.h>
#include <jerror.h>

// Crafted progressive files can hold thousands of tiny scans, each forcing a pass over the whole
// coefficient buffer (a known CPU-exhaustion pattern). Real encoders write about 10 scans.
#define CIC_MAX_SCANS 500

// libjpeg may allocate whole-image coefficient buffers for progressive files; cap its pool.
#define CIC_MAX_LIBJPEG_MEMORY (1024L * 1024L * 1024L)

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX + 64];
} cic_jpeg_error;

typedef struct {
    struct jpeg_progress_mgr pub;
} cic_jpeg_progress;

static void cic_jpeg_error_exit(j_common_ptr cinfo) {
    cic_jpeg_error *e = (cic_jpeg_error *)cinfo->err;
    char buf[JMSG_LENGTH_MAX];
    (*cinfo->err->format_message)(cinfo, buf);
    snprintf(e->message, sizeof e->message, "%s", buf);
    longjmp(e->jump, 1);
}

// Warnings (level -1) are tolerated like PIL does (its handler ignores them), except running out
// of data: libjpeg would pad with a fake EOI and return a half-grey image, where PIL raises
// "image file is truncated". Trace messages (level >= 0) are dropped.
static void cic_jpeg_emit_message(j_common_ptr cinfo, int msg_level) {
    if (msg_level < 0) {
        if (cinfo->err->msg_code == JWRN_JPEG_EOF) {
            cic_jpeg_error *e = (cic_jpeg_error *)cinfo->err;
            snprintf(e->message, sizeof e->message, "truncated JPEG data (premature end of file)");
            longjmp(e->jump, 1);
        }
        cinfo->err->num_warnings++;
    }
}

static void cic_jpeg_output_message(j_common_ptr cinfo) { (void)cinfo; }

static void cic_jpeg_progress_monitor(j_common_ptr cinfo) {
    if (!cinfo->is_decompressor) return;
    j_decompress_ptr d = (j_decompress_ptr)cinfo;
    if (d->input_scan_number > CIC_MAX_SCANS) {
        cic_jpeg_error *e = (cic_jpeg_error *)cinfo->err;
        snprintf(e->message, sizeof e->message, "JPEG has more than %d scans (corrupt or malicious)", CIC_MAX_SCANS);
        longjmp(e->jump, 1);
    }
}

static void cic_install_error(struct jpeg_error_mgr **slot, cic_jpeg_error *e) {
    *slot = jpeg_std_error(&e->pub);
    e->pub.error_exit = cic_jpeg_error_exit;
    e->pub.emit_message = cic_jpeg_emit_message;
    e->pub.output_message = cic_jpeg_output_message;
    e->message[0] = 0;
}

// PIL's MULDIV255: a·b/255 rounded, with integer ops only.
static inline int cic_muldiv255(int a, int b) {
    int t = a * b + 128;
    return ((t >> 8) + t) >> 8;
}

static inline uint8_t cic_clip8(int v) { return (uint8_t)(v < 0 ? 0 : (v > 255 ? 255 : v)); }

// Nonzero (with the message in err) when `data` cannot be handed to jpeg_mem_src.
static int cic_jpeg_bad_input(const uint8_t *data, size_t size, char *err, size_t errlen) {
    if (data == NULL || size == 0) { cic_set_error(err, errlen, "empty JPEG data"); return 1; }
    if (size > ULONG_MAX) { cic_set_error(err, errlen, "JPEG data too large"); return 1; }
    return 0;
}

int cic_jpeg_info(const uint8_t *data, size_t size, int *out_width, int *out_height,
                  int *out_components, char *err, size_t errlen) {
    struct jpeg_decompress_struct cinfo;
    cic_jpeg_error jerr;
    if (cic_jpeg_bad_input(data, size, err, errlen)) return 1;
    cic_install_error(&cinfo.err, &jerr);
    if (setjmp(jerr.jump)) {
        cic_set_error(err, errlen, "%s", jerr.message);
        jpeg_destroy_decompress(&cinfo);
        return 1;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, (unsigned long)size);
    jpeg_read_header(&cinfo, TRUE);
    *out_width = (int)cinfo.image_width;
    *out_height = (int)cinfo.image_height;
    *out_components = cinfo.num_components;
    jpeg_destroy_decompress(&cinfo);
    return 0;
}

int cic_jpeg_decode(const uint8_t *data, size_t size, uint64_t max_pixels,
                    uint8_t **out_pixels, int *out_width, int *out_height,
                    char *err, size_t errlen) {
    struct jpeg_decompress_struct cinfo;
    cic_jpeg_error jerr;
    cic_jpeg_progress progress;
    // Written after setjmp and read in the longjmp branch: must be volatile.
    uint8_t *volatile pixels = NULL;
    uint8_t *volatile cmyk_row = NULL;

    *out_pixels = NULL;
    *out_width = 0;
    *out_height = 0;
    if (cic_jpeg_bad_input(data, size, err, errlen)) return 1;

    cic_install_error(&cinfo.err, &jerr);
    if (setjmp(jerr.jump)) {
        cic_set_error(err, errlen, "%s", jerr.message);
        jpeg_destroy_decompress(&cinfo);
        free(pixels);
        free(cmyk_row);
        return 1;
    }
    jpeg_create_decompress(&cinfo);
    cinfo.mem->max_memory_to_use = CIC_MAX_LIBJPEG_MEMORY;
    progress.pub.progress_monitor = cic_jpeg_progress_monitor;
    cinfo.progress = &progress.pub;
    jpeg_mem_src(&cinfo, data, (unsigned long)size);
    jpeg_read_header(&cinfo, TRUE);

    const uint64_t w = cinfo.image_width, h = cinfo.image_height;
    if (w == 0 || h == 0) {
        snprintf(jerr.message, sizeof jerr.message, "JPEG has empty dimensions %llux%llu",
                 (unsigned long long)w, (unsigned long long)h);
        longjmp(jerr.jump, 1);
    }
    if (w * h > max_pixels) {
        snprintf(jerr.message, sizeof jerr.message,
                 "JPEG dimensions %llux%llu exceed the limit of %llu pixels",
                 (unsigned long long)w, (unsigned long long)h, (unsigned long long)max_pixels);
        longjmp(jerr.jump, 1);
    }

    const int is_cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
    // Gray → RGB replication is done by libjpeg-turbo itself (identical to PIL's L → RGB).
    cinfo.out_color_space = is_cmyk ? JCS_CMYK : JCS_RGB;
    cinfo.dct_method = JDCT_ISLOW;
    cinfo.do_fancy_upsampling = TRUE;
    jpeg_start_decompress(&cinfo);

    const int expected = is_cmyk ? 4 : 3;
    if (cinfo.output_components != expected || cinfo.output_width != w || cinfo.output_height != h) {
        snprintf(jerr.message, sizeof jerr.message, "unexpected JPEG output layout (%d components)",
                 cinfo.output_components);
        longjmp(jerr.jump, 1);
    }
    pixels = (uint8_t *)malloc((size_t)(w * h * 3));
    if (pixels == NULL) {
        snprintf(jerr.message, sizeof jerr.message, "out of memory for a %llux%llu image",
                 (unsigned long long)w, (unsigned long long)h);
        longjmp(jerr.jump, 1);
    }
    if (is_cmyk) {
        cmyk_row = (uint8_t *)malloc((size_t)(w * 4));
        if (cmyk_row == NULL) {
            snprintf(jerr.message, sizeof jerr.message, "out of memory");
            longjmp(jerr.jump, 1);
        }
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        const size_t y = cinfo.output_scanline;
        uint8_t *dst = pixels + y * (size_t)w * 3;
        JSAMPROW row = is_cmyk ? (JSAMPROW)cmyk_row : (JSAMPROW)dst;
        if (jpeg_read_scanlines(&cinfo, &row, 1) != 1) {
            snprintf(jerr.message, sizeof jerr.message, "JPEG decoder made no progress at row %zu", y);
            longjmp(jerr.jump, 1);
        }
        if (is_cmyk) {
            // PIL reads every 4-component JPEG as Adobe-inverted CMYK ("CMYK;I"), then converts
            // with cmyk2rgb: R = (255−K') − MULDIV255(C', 255−K') on the un-inverted values.
            // With C' = 255 − c and K' = 255 − k that is R = k − MULDIV255(255 − c, k).
            for (size_t x = 0; x < w; x++) {
                const uint8_t *p = cmyk_row + 4 * x;
                const int k = p[3];
                dst[3 * x + 0] = cic_clip8(k - cic_muldiv255(255 - p[0], k));
                dst[3 * x + 1] = cic_clip8(k - cic_muldiv255(255 - p[1], k));
                dst[3 * x + 2] = cic_clip8(k - cic_muldiv255(255 - p[2], k));
            }
        }
    }
    // All rows are in; a missing EOI or trailing junk after them does not matter, so skip
    // jpeg_finish_decompress (which would read on to EOI) and just release the decoder.
    jpeg_destroy_decompress(&cinfo);
    free(cmyk_row);
    *out_pixels = pixels;
    *out_width = (int)w;
    *out_height = (int)h;
    return 0;
}

int cic_jpeg_encode(const uint8_t *pixels, int width, int height, int components,
                    int quality, int progressive,
                    uint8_t **out_data, size_t *out_size, char *err, size_t errlen) {
    struct jpeg_compress_struct cinfo;
    cic_jpeg_error jerr;
    // libjpeg's memory destination mallocs and grows the output buffer and writes its address
    // and size through these pointers. They live on the heap, not in this frame, so their values
    // are well defined after a longjmp (automatic variables changed after setjmp are not).
    typedef struct { unsigned char *buffer; unsigned long size; } dest_slot;
    dest_slot *slot = NULL;

    *out_data = NULL;
    *out_size = 0;
    if (pixels == NULL || width <= 0 || height <= 0 || width > JPEG_MAX_DIMENSION || height > JPEG_MAX_DIMENSION) {
        cic_set_error(err, errlen, "cannot encode a %dx%d image as JPEG (max %d per side)", width, height, JPEG_MAX_DIMENSION);
        return 1;
    }
    if (components != 1 && components != 3 && components != 4) {
        cic_set_error(err, errlen, "JPEG encoding needs 1, 3 or 4 components, got %d", components);
        return 1;
    }
    if (quality < 1 || quality > 100) {
        cic_set_error(err, errlen, "JPEG quality must be in 1...100, got %d", quality);
        return 1;
    }
    slot = (dest_slot *)calloc(1, sizeof *slot);
    if (slot == NULL) { cic_set_error(err, errlen, "out of memory"); return 1; }
    cic_install_error(&cinfo.err, &jerr);
    if (setjmp(jerr.jump)) {
        cic_set_error(err, errlen, "%s", jerr.message);
        jpeg_destroy_compress(&cinfo);
        free(slot->buffer);
        free(slot);
        return 1;
    }
    jpeg_create_compress(&cinfo);
    jpeg_mem_dest(&cinfo, &slot->buffer, &slot->size);
    cinfo.image_width = (JDIMENSION)width;
    cinfo.image_height = (JDIMENSION)height;
    cinfo.input_components = components;
    cinfo.in_color_space = components == 1 ? JCS_GRAYSCALE : (components == 3 ? JCS_RGB : JCS_CMYK);
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, quality, TRUE);
    cinfo.dct_method = JDCT_ISLOW;
    if (progressive) jpeg_simple_progression(&cinfo);
    jpeg_start_compress(&cinfo, TRUE);
    const size_t stride = (size_t)width * (size_t)components;
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW row = (JSAMPROW)(pixels + (size_t)cinfo.next_scanline * stride);
        jpeg_write_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    *out_data = slot->buffer;
    *out_size = (size_t)slot->size;
    free(slot);
    return 0;
}

void cic_free(void *p) { free(p); }
