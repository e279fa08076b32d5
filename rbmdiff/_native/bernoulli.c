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

/* Whether the portable implementation is fast here: fmaf an instruction, not a library
 * call (aarch64, say).  On x86 without AVX2+FMA it is ~10x slower than torch's kernel. */
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
