/* The matmul of every linear layer: C (M, N) = A (M, K) @ B (K, N), built the way fast BLAS libraries build theirs
 * (Goto and van de Geijn's algorithm, as in BLIS and OpenBLAS). docs/kernels.md walks through it with measurements.
 *
 * A and B are read through strides, A[i, k] = A[i * rsa + k * csa], so that the three products of a linear,
 * x @ w, dout @ w^T and x^T @ dout, and the tied head's transposed weight, are all the same call: the packing
 * below reads either layout, and nothing is transposed into a copy first. C is row-major, row stride ldc.
 * Included twice by minigpt.c (real = float, double); the float32 micro-kernels are in microkernels.c.
 *
 * The loops, from the outside in:
 *   jc: NC columns of B and C at a time          (a panel of B that stays in the L3 cache)
 *   pc: KC rows of B (and columns of A)           (the panel of B is packed: KC x NC, in slivers of NR columns)
 *   ic: MC rows of A and C                        (a block of A, MC x KC, in L2; packed if A is transposed)
 *   jr: NR columns: one sliver of packed B         (a sliver of B stays in L1)
 *   ir: MR rows: one sliver of packed A            (the (jr, ir) tiles are shared out among the threads)
 *       micro-kernel: the MR x NR tile of C, accumulated over KC in registers
 * Packing copies each sliver into consecutive memory in exactly the order the micro-kernel reads it, so its
 * loads are contiguous whatever the layout of A and B, and the zero padding of a last, partial sliver lets it
 * always run whole tiles.
 */

/* The portable micro-kernel (any C compiler; the float64 one too): 4 x 8, multiply and add rounded separately. */
static void FN(micro_portable)(int kc, const real* a, long rsa, long csa, const real* b, real* c, long ldc, int mr,
                               int nr, const real* bias, int beta) {
    real acc[4][8] = {{0}};
    long row[4];
    for (int i = 0; i < 4; i++)
        row[i] = (i < mr ? i : mr - 1) * rsa;
    for (long k = 0, o = 0; k < kc; k++, o += csa, b += 8)
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 8; j++)
                acc[i][j] += a[row[i] + o] * b[j];
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nr; j++) {
            real v = acc[i][j];
            if (beta)
                v += c[(long)i * ldc + j];
            else if (bias != NULL)
                v += bias[j];
            c[(long)i * ldc + j] = v;
        }
}

/* --8<-- [start:driver] */
/* One sliver of a transposed A (rsa == 1: A = x^T or dout^T, whose columns are rows in memory), `rows` of its rows
 * from i0 (at most MR): for each k, its MR entries, which lie side by side in A (rows past the block's end: zeros).
 * A is packed when one step along k is more than PACK_A_MIN_STEP bytes: read in place, such a sliver goes to
 * another page of memory at every step or two, once for every sliver of B (dout^T of the tied head: 50257 floats
 * apart); packed, once. Measured (docs/kernels.md): packing made x^T @ dout of GPT-2 small (steps of 768 and 3072
 * floats) 18 to 26% faster, and of the recipe (128 and 512 floats) 3 to 11% slower. A row-major A (x, dout) is read
 * in place: its rows are consecutive already, and copying them cost as much as the multiply-adds at 768 x 128. */
static void FN(pack_a_sliver)(real* d, const real* A, long csa, int i0, int rows, int p0, int kc, int mr_) {
    const real* a = A + i0 + (long)p0 * csa;  /* the sliver's first entry */
    for (int k = 0; k < kc; k++) {
        for (int i = 0; i < rows; i++)
            d[(long)k * mr_ + i] = a[(long)k * csa + i];
        for (int i = rows; i < mr_; i++)
            d[(long)k * mr_ + i] = 0;
    }
}

#ifdef HAVE_SHUFFLEVECTOR
/* The 8 x 8 block at b (rows ldb apart) transposed into d (rows ldd apart): d[m, i] = b[i, m], in three rounds of
 * shuffles of 8-wide vectors (the transpose BLAS libraries write with unpack and permute instructions; GCC's and
 * Clang's __builtin_shufflevector compiles to them), where reading the 64 numbers one at a time and inserting them
 * into vectors took a load and a shuffle each. */
typedef real FN(vec8) __attribute__((vector_size(8 * sizeof(real))));
static inline void FN(transpose8)(real* d, long ldd, const real* b, long ldb) {
    FN(vec8) r[8], t[8], u[8];
    for (int i = 0; i < 8; i++)
        memcpy(&r[i], b + i * ldb, sizeof r[i]);
    for (int i = 0; i < 8; i += 2) {  /* pairs of rows interleaved: (r0[0], r1[0], r0[1], r1[1] | ...) */
        t[i] = __builtin_shufflevector(r[i], r[i + 1], 0, 8, 1, 9, 4, 12, 5, 13);
        t[i + 1] = __builtin_shufflevector(r[i], r[i + 1], 2, 10, 3, 11, 6, 14, 7, 15);
    }
    for (int i = 0; i < 8; i += 4)  /* then pairs of pairs: (r0[0], r1[0], r2[0], r3[0] | ...) */
        for (int h = 0; h < 2; h++) {
            u[i + 2 * h] = __builtin_shufflevector(t[i + h], t[i + h + 2], 0, 1, 8, 9, 4, 5, 12, 13);
            u[i + 2 * h + 1] = __builtin_shufflevector(t[i + h], t[i + h + 2], 2, 3, 10, 11, 6, 7, 14, 15);
        }
    for (int m = 0; m < 4; m++) {  /* then the halves: column m of the block, and column m + 4 */
        FN(vec8) low = __builtin_shufflevector(u[m], u[m + 4], 0, 1, 2, 3, 8, 9, 10, 11);
        FN(vec8) high = __builtin_shufflevector(u[m], u[m + 4], 4, 5, 6, 7, 12, 13, 14, 15);
        memcpy(d + m * ldd, &low, sizeof low);
        memcpy(d + (m + 4) * ldd, &high, sizeof high);
    }
}
#endif

/* d[i, j] = b[j, i] for i < rows, j < cols: d's rows ldd apart, b's ldb apart. By blocks of 8 x 8 (transpose8), the
 * edges (or, without vector shuffles, all of it) one number at a time. */
static void FN(transpose)(real* restrict d, long ldd, const real* restrict b, long ldb, int rows, int cols) {
    int i8 = 0, j8 = 0;  /* the blocks: rows 0 .. i8 - 1 and columns 0 .. j8 - 1 of d */
#ifdef HAVE_SHUFFLEVECTOR
    i8 = rows / 8 * 8, j8 = cols / 8 * 8;
    for (int i = 0; i < i8; i += 8)
        for (int j = 0; j < j8; j += 8)
            FN(transpose8)(d + (long)i * ldd + j, ldd, b + (long)j * ldb + i, ldb);
#endif
    for (int i = 0; i < rows; i++)
        for (int j = i < i8 ? j8 : 0; j < cols; j++)
            d[(long)i * ldd + j] = b[(long)j * ldb + i];
}

/* One sliver of a transposed B (rsb == 1: w^T, attention's k^T), `cols` of its columns from b, each contiguous along
 * k in memory, csb apart: d[k, j] = b[j * csb + k], then zeros in the columns past `cols`. */
static void FN(pack_b_transposed)(real* restrict d, const real* restrict b, long csb, int kc, int cols, int nr_) {
    FN(transpose)(d, nr_, b, csb, kc, cols);
    for (int k = 0; k < kc; k++)
        for (int j = cols; j < nr_; j++)
            d[(long)k * nr_ + j] = 0;
}

/* A panel of B (rows p0.., columns j0..) into slivers of NR columns: sliver s holds, for each k, its NR entries
 * (columns past the panel's end are zeros). Row-major B (csb == 1: w, dout) copies NR contiguous numbers per
 * row; B = w^T (rsb == 1) reads each of the sliver's columns along its contiguous length. */
static void FN(pack_b)(real* dst, const real* B, long rsb, long csb, int p0, int kc, int j0, int nc, int nr_, int nt,
                       int id) {
    int slivers = (nc + nr_ - 1) / nr_;
    for (int s = slivers * id / nt; s < slivers * (id + 1) / nt; s++) {  /* this thread's share */
        real* d = dst + (long)s * nr_ * kc;
        int cols = nc - s * nr_ < nr_ ? nc - s * nr_ : nr_;
        const real* b = B + (long)p0 * rsb + (long)(j0 + s * nr_) * csb;  /* the sliver's first entry */
        if (csb == 1 && cols == nr_) {
            for (int k = 0; k < kc; k++)
                memcpy(d + (long)k * nr_, b + (long)k * rsb, sizeof(real) * nr_);
        } else if (rsb == 1) {  /* B = w^T or k^T */
            FN(pack_b_transposed)(d, b, csb, kc, cols, nr_);
        } else {
            for (int j = 0; j < nr_; j++) {
                if (j >= cols) {
                    for (int k = 0; k < kc; k++)
                        d[(long)k * nr_ + j] = 0;
                } else {
                    for (int k = 0; k < kc; k++)
                        d[(long)k * nr_ + j] = b[(long)j * csb + (long)k * rsb];
                }
            }
        }
    }
}

/* The tiles of C at rows ic + i0 .. ic + i1 of a block of A (mc rows from ic) and columns jc + j0 .. jc + j1 of a
 * panel of packed B (nc columns from jc), in order: a sliver of B stays in L1 while it sweeps the slivers of A. */
static void FN(gemm_block)(const real* A, long rsa, long csa, int ic, int mc, int i0, int i1, int pc, int kc, int jc,
                           int nc, int j0, int j1, const real* packed_a, const real* packed_b, real* C, long ldc,
                           const real* bias, int first) {
    const FN(Microkernel)* uk = &FN(microkernel);
    int mr_ = uk->mr, nr_ = uk->nr;
    for (int jr = j0; jr < j1; jr += nr_)
        for (int ir = i0; ir < i1; ir += mr_) {
            int mr = mc - ir < mr_ ? mc - ir : mr_, nr = nc - jr < nr_ ? nc - jr : nr_;
            const real* a = packed_a != NULL ? packed_a + (long)ir * kc : A + (ic + ir) * rsa + pc * csa;
            uk->fn(kc, a, packed_a != NULL ? 1 : rsa, packed_a != NULL ? mr_ : csa, packed_b + (long)jr * kc,
                   C + (long)(ic + ir) * ldc + jc + jr, ldc, mr, nr, first && bias != NULL ? bias + jc + jr : NULL,
                   !first);
        }
}

/* Every thread of a team of nt (this one: id) waits here for the others; a team of one goes on. */
static void FN(team_barrier)(int nt) {
    if (nt > 1) {
        #pragma omp barrier
    }
}

/* C = A @ B (+ bias, broadcast over the rows; bias may be NULL), or C += A @ B if accumulate. Called by every
 * thread of a team of nt threads (the caller's parallel region; this one is thread id), or by one thread alone
 * (nt = 1: no OpenMP construct is met, so it may run inside another team's region, as attention's tiles do), with
 * buffers for the packed panels: packed_a holds a_size numbers for each thread. The threads pack each panel of B
 * together. Then, where A has at least as many rows as B has columns and every thread gets at least
 * ROWS_PER_THREAD_MIN slivers of them (the recipe's activations, 768 rows, against weights 128 to 512 wide), they
 * share out the rows of A: each thread reads only its own part of A, the larger operand, and waits for no other until
 * the next panel. Otherwise (a weight's gradient, C x OC; GPT-2 small's 256 rows against 768 to 3072 columns) they
 * share out each block's tiles, by columns first: each thread reads only the part of the panel of B it packed.
 * Measured on the AVX-512 Xeon: the rows, 7% off the recipe's step, 5% more on GPT-2 small's; the rule, the best of
 * both. */
static void FN(gemm_team)(int M, int N, int K, const real* A, long rsa, long csa, const real* B, long rsb, long csb,
                          real* C, long ldc, const real* bias, int accumulate, real* packed_a, long a_size,
                          real* packed_b, int nt, int id) {
    const FN(Microkernel)* uk = &FN(microkernel);
    int mr_ = uk->mr, nr_ = uk->nr;
    int pack = csa * (long)sizeof(real) > pack_a_min_step;  /* see pack_a_sliver */
    int slivers_m = (M + mr_ - 1) / mr_, by_rows = slivers_m >= ROWS_PER_THREAD_MIN * nt && M >= N;
    real* my_packed_a = packed_a + id * a_size;
    for (int jc = 0; jc < N; jc += NC) {
        int nc = N - jc < NC ? N - jc : NC;
        for (int pc = 0; pc < K || pc == 0; pc += KC) {  /* K = 0: one pass that writes the bias (or zeros) */
            int kc = K - pc < KC ? K - pc : KC;
            FN(pack_b)(packed_b, B, rsb, csb, pc, kc, jc, nc, nr_, nt, id);
            FN(team_barrier)(nt);  /* all of the panel is packed */
            int first = pc == 0 && !accumulate;  /* the first panel writes C; the others add to it */
            if (by_rows) {
                int m0 = slivers_m * id / nt * mr_, m1 = slivers_m * (id + 1) / nt * mr_;  /* this thread's rows */
                m1 = m1 < M ? m1 : M;
                for (int ic = m0; ic < m1; ic += MC) {
                    int mc = m1 - ic < MC ? m1 - ic : MC;
                    if (pack)
                        for (int ir = 0; ir < mc; ir += mr_)
                            FN(pack_a_sliver)(my_packed_a + (long)ir * kc, A, csa, ic + ir,
                                              mc - ir < mr_ ? mc - ir : mr_, pc, kc, mr_);
                    FN(gemm_block)(A, rsa, csa, ic, mc, 0, mc, pc, kc, jc, nc, 0, nc, pack ? my_packed_a : NULL,
                                   packed_b, C, ldc, bias, first);
                }
                if (pc + KC < K || jc + NC < N)
                    FN(team_barrier)(nt);  /* before the next panel of B overwrites this one */
                continue;
            }
            for (int ic = 0; ic < M; ic += MC) {
                int mc = M - ic < MC ? M - ic : MC;
                int slivers_a = (mc + mr_ - 1) / mr_, slivers_b = (nc + nr_ - 1) / nr_;
                if (pack) {
                    for (int sl = slivers_a * id / nt; sl < slivers_a * (id + 1) / nt; sl++)
                        FN(pack_a_sliver)(packed_a + (long)sl * mr_ * kc, A, csa, ic + sl * mr_,
                                          mc - sl * mr_ < mr_ ? mc - sl * mr_ : mr_, pc, kc, mr_);
                    FN(team_barrier)(nt);
                }
                /* the tiles, shared out among the threads in order: each thread keeps a sliver of B in L1
                 * while it sweeps slivers of A (a narrow C, with few slivers of B, still splits evenly) */
                int tiles = slivers_a * slivers_b;
                for (int tile = tiles * id / nt; tile < tiles * (id + 1) / nt; tile++) {
                    int jr = tile / slivers_a * nr_, ir = tile % slivers_a * mr_;
                    FN(gemm_block)(A, rsa, csa, ic, mc, ir, ir + 1, pc, kc, jc, nc, jr, jr + 1,
                                   pack ? packed_a : NULL, packed_b, C, ldc, bias, first);
                }
                FN(team_barrier)(nt);  /* before packed_a or packed_b is overwritten */
            }
        }
    }
}

/* A few rows of A (decoding: one row per sequence): packing B would cost as much as the product, since each number of
 * B is used only M times, so C is made straight from B as it lies, and the product is bound by how fast B streams
 * in from memory. Small products run on the calling thread: waking the others costs more than B takes to read.
 * Row-major B (csb == 1: w (K, N)): a row of C is a sum of B's rows, c += a_k0 B[k0, :] + ... + a_k3 B[k3, :], along
 * contiguous memory. The threads split K: each reads one contiguous block of B's rows, a single stream that the
 * hardware prefetcher follows, into its own partial rows of C (in L1), which are added up at the end.
 * B = w^T (rsb == 1: the tied head's wte^T): entries of C are dot products along contiguous rows of w, four at a
 * time, summed in vector registers (omp simd reduction: the one reordering of a sum the kernels allow besides the
 * split of K). The threads split the columns of C. */
static void FN(gemm_few_rows)(int M, int N, int K, const real* A, long rsa, long csa, const real* B, long rsb, long csb,
                              real* C, long ldc, const real* bias, int accumulate, int parallel) {
    int threads = parallel && (long)N * K >= FEW_ROWS_PARALLEL_MIN ? omp_get_max_threads() : 1;
    if (csb == 1) {
        real* partial = malloc(sizeof(real) * threads * M * N);  /* (threads, M, N) */
        #pragma omp parallel num_threads(threads) if (threads > 1)
        {
            int nt = omp_get_num_threads(), id = omp_get_thread_num();
            int k0 = (int)((long)K * id / nt), k1 = (int)((long)K * (id + 1) / nt);  /* this thread's rows of B */
            for (int i = 0; i < M; i++) {
                real* restrict c = partial + ((long)id * M + i) * N;  /* (N,) */
                const real* a = A + (long)i * rsa;  /* a[k * csa] */
                for (int j = 0; j < N; j++)
                    c[j] = 0;
                int k = k0;
                for (; k + 4 <= k1; k += 4) {
                    real a0 = a[k * csa], a1 = a[(k + 1) * csa], a2 = a[(k + 2) * csa], a3 = a[(k + 3) * csa];
                    const real* restrict b0 = B + (long)k * rsb;  /* (N,) each */
                    const real* restrict b1 = b0 + rsb;
                    const real* restrict b2 = b1 + rsb;
                    const real* restrict b3 = b2 + rsb;
                    #pragma omp simd
                    for (int j = 0; j < N; j++)
                        c[j] += (a0 * b0[j] + a1 * b1[j]) + (a2 * b2[j] + a3 * b3[j]);
                }
                for (; k < k1; k++) {
                    real a0 = a[k * csa];
                    const real* restrict b0 = B + (long)k * rsb;
                    #pragma omp simd
                    for (int j = 0; j < N; j++)
                        c[j] += a0 * b0[j];
                }
            }
        }
        for (int i = 0; i < M; i++) {  /* C = (C or bias or 0) + the partial rows, in thread order */
            real* c = C + (long)i * ldc;
            for (int j = 0; j < N; j++) {
                real v = accumulate ? c[j] : bias != NULL ? bias[j] : 0;
                for (int t = 0; t < threads; t++)
                    v += partial[((long)t * M + i) * N + j];
                c[j] = v;
            }
        }
        free(partial);
        return;
    }
    /* one block of columns per thread, a multiple of 16 wide */
    int width = ((N + threads - 1) / threads + 15) / 16 * 16, blocks = (N + width - 1) / width;
    #pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (int blk = 0; blk < blocks; blk++) {
        int j0 = blk * width, nj = N - j0 < width ? N - j0 : width;
        if (!accumulate)
            for (int i = 0; i < M; i++)
                for (int j = 0; j < nj; j++)
                    C[(long)i * ldc + j0 + j] = bias != NULL ? bias[j0 + j] : 0;
        int j = 0;
        for (; csa == 1 && rsb == 1 && j + 4 <= nj; j += 4) {  /* (unit strides, which the compiler vectorises) */
            const real* b0 = B + (long)(j0 + j) * csb;  /* columns j..j+3 of B: b0[k * rsb], ... */
            const real *b1 = b0 + csb, *b2 = b1 + csb, *b3 = b2 + csb;
            for (int i = 0; i < M; i++) {  /* every row of A, while the four columns of B are in L1 */
                const real* a = A + (long)i * rsa;  /* a[k] */
                /* a line (64 bytes) of each of the four at a time, in vector accumulators, while the same line of
                 * the next four is asked for (4 csb further on): the hardware's prefetcher alone keeps too few lines
                 * in flight for four streams, and a matrix-vector product on 2 threads read 11 to 27 GB/s of the
                 * 29.9 a large one reaches (docs/inference.md) */
                enum { LINE = 64 / sizeof(real) };
                real v0[LINE] = {0}, v1[LINE] = {0}, v2[LINE] = {0}, v3[LINE] = {0};
                int k = 0;
                for (; k + LINE <= K; k += LINE) {
                    __builtin_prefetch(b0 + 4 * csb + k);
                    __builtin_prefetch(b1 + 4 * csb + k);
                    __builtin_prefetch(b2 + 4 * csb + k);
                    __builtin_prefetch(b3 + 4 * csb + k);
                    #pragma omp simd
                    for (int t = 0; t < LINE; t++) {
                        v0[t] += a[k + t] * b0[k + t];
                        v1[t] += a[k + t] * b1[k + t];
                        v2[t] += a[k + t] * b2[k + t];
                        v3[t] += a[k + t] * b3[k + t];
                    }
                }
                real s0 = 0, s1 = 0, s2 = 0, s3 = 0;
                for (; k < K; k++) {
                    s0 += a[k] * b0[k];
                    s1 += a[k] * b1[k];
                    s2 += a[k] * b2[k];
                    s3 += a[k] * b3[k];
                }
                for (int t = 0; t < LINE; t++) {
                    s0 += v0[t];
                    s1 += v1[t];
                    s2 += v2[t];
                    s3 += v3[t];
                }
                real* c = C + (long)i * ldc + j0 + j;
                c[0] += s0;
                c[1] += s1;
                c[2] += s2;
                c[3] += s3;
            }
        }
        for (; j < nj; j++) {  /* the last columns, or any strides */
            const real* b0 = B + (long)(j0 + j) * csb;
            for (int i = 0; i < M; i++) {
                const real* a = A + (long)i * rsa;  /* a[k * csa] */
                real s0 = 0;
                for (int k = 0; k < K; k++)
                    s0 += a[k * csa] * b0[k * rsb];
                C[(long)i * ldc + j0 + j] += s0;
            }
        }
    }
}

/* The whole product on the kernels' threads (minigpt_set_threads), or on the calling thread alone for small work
 * or when `parallel` is 0 (attention calls it from each of its own threads). */
void FN(gemm)(int M, int N, int K, const real* A, long rsa, long csa, const real* B, long rsb, long csb,
              real* C, long ldc, const real* bias, int accumulate, int parallel) {
    const FN(Microkernel)* uk = &FN(microkernel);
    if (M <= FEW_ROWS) {
        FN(gemm_few_rows)(M, N, K, A, rsa, csa, B, rsb, csb, C, ldc, bias, accumulate, parallel);
        return;
    }
    /* the packing buffers of this calling thread, kept from call to call (a fresh one would fault in its pages) */
    static __thread real* packed = NULL;
    static __thread long capacity = 0;
    long a_size = (long)(MC + uk->mr) * KC, b_size = (long)((N < NC ? N : NC) + uk->nr) * KC;
    long threads = omp_get_max_threads();
    if (threads * a_size + b_size > capacity) {
        free(packed);
        capacity = threads * a_size + b_size;
        packed = aligned_alloc(64, sizeof(real) * capacity);  /* 64: a whole cache line, and AVX-512's alignment */
    }
    real* buffer = packed;  /* a local: inside the parallel region `packed` would be each thread's own */
    if (!parallel || (long)M * N * K < PARALLEL_MIN_WORK || threads == 1) {
        FN(gemm_team)(M, N, K, A, rsa, csa, B, rsb, csb, C, ldc, bias, accumulate, buffer, a_size,
                      buffer + threads * a_size, 1, 0);
        return;
    }
    #pragma omp parallel
    FN(gemm_team)(M, N, K, A, rsa, csa, B, rsb, csb, C, ldc, bias, accumulate, buffer, a_size,
                  buffer + threads * a_size, omp_get_num_threads(), omp_get_thread_num());
}
/* --8<-- [end:driver] */
