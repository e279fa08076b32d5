/* Fused Bernoulli draw for block Gibbs: x[i] <- 1 if U_i < sigma(x[i] + bias[i mod period])
 * else 0, in place.
 *
 * One pass per unit: the bias, 23 random bits, e^{-x} and one comparison, with no tensor of
 * uniforms or probabilities in memory.  The rule, for x (bias added) clamped to [-88, 87]:
 *
 *     k = (r >> 8) | 1                the top 24 bits of a 32-bit random word r, made odd
 *     unit = 1  iff  k * (1 + e^{-x}) < 2^24      (k + k e^{-x} by one fused multiply-add)
 *
 * i.e. U = k / 2^24 (uniform on the 2^23 odd multiples of 2^-24, never 0 or 1) and
 * U < 1 / (1 + e^{-x}) = sigma(x), so P(unit = 1) = sigma(x) to within 2^-24 plus
 * float32 rounding of the product, as for a float32 uniform compared with a float32 sigma.
 * The clamp changes sigma by less than 2^-125.
 *
 * e^{-x}: n = round(-x log2 e), r = x + n ln 2 (ln 2 in two parts, Cody-Waite), |r| <= ln2/2,
 * then e^{-r} by a degree-6 polynomial (near-minimax for relative error on that interval:
 * 2e-9 in exact arithmetic, 8e-8 evaluated by Horner in float32), times 2^n.  Tested
 * against double precision.
 *
 * Random words: xoshiro128+ (Blackman & Vigna) in 16 lanes, two groups of 8; its upper 24
 * bits are the ones its authors recommend for floats, and only those are used.  Units
 * i .. i+15 take one output of every lane, lane l unit i+l; a tail of fewer than 16 units
 * still advances all lanes once.
 *
 * Two implementations with the same operations in the same order (fma where the other
 * fuses, NaN clamped to -88 as max_ps does): AVX2+FMA, chosen at run time when the CPU has
 * both, and portable C.  They give bit-identical results for every input, NaNs included;
 * compile with -ffp-contract=off so the compiler adds no fusing.
 */
#include <math.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#define LANES 16
#define STATE_WORDS (4 * LANES) /* word w of lane l at state[16 * w + l] */

static const float X_MIN = -88.0f, X_MAX = 87.0f, TWO24 = 16777216.0f;
static const float NEG_LOG2E = -1.44269504088896341f;
static const float LN2_HI = 0.693359375f, LN2_LO = -2.12194440e-4f;
static const float C6 = 1.3836845755577087e-3f, C5 = -8.374815806746483e-3f,
                   C4 = 4.166822507977486e-2f, C3 = -1.6666419804096222e-1f,
                   C2 = 4.9999991059303284e-1f, C1 = -1.0f, C0 = 1.0f;

/* ---- portable C ------------------------------------------------------------------ */

static inline float clampf(float x) /* as max_ps then min_ps: NaN -> X_MIN */
{
    x = x > X_MIN ? x : X_MIN;
    return x < X_MAX ? x : X_MAX;
}

static inline float exp_neg_1(float x) /* e^{-x} for x in [X_MIN, X_MAX] */
{
    float n = rintf(x * NEG_LOG2E);
    float r = fmaf(n, LN2_HI, x);
    r = fmaf(n, LN2_LO, r);
    float p = fmaf(C6, r, C5);
    p = fmaf(p, r, C4);
    p = fmaf(p, r, C3);
    p = fmaf(p, r, C2);
    p = fmaf(p, r, C1);
    p = fmaf(p, r, C0);
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static inline uint32_t xoshiro_next(uint32_t *s, int l) /* lane l of the state */
{
    uint32_t *s0 = s + l, *s1 = s + LANES + l, *s2 = s + 2 * LANES + l, *s3 = s + 3 * LANES + l;
    uint32_t r = *s0 + *s3, t = *s1 << 9;
    *s2 ^= *s0;
    *s3 ^= *s1;
    *s1 ^= *s2;
    *s0 ^= *s3;
    *s2 ^= t;
    *s3 = (*s3 << 11) | (*s3 >> 21);
    return r;
}

static inline float draw_1(float x, uint32_t r)
{
    float k = (float)(int32_t)((r >> 8) | 1u);
    float e = exp_neg_1(clampf(x));
    return fmaf(k, e, k) < TWO24 ? 1.0f : 0.0f;
}

/* bias[j .. j+LANES) with indices mod period, in buf unless they lie in one piece; j < period */
static inline const float *bias_block(const float *bias, int64_t period, int64_t j, float *buf)
{
    if (j + LANES <= period)
        return bias + j;
    for (int l = 0; l < LANES; l++) {
        buf[l] = bias[j];
        if (++j == period)
            j = 0;
    }
    return buf;
}

/* (j + LANES) mod period for j < period, dividing only when period < LANES */
static inline int64_t next_j(int64_t j, int64_t period)
{
    j += LANES;
    if (j < period)
        return j;
    return period >= LANES ? j - period : j % period;
}

static void bernoulli_generic(float *x, int64_t count, const float *bias, int64_t period,
                              uint32_t *state)
{
    float buf[LANES];
    int64_t j = 0; /* i mod period */
    for (int64_t i = 0; i < count; i += LANES) {
        const float *b = bias ? bias_block(bias, period, j, buf) : NULL;
        for (int l = 0; l < LANES; l++) {
            uint32_t r = xoshiro_next(state, l);
            if (i + l < count)
                x[i + l] = draw_1(b ? x[i + l] + b[l] : x[i + l], r);
        }
        if (bias)
            j = next_j(j, period);
    }
}

static void exp_neg_generic(const float *x, float *out, int64_t count)
{
    for (int64_t i = 0; i < count; i++)
        out[i] = exp_neg_1(clampf(x[i]));
}

/* ---- AVX2 + FMA -------------------------------------------------------------------- */

/* not on Windows: MinGW gcc does not align the stack for 32-byte spills (GCC bug 54412) */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(_WIN32)
#include <immintrin.h>
#define HAVE_AVX2_PATH 1
#define AVX2 __attribute__((target("avx2,fma")))

AVX2 static inline __m256 exp_neg_8(__m256 x) /* x already clamped */
{
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(NEG_LOG2E)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fmadd_ps(n, _mm256_set1_ps(LN2_HI), x);
    r = _mm256_fmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
    __m256 p = _mm256_fmadd_ps(_mm256_set1_ps(C6), r, _mm256_set1_ps(C5));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(C4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(C3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(C2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(C1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(C0));
    __m256i bits = _mm256_slli_epi32(
        _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
}

AVX2 static inline __m256 clamp_8(__m256 x)
{
    return _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(X_MIN)), _mm256_set1_ps(X_MAX));
}

AVX2 static inline __m256i xoshiro_next_8(__m256i *s)
{
    __m256i r = _mm256_add_epi32(s[0], s[3]), t = _mm256_slli_epi32(s[1], 9);
    s[2] = _mm256_xor_si256(s[2], s[0]);
    s[3] = _mm256_xor_si256(s[3], s[1]);
    s[1] = _mm256_xor_si256(s[1], s[2]);
    s[0] = _mm256_xor_si256(s[0], s[3]);
    s[2] = _mm256_xor_si256(s[2], t);
    s[3] = _mm256_or_si256(_mm256_slli_epi32(s[3], 11), _mm256_srli_epi32(s[3], 21));
    return r;
}

AVX2 static inline __m256 draw_8(__m256 x, __m256i r)
{
    __m256 k = _mm256_cvtepi32_ps(_mm256_or_si256(_mm256_srli_epi32(r, 8), _mm256_set1_epi32(1)));
    __m256 e = exp_neg_8(clamp_8(x));
    __m256 below = _mm256_cmp_ps(_mm256_fmadd_ps(k, e, k), _mm256_set1_ps(TWO24), _CMP_LT_OQ);
    return _mm256_and_ps(below, _mm256_set1_ps(1.0f));
}

AVX2 static void bernoulli_avx2(float *x, int64_t count, const float *bias, int64_t period,
                               uint32_t *state)
{
    float buf[LANES];
    int64_t j = 0; /* i mod period */
    __m256i s[2][4];
    for (int g = 0; g < 2; g++)
        for (int w = 0; w < 4; w++)
            s[g][w] = _mm256_loadu_si256((const __m256i *)(state + LANES * w + 8 * g));
    for (int64_t i = 0; i < count; i += LANES) {
        float tail[LANES];
        float *px = x + i;
        int64_t left = count - i;
        if (left < LANES) {
            memset(tail, 0, sizeof tail);
            memcpy(tail, px, (size_t)left * sizeof(float));
            px = tail;
        }
        const float *b = bias ? bias_block(bias, period, j, buf) : NULL;
        for (int g = 0; g < 2; g++) {
            __m256 xv = _mm256_loadu_ps(px + 8 * g);
            if (b)
                xv = _mm256_add_ps(xv, _mm256_loadu_ps(b + 8 * g));
            _mm256_storeu_ps(px + 8 * g, draw_8(xv, xoshiro_next_8(s[g])));
        }
        if (bias)
            j = next_j(j, period);
        if (left < LANES)
            memcpy(x + i, tail, (size_t)left * sizeof(float));
    }
    for (int g = 0; g < 2; g++)
        for (int w = 0; w < 4; w++)
            _mm256_storeu_si256((__m256i *)(state + LANES * w + 8 * g), s[g][w]);
}

AVX2 static void exp_neg_avx2(const float *x, float *out, int64_t count)
{
    int64_t i = 0;
    for (; i + 8 <= count; i += 8)
        _mm256_storeu_ps(out + i, exp_neg_8(clamp_8(_mm256_loadu_ps(x + i))));
    for (; i < count; i++)
        out[i] = exp_neg_1(clampf(x[i]));
}

static int have_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#else
#define HAVE_AVX2_PATH 0
#endif

/* ---- whole sweeps, fused ---------------------------------------------------------- */

/* rbmdiff_gibbs runs every sweep of a block of ROWS chains before the next block: both
 * layers' fields are accumulated in registers, ROWS chains times 16 columns at a time (a tile;
 * 8 columns for the last one when the layer's width rounded up to 8 is not a multiple of 16),
 * starting from the bias, one fused multiply-add per input unit in input order, and each
 * tile is drawn as soon as it is complete, so a sweep never leaves the core's caches and
 * no field is stored.  Within a tile, vector q = r T + t (row r, 8-column vector t of T)
 * takes its random words from group q & 1.  Chains are split into chunks of CHUNK, each
 * with its own generator state given by the caller, so the result does not depend on how
 * many threads share the chunks or which takes which. */
#define ROWS 4
#define CHUNK 64

typedef struct {
    int64_t n, m, n8, m8;           /* units per layer, and rounded up to a multiple of 8 */
    const float *W;                 /* n x m8, zero-padded: hidden field c + v W */
    const float *WT;                /* m x n8, zero-padded: visible field b + h W^T */
    const float *c, *b;             /* m8; b_rows x n8 */
    int64_t b_rows, B, sweeps;
    float *v;                       /* B x n, updated in place */
    const uint32_t *states;         /* STATE_WORDS per chunk */
    int avx2;
} sweep_job;

/* out[r][j] <- draw(bias[r][j] + sum_{k<K} in[r][k] W[k][j]) for r < ROWS, j < out8 */
typedef void layer_fn(const float *in, int64_t in_stride, int64_t K, const float *W,
                      int64_t out8, const float *const *bias, float *out, int64_t out_stride,
                      uint32_t *state);

static void layer_generic(const float *in, int64_t in_stride, int64_t K, const float *W,
                          int64_t out8, const float *const *bias, float *out,
                          int64_t out_stride, uint32_t *state)
{
    for (int64_t j = 0; j < out8; j += 16) {
        int T = j + 16 <= out8 ? 2 : 1;
        for (int r = 0; r < ROWS; r++)
            for (int t = 0; t < T; t++) {
                int g = (r * T + t) & 1;
                for (int l = 0; l < 8; l++) {
                    int64_t col = j + 8 * t + l;
                    float acc = bias[r][col];
                    for (int64_t k = 0; k < K; k++)
                        acc = fmaf(in[r * in_stride + k], W[k * out8 + col], acc);
                    out[r * out_stride + col] = draw_1(acc, xoshiro_next(state, 8 * g + l));
                }
            }
    }
}

#if HAVE_AVX2_PATH
/* named accumulators, not arrays: gcc spills an array of vectors on every update */
#define FMA_ROW(r, a0, a1)                                                                    \
    do {                                                                                      \
        __m256 x_ = _mm256_broadcast_ss(in + (r) * in_stride + k);                            \
        a0 = _mm256_fmadd_ps(x_, w0, a0);                                                     \
        a1 = _mm256_fmadd_ps(x_, w1, a1);                                                     \
    } while (0)

AVX2 static void layer_avx2(const float *in, int64_t in_stride, int64_t K, const float *W,
                            int64_t out8, const float *const *bias, float *out,
                            int64_t out_stride, uint32_t *state)
{
    __m256i s0[4], s1[4];
    for (int w = 0; w < 4; w++) {
        s0[w] = _mm256_loadu_si256((const __m256i *)(state + LANES * w));
        s1[w] = _mm256_loadu_si256((const __m256i *)(state + LANES * w + 8));
    }
    int64_t j = 0;
    for (; j + 16 <= out8; j += 16) {
        __m256 a00 = _mm256_loadu_ps(bias[0] + j), a01 = _mm256_loadu_ps(bias[0] + j + 8);
        __m256 a10 = _mm256_loadu_ps(bias[1] + j), a11 = _mm256_loadu_ps(bias[1] + j + 8);
        __m256 a20 = _mm256_loadu_ps(bias[2] + j), a21 = _mm256_loadu_ps(bias[2] + j + 8);
        __m256 a30 = _mm256_loadu_ps(bias[3] + j), a31 = _mm256_loadu_ps(bias[3] + j + 8);
        const float *w = W + j;
        for (int64_t k = 0; k < K; k++, w += out8) {
            __m256 w0 = _mm256_loadu_ps(w), w1 = _mm256_loadu_ps(w + 8);
            FMA_ROW(0, a00, a01);
            FMA_ROW(1, a10, a11);
            FMA_ROW(2, a20, a21);
            FMA_ROW(3, a30, a31);
        }
        float *o = out + j; /* vector q = 2r + t: group t */
        _mm256_storeu_ps(o, draw_8(a00, xoshiro_next_8(s0)));
        _mm256_storeu_ps(o + 8, draw_8(a01, xoshiro_next_8(s1)));
        _mm256_storeu_ps(o + out_stride, draw_8(a10, xoshiro_next_8(s0)));
        _mm256_storeu_ps(o + out_stride + 8, draw_8(a11, xoshiro_next_8(s1)));
        _mm256_storeu_ps(o + 2 * out_stride, draw_8(a20, xoshiro_next_8(s0)));
        _mm256_storeu_ps(o + 2 * out_stride + 8, draw_8(a21, xoshiro_next_8(s1)));
        _mm256_storeu_ps(o + 3 * out_stride, draw_8(a30, xoshiro_next_8(s0)));
        _mm256_storeu_ps(o + 3 * out_stride + 8, draw_8(a31, xoshiro_next_8(s1)));
    }
    if (j < out8) { /* the last 8 columns: vector q = r, group r & 1 */
        __m256 a0 = _mm256_loadu_ps(bias[0] + j), a1 = _mm256_loadu_ps(bias[1] + j);
        __m256 a2 = _mm256_loadu_ps(bias[2] + j), a3 = _mm256_loadu_ps(bias[3] + j);
        const float *w = W + j;
        for (int64_t k = 0; k < K; k++, w += out8) {
            __m256 w0 = _mm256_loadu_ps(w);
            a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(in + k), w0, a0);
            a1 = _mm256_fmadd_ps(_mm256_broadcast_ss(in + in_stride + k), w0, a1);
            a2 = _mm256_fmadd_ps(_mm256_broadcast_ss(in + 2 * in_stride + k), w0, a2);
            a3 = _mm256_fmadd_ps(_mm256_broadcast_ss(in + 3 * in_stride + k), w0, a3);
        }
        float *o = out + j;
        _mm256_storeu_ps(o, draw_8(a0, xoshiro_next_8(s0)));
        _mm256_storeu_ps(o + out_stride, draw_8(a1, xoshiro_next_8(s1)));
        _mm256_storeu_ps(o + 2 * out_stride, draw_8(a2, xoshiro_next_8(s0)));
        _mm256_storeu_ps(o + 3 * out_stride, draw_8(a3, xoshiro_next_8(s1)));
    }
    for (int w = 0; w < 4; w++) {
        _mm256_storeu_si256((__m256i *)(state + LANES * w), s0[w]);
        _mm256_storeu_si256((__m256i *)(state + LANES * w + 8), s1[w]);
    }
}
#endif

/* every sweep of the chains of chunk k; scratch: ROWS (n8 + m8) floats */
static void run_chunk(const sweep_job *job, int64_t k, float *scratch)
{
    int64_t first = k * CHUNK, rows = job->B - first < CHUNK ? job->B - first : CHUNK;
    int64_t n = job->n, m = job->m, n8 = job->n8, m8 = job->m8;
    layer_fn *layer = layer_generic;
#if HAVE_AVX2_PATH
    if (job->avx2)
        layer = layer_avx2;
#endif
    uint32_t state[STATE_WORDS];
    memcpy(state, job->states + k * STATE_WORDS, sizeof state);
    float *vb = scratch, *hb = scratch + ROWS * n8;
    for (int64_t r0 = first; r0 < first + rows; r0 += ROWS) {
        int64_t live = first + rows - r0 < ROWS ? first + rows - r0 : ROWS;
        const float *bias_h[ROWS], *bias_v[ROWS];
        memset(vb, 0, (size_t)(ROWS * n8) * sizeof(float));
        for (int64_t r = 0; r < ROWS; r++) {
            int64_t row = r < live ? r0 + r : r0; /* rows past the end: zeros, row r0's
                                                     bias, swept and discarded */
            if (r < live)
                memcpy(vb + r * n8, job->v + row * n, (size_t)n * sizeof(float));
            bias_h[r] = job->c;
            bias_v[r] = job->b + (job->b_rows == 1 ? 0 : row * n8);
        }
        for (int64_t s = 0; s < job->sweeps; s++) {
            layer(vb, n8, n, job->W, m8, bias_h, hb, m8, state);
            layer(hb, m8, m, job->WT, n8, bias_v, vb, n8, state);
        }
        for (int64_t r = 0; r < live; r++)
            memcpy(job->v + (r0 + r) * n, vb + r * n8, (size_t)n * sizeof(float));
    }
}

static int thread_index(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* ---- exported ---------------------------------------------------------------------- */

/* Which implementation rbmdiff_bernoulli uses on this CPU: 1 AVX2+FMA, 0 portable C. */
int rbmdiff_simd(void)
{
#if HAVE_AVX2_PATH
    return have_avx2();
#else
    return 0;
#endif
}

int rbmdiff_state_words(void) { return STATE_WORDS; }

/* Whether rbmdiff_gibbs can share its chunks among threads (built with OpenMP). */
int rbmdiff_openmp(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

/* Whether the portable implementation is fast here: fmaf an instruction, not a library
 * call (aarch64, say).  On x86 without AVX2+FMA it is slower than torch's kernel. */
int rbmdiff_portable_fast(void)
{
#ifdef FP_FAST_FMAF
    return 1;
#else
    return 0;
#endif
}

/* x[i] <- Bernoulli(sigma(x[i] + bias[i mod period])) in place for i < count; bias may be
 * NULL (then period is ignored), else period >= 1.  state: STATE_WORDS words, advanced.
 * portable != 0 forces the portable implementation (tests compare the two). */
void rbmdiff_bernoulli(float *x, int64_t count, const float *bias, int64_t period,
                       uint32_t *state, int portable)
{
    if (bias && period < 1)
        return;
#if HAVE_AVX2_PATH
    if (!portable && have_avx2()) {
        bernoulli_avx2(x, count, bias, period, state);
        return;
    }
#endif
    (void)portable;
    bernoulli_generic(x, count, bias, period, state);
}

/* out <- e^{-clamp(x)}: the kernel's exponential, exported for its accuracy test. */
void rbmdiff_exp_neg(const float *x, float *out, int64_t count, int portable)
{
#if HAVE_AVX2_PATH
    if (!portable && have_avx2()) {
        exp_neg_avx2(x, out, count);
        return;
    }
#endif
    (void)portable;
    exp_neg_generic(x, out, count);
}

/* sweeps block-Gibbs sweeps on the B chains in v (B x n, in place): h ~ sigma(c + v W),
 * v ~ sigma(b + h W^T), with W n x m row-major, c m floats, b b_rows (1 or B) x n.  states:
 * STATE_WORDS words for each chunk of CHUNK chains (read, not advanced).  Up to threads OpenMP
 * threads claim the chunks one at a time (one thread without OpenMP); the result does not
 * depend on their number.  Returns 0, or -1 when memory could not be had (v unchanged). */
int rbmdiff_gibbs(float *v, int64_t B, int64_t n, int64_t m, const float *W, const float *b,
                  int64_t b_rows, const float *c, int64_t sweeps, const uint32_t *states,
                  int threads, int portable)
{
    if (B <= 0 || sweeps <= 0)
        return 0;
    int64_t n8 = (n + 7) / 8 * 8, m8 = (m + 7) / 8 * 8, chunks = (B + CHUNK - 1) / CHUNK;
#ifdef _OPENMP
    if (threads > chunks)
        threads = (int)chunks;
#endif
    if (threads < 1)
        threads = 1;
#ifndef _OPENMP
    threads = 1;
#endif
    size_t scratch = (size_t)(ROWS * (n8 + m8));
    size_t total = (size_t)(n * m8 + m * n8 + m8 + b_rows * n8) + scratch * (size_t)threads;
    float *buf = calloc(total, sizeof(float));
    if (!buf)
        return -1;
    float *Wp = buf, *WTp = Wp + n * m8, *cp = WTp + m * n8, *bp = cp + m8;
    float *scr = bp + b_rows * n8;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < m; j++) {
            Wp[i * m8 + j] = W[i * m + j];
            WTp[j * n8 + i] = W[i * m + j];
        }
    memcpy(cp, c, (size_t)m * sizeof(float));
    for (int64_t r = 0; r < b_rows; r++)
        memcpy(bp + r * n8, b + r * n, (size_t)n * sizeof(float));
    sweep_job job = {n, m, n8, m8, Wp, WTp, cp, bp, b_rows, B, sweeps, v, states, 0};
#if HAVE_AVX2_PATH
    job.avx2 = !portable && have_avx2();
#endif
    (void)portable;
    /* each thread sweeps whole chunks in its own scratch rows; a thread busy elsewhere
     * takes fewer chunks */
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (threads > 1)
    for (int64_t k = 0; k < chunks; k++)
        run_chunk(&job, k, scr + scratch * (size_t)thread_index());
    free(buf);
    return 0;
}
