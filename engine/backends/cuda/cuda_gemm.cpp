// Row-major GEMM on cuBLAS / cuBLASLt. cuBLAS is column-major: a row-major (M, N) matrix is the
// column-major (N, M) matrix of the same bytes, so C = op(A) op(B) is computed as C^T = op(B)^T op(A)^T,
// i.e. the cuBLAS call takes B first, then A, with m = N and n = M.
#include "engine/backends/cuda/cuda_backend_impl.h"
#include "engine/backends/cuda/cuda_kernels.h"

#include "engine/core/errors.h"

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstring>

namespace lathe::cuda {

struct GemmEngine::LtPlan {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t layoutA = nullptr, layoutB = nullptr, layoutC = nullptr;
    cublasLtMatmulAlgo_t algo{};
    bool haveAlgo = false;
    ~LtPlan() {
        if (layoutC) cublasLtMatrixLayoutDestroy(layoutC);
        if (layoutB) cublasLtMatrixLayoutDestroy(layoutB);
        if (layoutA) cublasLtMatrixLayoutDestroy(layoutA);
        if (desc) cublasLtMatmulDescDestroy(desc);
    }
};

namespace {

cublasOperation_t opOf(Trans t) { return t == Trans::Yes ? CUBLAS_OP_T : CUBLAS_OP_N; }

// out = the plan's product of w and x with f32 alpha 1 and beta 0, on `stream` (the workspace already made).
template <class Plan>
void launchF32Scaled(cublasLtHandle_t lt, Plan& plan, const void* w, const void* x, void* out, void* workspace,
                     std::size_t workspaceBytes, cudaStream_t stream) {
    const float alpha = 1.0f, beta = 0.0f;
    LATHE_CUBLAS_CHECK(cublasLtMatmul(lt, plan.desc, &alpha, w, plan.layoutA, x, plan.layoutB, &beta, out,
                                      plan.layoutC, out, plan.layoutC, &plan.algo, workspace, workspaceBytes, stream));
}

int checkedInt(std::int64_t v, const char* what) {
    if (v < 0 || v > INT_MAX)
        throw BackendError(std::string("cuda gemm: ") + what + " = " + std::to_string(v) +
                           " does not fit cuBLAS's 32-bit sizes");
    return static_cast<int>(v);
}

// Largest power of two (<= 256) dividing the address: cuBLASLt picks kernels by operand alignment,
// and sliced tensors are not always 256-byte aligned.
std::uint32_t alignmentOf(const void* p) {
    const auto a = reinterpret_cast<std::uintptr_t>(p);
    std::uint32_t al = 256;
    while (al > 1 && (a % al) != 0) al >>= 1;
    return al;
}

// Worth a few trial launches at plan time: a billion multiply-adds and up (8192^3 is 550 of those).
bool isLarge(std::int64_t m, std::int64_t n, std::int64_t k) {
    return static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k) >= 1e9;
}

} // namespace

void GemmEngine::ensureWorkspace() {
    if (!m_ltWorkspace) LATHE_CUDA_CHECK(cudaMalloc(&m_ltWorkspace, m_ltWorkspaceBytes));
}

GemmEngine::GemmEngine(std::shared_ptr<CudaContext> ctx, int ccMajor)
    : m_ctx(std::move(ctx)),
      // NVIDIA's guidance for cuBLASLt workspaces: 32 MiB on Hopper, 4 MiB before it.
      m_ltWorkspaceBytes(ccMajor >= 9 ? (32u << 20) : (4u << 20)) {
    const char* tf32 = std::getenv("LATHE_CUDA_ALLOW_TF32");
    m_tf32 = tf32 && std::strcmp(tf32, "1") == 0;
    const char* trials = std::getenv("LATHE_CUDA_GEMM_TRIALS"); // 0: always the heuristic's first algorithm
    m_trials = !(trials && std::strcmp(trials, "0") == 0);
    DeviceGuard guard(m_ctx->index); // handles bind to the current device
    LATHE_CUBLAS_CHECK(cublasCreate(&m_cublas));
    // F16/BF16 through cublasGemmEx keep their split-K partial sums in F32, as the backend promises.
    const cublasMath_t math = static_cast<cublasMath_t>(
        (m_tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH) | CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION);
    try {
        LATHE_CUBLAS_CHECK(cublasSetStream(m_cublas, m_ctx->stream));
        LATHE_CUBLAS_CHECK(cublasSetMathMode(m_cublas, math));
        LATHE_CUBLAS_CHECK(cublasLtCreate(&m_lt));
    } catch (...) { // the destructor does not run for a constructor that throws
        cublasDestroy(m_cublas);
        throw;
    }
}

GemmEngine::~GemmEngine() {
    m_plans.clear();
    if (m_ltWorkspace) cudaFree(m_ltWorkspace);
    if (m_lt) cublasLtDestroy(m_lt);
    if (m_cublas) cublasDestroy(m_cublas);
}

void GemmEngine::run(DType dt, Trans ta, Trans tb, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
                     const void* a, std::int64_t lda, const void* b, std::int64_t ldb, float beta, void* c,
                     std::int64_t ldc) {
    if (m == 0 || n == 0) return;
    if (k == 0) { // no products: C = beta C (cuBLAS would reject the zero leading dimensions of empty A and B)
        launchScaleMatrix(c, dt, m, n, ldc, beta, m_ctx->stream);
        return;
    }
    if (dt == DType::F16 || dt == DType::BF16) {
        runLt(dt, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    if (dt != DType::F32) throw BackendError(std::string("cuda gemm: no GEMM for ") + dtypeName(dt));
    // C^T (N, M) = op(B)^T (N, K) @ op(A)^T (K, M)
    LATHE_CUBLAS_CHECK(cublasSgemm(m_cublas, opOf(tb), opOf(ta), checkedInt(n, "N"), checkedInt(m, "M"),
                                   checkedInt(k, "K"), &alpha, static_cast<const float*>(b), checkedInt(ldb, "ldb"),
                                   static_cast<const float*>(a), checkedInt(lda, "lda"), &beta,
                                   static_cast<float*>(c), checkedInt(ldc, "ldc")));
}

void GemmEngine::runStridedBatched(Trans ta, Trans tb, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
                                   const float* a, std::int64_t lda, std::int64_t strideA, const float* b,
                                   std::int64_t ldb, std::int64_t strideB, float beta, float* c, std::int64_t ldc,
                                   std::int64_t strideC, std::int64_t batch) {
    if (m == 0 || n == 0 || batch == 0) return;
    if (k == 0) {
        for (std::int64_t i = 0; i < batch; ++i)
            launchScaleMatrix(c + i * strideC, DType::F32, m, n, ldc, beta, m_ctx->stream);
        return;
    }
    // C_i^T (N, M) = op(B_i)^T (N, K) @ op(A_i)^T (K, M), as in run()
    LATHE_CUBLAS_CHECK(cublasSgemmStridedBatched(m_cublas, opOf(tb), opOf(ta), checkedInt(n, "N"), checkedInt(m, "M"),
                                                 checkedInt(k, "K"), &alpha, b, checkedInt(ldb, "ldb"), strideB, a,
                                                 checkedInt(lda, "lda"), strideA, &beta, c, checkedInt(ldc, "ldc"),
                                                 strideC, checkedInt(batch, "batch")));
}

void GemmEngine::pickAlgo(LtPlan& plan, std::uint32_t align, bool f32Reduction, const Trial& trial) {
    cublasLtMatmulPreference_t pref = nullptr;
    LATHE_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    struct PrefGuard {
        cublasLtMatmulPreference_t p;
        ~PrefGuard() { cublasLtMatmulPreferenceDestroy(p); }
    } guard{pref};
    const std::uint64_t ws = m_ltWorkspaceBytes;
    LATHE_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
                                                            sizeof ws));
    for (auto attr : {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES})
        LATHE_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, attr, &align, sizeof align));
    if (f32Reduction) {
        // Split-K may reduce only in the compute type (F32) or not at all: never in place in the F16/BF16
        // output, nor in an output-typed workspace.
        const std::uint32_t mask = CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE;
        LATHE_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK,
                                                                &mask, sizeof mask));
    }
    // Large products try the heuristic's first few algorithms on the call's own operands and keep the fastest
    // (the heuristic's first choice is not always the fastest on a given chip: 2-3 timed launches each, once per
    // plan); small ones, and any plan made while the stream is being captured into a graph, take its first.
    constexpr int kCandidates = 8;
    cublasLtMatmulHeuristicResult_t results[kCandidates] = {};
    int found = 0;
    const bool tryThem = trial && m_trials;
    const int asked = tryThem ? kCandidates : 1;
    const cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(m_lt, plan.desc, plan.layoutA, plan.layoutB,
                                                             plan.layoutC, plan.layoutC, pref, asked, results, &found);
    if (st != CUBLAS_STATUS_SUCCESS || found == 0) return;
    plan.algo = results[0].algo;
    plan.haveAlgo = true;
    if (found == 1 || !tryThem) return;
    cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
    if (cudaStreamIsCapturing(m_ctx->stream, &capturing) != cudaSuccess || capturing != cudaStreamCaptureStatusNone)
        return;
    cudaEvent_t start = nullptr, stop = nullptr;
    LATHE_CUDA_CHECK(cudaEventCreate(&start));
    if (cudaEventCreate(&stop) != cudaSuccess) {
        cudaEventDestroy(start);
        return;
    }
    float best = 0.0f;
    for (int i = 0; i < found; ++i) {
        if (results[i].state != CUBLAS_STATUS_SUCCESS) continue;
        if (!trial(results[i].algo)) continue; // warm-up launch; false: this algorithm refused the operands
        cudaEventRecord(start, m_ctx->stream);
        bool ok = trial(results[i].algo) && trial(results[i].algo);
        cudaEventRecord(stop, m_ctx->stream);
        float ms = 0.0f;
        ok = ok && cudaEventSynchronize(stop) == cudaSuccess && cudaEventElapsedTime(&ms, start, stop) == cudaSuccess;
        if (ok && (best == 0.0f || ms < best)) {
            best = ms;
            plan.algo = results[i].algo;
        }
    }
    (void)cudaGetLastError();
    cudaEventDestroy(stop);
    cudaEventDestroy(start);
}

// The "TN" plan of acc^T (N, M), column-major = W (N, K) @ x^T (K, M): Lt's A is W, whose row-major bytes are
// the column-major (K, N) matrix, transposed; Lt's B is x, whose bytes are x^T (K, M) as they stand. It is the
// layout cuBLASLt's int8 and FP8 kernels take (the only one, for FP8).
std::unique_ptr<GemmEngine::LtPlan> GemmEngine::tnPlan(cublasComputeType_t compute, cudaDataType_t scaleType,
                                                       cudaDataType_t operands, cudaDataType_t out, std::int64_t m,
                                                       std::int64_t n, std::int64_t k) {
    auto plan = std::make_unique<LtPlan>();
    LATHE_CUBLAS_CHECK(cublasLtMatmulDescCreate(&plan->desc, compute, scaleType));
    const cublasOperation_t opA = CUBLAS_OP_T, opB = CUBLAS_OP_N;
    LATHE_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_TRANSA, &opA, sizeof opA));
    LATHE_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_TRANSB, &opB, sizeof opB));
    LATHE_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->layoutA, operands, k, n, k)); // W as (K, N)
    LATHE_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->layoutB, operands, k, m, k)); // x^T (K, M)
    LATHE_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->layoutC, out, n, m, n));      // acc^T (N, M)
    return plan;
}

bool GemmEngine::runInt8(std::int64_t m, std::int64_t n, std::int64_t k, const void* x, const void* w, void* acc) {
    if (m == 0 || n == 0) return true;
    const std::uint32_t align = std::min({alignmentOf(x), alignmentOf(w), alignmentOf(acc)});
    if (k == 0 || k % 4 != 0 || align < 4) return false;
    const PlanKey key{static_cast<int>(DType::I8), static_cast<int>(Trans::No), static_cast<int>(Trans::Yes), m, n, k,
                      k, k, n, static_cast<int>(align)};
    auto it = m_plans.find(key);
    if (it == m_plans.end()) {
        auto plan = tnPlan(CUBLAS_COMPUTE_32I, CUDA_R_32I, CUDA_R_8I, CUDA_R_32I, m, n, k);
        ensureWorkspace();
        const std::int32_t one = 1, zero = 0;
        LtPlan* p = plan.get();
        pickAlgo(*plan, align, /*f32Reduction=*/false, isLarge(m, n, k) ? Trial([&](const cublasLtMatmulAlgo_t& algo) {
            return cublasLtMatmul(m_lt, p->desc, &one, w, p->layoutA, x, p->layoutB, &zero, acc, p->layoutC, acc,
                                  p->layoutC, &algo, m_ltWorkspace, m_ltWorkspaceBytes, m_ctx->stream) ==
                   CUBLAS_STATUS_SUCCESS;
        }) : Trial());
        it = m_plans.emplace(key, std::move(plan)).first;
    }
    LtPlan& plan = *it->second;
    if (!plan.haveAlgo) return false;
    ensureWorkspace();
    const std::int32_t alpha = 1, beta = 0; // CUBLAS_COMPUTE_32I scales in int32
    LATHE_CUBLAS_CHECK(cublasLtMatmul(m_lt, plan.desc, &alpha, w, plan.layoutA, x, plan.layoutB, &beta, acc,
                                      plan.layoutC, acc, plan.layoutC, &plan.algo, m_ltWorkspace, m_ltWorkspaceBytes,
                                      m_ctx->stream));
    return true;
}

bool GemmEngine::runFp8(std::int64_t m, std::int64_t n, std::int64_t k, const void* x, const void* w,
                        const float* xScale, float* acc) {
    if (m == 0 || n == 0) return true;
    const std::uint32_t align = std::min({alignmentOf(x), alignmentOf(w), alignmentOf(acc)});
    if (k == 0 || k % 16 != 0 || align < 16) return false;
    // The plan key's dtype slot keeps FP8 plans apart from runLt's and the epilogues'.
    const PlanKey key{2000, static_cast<int>(Trans::No), static_cast<int>(Trans::Yes), m, n, k, k, k, n,
                      static_cast<int>(align)};
    auto it = m_plans.find(key);
    if (it == m_plans.end()) {
        // E4M3 x E4M3 with f32 sums into f32. x's scale is Lt's B scale; W's per-channel scales come after.
        auto plan = tnPlan(CUBLAS_COMPUTE_32F, CUDA_R_32F, CUDA_R_8F_E4M3, CUDA_R_32F, m, n, k);
        LATHE_CUBLAS_CHECK(
            cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &xScale, sizeof xScale));
        ensureWorkspace();
        pickAlgo(*plan, align, /*f32Reduction=*/false, Trial());
        it = m_plans.emplace(key, std::move(plan)).first;
    }
    LtPlan& plan = *it->second;
    if (!plan.haveAlgo) return false;
    // The plan is shared by every call of this shape; the scale is this call's.
    LATHE_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &xScale, sizeof xScale));
    ensureWorkspace();
    launchF32Scaled(m_lt, plan, w, x, acc, m_ltWorkspace, m_ltWorkspaceBytes, m_ctx->stream);
    return true;
}

bool GemmEngine::runF32Epilogue(std::int64_t m, std::int64_t n, std::int64_t k, const float* x, const float* w,
                                const float* bias, bool relu, float* y) {
    if (m == 0 || n == 0) return true;
    if (k == 0) return false; // no products to run
    std::uint32_t align = std::min({alignmentOf(x), alignmentOf(w), alignmentOf(y)});
    if (bias) align = std::min(align, alignmentOf(bias));
    const cublasLtEpilogue_t epilogue = bias ? (relu ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_BIAS)
                                             : (relu ? CUBLASLT_EPILOGUE_RELU : CUBLASLT_EPILOGUE_DEFAULT);
    // The plan key's dtype slot tells the epilogues apart from each other and from runLt's plans.
    const PlanKey key{1000 + static_cast<int>(epilogue), static_cast<int>(Trans::No), static_cast<int>(Trans::Yes),
                      m, n, k, k, k, n, static_cast<int>(align)};
    auto it = m_plans.find(key);
    if (it == m_plans.end()) {
        // y^T (N, M) in tnPlan's layout. The bias runs along Lt's rows, which are y's columns: one value per
        // output feature.
        auto plan = tnPlan(m_tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F, CUDA_R_32F, CUDA_R_32F,
                           CUDA_R_32F, m, n, k);
        LATHE_CUBLAS_CHECK(
            cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof epilogue));
        // The heuristic is asked with a bias pointer of the alignment it will see.
        if (bias)
            LATHE_CUBLAS_CHECK(
                cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias));
        pickAlgo(*plan, align, /*f32Reduction=*/false, Trial());
        it = m_plans.emplace(key, std::move(plan)).first;
    }
    LtPlan& plan = *it->second;
    if (!plan.haveAlgo) return false;
    if (bias) // the plan is shared by every call of this shape; the bias is this call's
        LATHE_CUBLAS_CHECK(
            cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias));
    ensureWorkspace();
    launchF32Scaled(m_lt, plan, w, x, y, m_ltWorkspace, m_ltWorkspaceBytes, m_ctx->stream);
    return true;
}

void GemmEngine::runLt(DType dt, Trans ta, Trans tb, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
                       const void* a, std::int64_t lda, const void* b, std::int64_t ldb, float beta, void* c,
                       std::int64_t ldc) {
    const cudaDataType_t type = dt == DType::F16 ? CUDA_R_16F : CUDA_R_16BF;
    const std::uint32_t align = std::min({alignmentOf(a), alignmentOf(b), alignmentOf(c)});
    const PlanKey key{static_cast<int>(dt), static_cast<int>(ta), static_cast<int>(tb), m, n, k, lda, ldb, ldc,
                      static_cast<int>(align)};
    auto it = m_plans.find(key);
    if (it == m_plans.end()) {
        auto plan = std::make_unique<LtPlan>();
        LATHE_CUBLAS_CHECK(cublasLtMatmulDescCreate(&plan->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
        // The Lt "A" operand is our B and the Lt "B" operand is our A (see the file comment).
        const cublasOperation_t opA = opOf(tb), opB = opOf(ta);
        LATHE_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_TRANSA, &opA, sizeof opA));
        LATHE_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_TRANSB, &opB, sizeof opB));
        // Column-major shapes as stored: B is (N, K) or, transposed, (K, N); A is (K, M) or (M, K).
        const std::uint64_t aRows = tb == Trans::No ? n : k, aCols = tb == Trans::No ? k : n;
        const std::uint64_t bRows = ta == Trans::No ? k : m, bCols = ta == Trans::No ? m : k;
        LATHE_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->layoutA, type, aRows, aCols, ldb));
        LATHE_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->layoutB, type, bRows, bCols, lda));
        LATHE_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->layoutC, type, n, m, ldc));

        // Trials overwrite c: only where beta = 0 says c is not read.
        ensureWorkspace();
        LtPlan* p = plan.get();
        pickAlgo(*plan, align, /*f32Reduction=*/true,
                 beta == 0.0f && isLarge(m, n, k) ? Trial([&](const cublasLtMatmulAlgo_t& algo) {
                     return cublasLtMatmul(m_lt, p->desc, &alpha, b, p->layoutA, a, p->layoutB, &beta, c, p->layoutC, c,
                                           p->layoutC, &algo, m_ltWorkspace, m_ltWorkspaceBytes, m_ctx->stream) ==
                            CUBLAS_STATUS_SUCCESS;
                 }) : Trial());
        it = m_plans.emplace(key, std::move(plan)).first;
    }
    LtPlan& plan = *it->second;
    if (!plan.haveAlgo) {
        // No Lt kernel for this shape/alignment: cublasGemmEx with F32 accumulation computes the same.
        LATHE_CUBLAS_CHECK(cublasGemmEx(m_cublas, opOf(tb), opOf(ta), checkedInt(n, "N"), checkedInt(m, "M"),
                                        checkedInt(k, "K"), &alpha, b, type, checkedInt(ldb, "ldb"), a, type,
                                        checkedInt(lda, "lda"), &beta, c, type, checkedInt(ldc, "ldc"),
                                        CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
        return;
    }
    ensureWorkspace();
    LATHE_CUBLAS_CHECK(cublasLtMatmul(m_lt, plan.desc, &alpha, b, plan.layoutA, a, plan.layoutB, &beta, c,
                                      plan.layoutC, c, plan.layoutC, &plan.algo, m_ltWorkspace, m_ltWorkspaceBytes,
                                      m_ctx->stream));
}

} // namespace lathe::cuda
