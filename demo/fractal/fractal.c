/*
 * Dewgrid demo: renders one tile of a Mandelbrot picture as a binary PPM on stdout.
 *
 *   fractal WIDTH HEIGHT TILE_X TILE_Y TILE_W TILE_H [MAX_ITER [CENTER_X CENTER_Y SPAN_X [PALETTE]]]
 *
 * Coordinates are pixels of the whole picture. The view (the centre and width in the complex
 * plane) and the palette (0-3) default to the first demo picture's. Smooth colouring uses only +, -, *, / and a
 * log2 approximation written here, so the bytes depend on nothing but IEEE double arithmetic.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double CENTER_X = -0.743643887037151;
static double CENTER_Y = 0.131825904205330;
static double SPAN_X = 0.0105; /* width of the view in the complex plane */
static long PALETTE = 0;

static int parse(const char *text, long lo, long hi, long *out) {
  char *end;
  long v = strtol(text, &end, 10);
  if (*text == '\0' || *end != '\0' || v < lo || v > hi) return 0;
  *out = v;
  return 1;
}

/* log2(x) for x > 0: exponent from frexp-like scaling plus a short series; deterministic. */
static double log2_approx(double x) {
  int e = 0;
  while (x >= 2.0) { x *= 0.5; e++; }
  while (x < 1.0) { x *= 2.0; e--; }
  /* ln(x) on [1,2) via atanh series: ln(x) = 2 * (t + t^3/3 + t^5/5 + ...), t = (x-1)/(x+1) */
  double t = (x - 1.0) / (x + 1.0), t2 = t * t, sum = 0.0, term = t;
  for (int k = 1; k < 20; k += 2) { sum += term / k; term *= t2; }
  return e + 2.0 * sum * 1.4426950408889634;
}

static int parse_double(const char *text, double lo, double hi, double *out) {
  char *end;
  double v = strtod(text, &end);
  if (*text == '\0' || *end != '\0' || !(v >= lo && v <= hi)) return 0;
  *out = v;
  return 1;
}

static void palette(double v, unsigned char *rgb) {
  /* v in [0, 1): a cycle of five colours and back to the first. */
  static const double palettes[4][6][3] = {
    /* deep blue, teal, white-ish, gold, rust */
    {{0, 7, 100}, {32, 107, 203}, {237, 255, 255}, {255, 170, 0}, {120, 40, 2}, {0, 7, 100}},
    /* ember: black-red, red, orange, pale yellow, brown */
    {{20, 0, 8}, {150, 20, 10}, {240, 110, 20}, {255, 235, 160}, {90, 30, 10}, {20, 0, 8}},
    /* forest: dark green, moss, lime, cream, teal */
    {{2, 30, 20}, {40, 110, 50}, {170, 220, 90}, {250, 250, 215}, {20, 100, 110}, {2, 30, 20}},
    /* violet: indigo, purple, pink, white, slate */
    {{15, 5, 50}, {90, 30, 150}, {230, 110, 190}, {250, 240, 250}, {60, 70, 110}, {15, 5, 50}}};
  const double (*stops)[3] = palettes[PALETTE];
  double p = v * 5.0;
  int i = (int)p;
  if (i > 4) i = 4;
  double f = p - i;
  for (int c = 0; c < 3; c++) {
    double x = stops[i][c] + (stops[i + 1][c] - stops[i][c]) * f;
    rgb[c] = (unsigned char)(x < 0 ? 0 : x > 255 ? 255 : x + 0.5);
  }
}

int main(int argc, char **argv) {
  long width, height, tx, ty, tw, th, max_iter = 1500;
  if (argc < 7 || argc > 12 || argc == 9 || argc == 10 || !parse(argv[1], 1, 16384, &width) || !parse(argv[2], 1, 16384, &height) ||
      !parse(argv[3], 0, 16383, &tx) || !parse(argv[4], 0, 16383, &ty) || !parse(argv[5], 1, 4096, &tw) ||
      !parse(argv[6], 1, 4096, &th) || (argc >= 8 && !parse(argv[7], 1, 1000000, &max_iter)) ||
      (argc >= 11 && (!parse_double(argv[8], -4, 4, &CENTER_X) || !parse_double(argv[9], -4, 4, &CENTER_Y) ||
                      !parse_double(argv[10], 1e-13, 8, &SPAN_X))) ||
      (argc == 12 && !parse(argv[11], 0, 3, &PALETTE))) {
    fprintf(stderr, "usage: fractal WIDTH HEIGHT TILE_X TILE_Y TILE_W TILE_H [MAX_ITER [CENTER_X CENTER_Y SPAN_X [PALETTE]]]\n");
    return 2;
  }
  if (tx + tw > width || ty + th > height) {
    fprintf(stderr, "fractal: tile %ldx%ld at %ld,%ld does not fit in %ldx%ld\n", tw, th, tx, ty, width, height);
    return 2;
  }
  size_t size = (size_t)tw * (size_t)th * 3;
  unsigned char *pixels = malloc(size);
  if (!pixels) {
    fprintf(stderr, "fractal: out of memory\n");
    return 1;
  }
  double scale = SPAN_X / (double)width;
  for (long py = 0; py < th; py++) {
    double ci = CENTER_Y + ((double)(ty + py) - height / 2.0) * scale;
    for (long px = 0; px < tw; px++) {
      double cr = CENTER_X + ((double)(tx + px) - width / 2.0) * scale;
      double zr = 0, zi = 0, zr2 = 0, zi2 = 0;
      long n = 0;
      while (n < max_iter && zr2 + zi2 < 256.0) {
        zi = 2.0 * zr * zi + ci;
        zr = zr2 - zi2 + cr;
        zr2 = zr * zr;
        zi2 = zi * zi;
        n++;
      }
      unsigned char *rgb = pixels + ((size_t)py * (size_t)tw + (size_t)px) * 3;
      if (n >= max_iter) {
        rgb[0] = rgb[1] = rgb[2] = 0;
      } else {
        /* Smooth iteration count: n + 1 - log2(log2(|z|)). */
        double smooth = (double)n + 1.0 - log2_approx(0.5 * log2_approx(zr2 + zi2));
        double v = smooth / 64.0;
        v -= (double)(long)v;
        palette(v < 0 ? v + 1.0 : v, rgb);
      }
    }
  }
  printf("P6\n%ld %ld\n255\n", tw, th);
  fwrite(pixels, 1, size, stdout);
  free(pixels);
  return 0;
}
