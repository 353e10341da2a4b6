// The CPU transformer ops against naive double-precision references written here: attention forward (fused
// QKV layout, causal, key lengths including an empty sequence, a decoding step over a preallocated cache
// longer than the keys in use), its backward against central finite differences, mean pooling and L2
// normalisation (values and gradients), and the argument checks.
#include "engine/backends/registry.h"
#include "engine/core/errors.h"
#include "tests/nn/gradcheck_util.h"
#include "tests/support/test_support.h"

#include <QtTest>

#include <cmath>
#include <limits>

using namespace lathe;
using namespace lathe::test;

namespace {

struct Case {
    std::int64_t n, tq, tk, heads, dh;
    bool causal;
    std::vector<std::int32_t> lengths; // empty: none
    bool packed;                       // q, k, v one tensor (N, T, 3D)
    std::int64_t capacity = 0;         // k, v rows (>= tk); 0: tk
};

// The tensors of one case: packed (N, T, 3D) or separate q (N, Tq, D), k and v (N, capacity, D).
struct Inputs {
    Tensor q, k, v, lens;
    AttentionParams p;
};

Inputs makeInputs(Backend& be, const Case& c, std::uint64_t seed) {
    Inputs in;
    const std::int64_t d = c.heads * c.dh;
    in.p.heads = c.heads;
    in.p.headDim = c.dh;
    in.p.causal = c.causal;
    if (c.packed) {
        in.q = be.upload(randomVector(static_cast<std::size_t>(c.n * c.tq * 3 * d), seed, -1.5f, 1.5f), {c.n, c.tq, 3 * d});
        in.k = in.v = in.q;
        in.p.kOffset = d;
        in.p.vOffset = 2 * d;
    } else {
        const std::int64_t cap = c.capacity > 0 ? c.capacity : c.tk;
        in.q = be.upload(randomVector(static_cast<std::size_t>(c.n * c.tq * d), seed, -1.5f, 1.5f), {c.n, c.tq, d});
        in.k = be.upload(randomVector(static_cast<std::size_t>(c.n * cap * d), seed + 1, -1.5f, 1.5f), {c.n, cap, d});
        in.v = be.upload(randomVector(static_cast<std::size_t>(c.n * cap * d), seed + 2), {c.n, cap, d});
        in.p.keyLen = c.tk;
    }
    if (!c.lengths.empty()) in.lens = be.uploadI32(c.lengths, {c.n});
    return in;
}

// out (N, Tq, D) and lse (N, H, Tq) computed in double from the definitions.
void reference(Backend& be, const Case& c, const Inputs& in, std::vector<double>& out, std::vector<double>& lse) {
    const std::int64_t d = c.heads * c.dh;
    const auto q = be.downloadF32(in.q), k = be.downloadF32(in.k), v = be.downloadF32(in.v);
    const std::int64_t qs = in.q.dim(2), ks = in.k.dim(2), vs = in.v.dim(2), qr = in.q.dim(1), kr = in.k.dim(1);
    out.assign(static_cast<std::size_t>(c.n * c.tq * d), 0.0);
    lse.assign(static_cast<std::size_t>(c.n * c.heads * c.tq), -std::numeric_limits<double>::infinity());
    const double scale = 1.0 / std::sqrt(static_cast<double>(c.dh));
    for (std::int64_t n = 0; n < c.n; ++n) {
        const std::int64_t keys = c.lengths.empty() ? c.tk : c.lengths[static_cast<std::size_t>(n)];
        for (std::int64_t h = 0; h < c.heads; ++h)
            for (std::int64_t i = 0; i < c.tq; ++i) {
                std::vector<double> s;
                for (std::int64_t j = 0; j < c.tk; ++j) {
                    const bool visible = j < keys && (!c.causal || j <= c.tk - c.tq + i);
                    if (!visible) continue;
                    double dot = 0;
                    for (std::int64_t e = 0; e < c.dh; ++e)
                        dot += static_cast<double>(q[(n * qr + i) * qs + in.p.qOffset + h * c.dh + e]) *
                               k[(n * kr + j) * ks + in.p.kOffset + h * c.dh + e];
                    s.push_back(dot * scale);
                }
                if (s.empty()) continue;
                double m = s[0];
                for (double x : s) m = std::max(m, x);
                double sum = 0;
                for (double x : s) sum += std::exp(x - m);
                lse[static_cast<std::size_t>((n * c.heads + h) * c.tq + i)] = m + std::log(sum);
                std::size_t idx = 0;
                for (std::int64_t j = 0; j < c.tk; ++j) {
                    const bool visible = j < keys && (!c.causal || j <= c.tk - c.tq + i);
                    if (!visible) continue;
                    const double p = std::exp(s[idx++] - m) / sum;
                    for (std::int64_t e = 0; e < c.dh; ++e)
                        out[static_cast<std::size_t>((n * c.tq + i) * d + h * c.dh + e)] +=
                            p * v[(n * kr + j) * vs + in.p.vOffset + h * c.dh + e];
                }
            }
    }
}

std::vector<float> toFloat(const std::vector<double>& v) { return {v.begin(), v.end()}; }

const std::vector<std::pair<const char*, Case>>& cases() {
    static const std::vector<std::pair<const char*, Case>> kCases = {
        {"packed-bidirectional", {2, 5, 5, 2, 4, false, {}, true}},
        {"packed-causal", {2, 6, 6, 3, 4, true, {}, true}},
        {"packed-lengths", {3, 5, 5, 2, 3, false, {5, 2, 0}, true}},
        {"packed-causal-lengths", {2, 7, 7, 2, 5, true, {4, 7}, true}},
        {"separate-decode-step", {2, 1, 6, 2, 4, true, {}, false, 9}},
        {"separate-decode-block", {1, 3, 8, 4, 2, true, {}, false, 12}},
        {"separate-cross-lengths", {2, 4, 6, 1, 8, false, {6, 3}, false}},
    };
    return kCases;
}

} // namespace

class TestCpuAttention : public QObject {
    Q_OBJECT

private slots:
    void forwardMatchesReference_data() {
        QTest::addColumn<int>("index");
        for (std::size_t i = 0; i < cases().size(); ++i) QTest::newRow(cases()[i].first) << static_cast<int>(i);
    }
    // Tolerance 1e-5 (normalized): f32 scores and sums of at most 8 terms against double; observed ~1e-7.
    void forwardMatchesReference() {
        QFETCH(int, index);
        const Case& c = cases()[static_cast<std::size_t>(index)].second;
        Backend& be = *cpuBackend();
        Inputs in = makeInputs(be, c, 10 + static_cast<std::uint64_t>(index));
        Tensor out = be.empty({c.n, c.tq, c.heads * c.dh}), lse = be.empty({c.n, c.heads, c.tq});
        be.attentionForward(in.q, in.k, in.v, in.lens.defined() ? &in.lens : nullptr, out, lse, in.p);
        std::vector<double> refOut, refLse;
        reference(be, c, in, refOut, refLse);
        const auto got = be.downloadF32(out), gotLse = be.downloadF32(lse);
        QVERIFY2(normalizedError(got, toFloat(refOut)) < 1e-5,
                 qPrintable(QString("out: %1").arg(normalizedError(got, toFloat(refOut)))));
        for (std::size_t i = 0; i < refLse.size(); ++i) {
            if (std::isinf(refLse[i])) {
                QVERIFY(std::isinf(gotLse[i]) && gotLse[i] < 0);
            } else {
                QVERIFY2(std::abs(gotLse[i] - refLse[i]) < 1e-5 * std::max(1.0, std::abs(refLse[i])),
                         qPrintable(QString("lse %1: %2 vs %3").arg(i).arg(gotLse[i]).arg(refLse[i])));
            }
        }
        // An empty sequence attends to nothing: zeros.
        if (!c.lengths.empty() && c.lengths.back() == 0) {
            const std::int64_t d = c.heads * c.dh;
            for (std::int64_t i = (c.n - 1) * c.tq * d; i < c.n * c.tq * d; ++i) QCOMPARE(got[static_cast<std::size_t>(i)], 0.0f);
        }
    }

    void backwardMatchesFiniteDifferences_data() { forwardMatchesReference_data(); }
    // L = sum(out * r). Central differences with eps = 1e-2 on a smooth function of inputs in [-1.5, 1.5]:
    // truncation ~eps^2 |f'''| / 6 ~ 1e-5, float rounding of L / (2 eps) ~ 1e-5; 2e-3 is far above both and
    // far below a missing term (order 1).
    void backwardMatchesFiniteDifferences() {
        QFETCH(int, index);
        const Case& c = cases()[static_cast<std::size_t>(index)].second;
        Backend& be = *cpuBackend();
        Inputs in = makeInputs(be, c, 40 + static_cast<std::uint64_t>(index));
        const Tensor* lens = in.lens.defined() ? &in.lens : nullptr;
        Tensor out = be.empty({c.n, c.tq, c.heads * c.dh}), lse = be.empty({c.n, c.heads, c.tq});
        be.attentionForward(in.q, in.k, in.v, lens, out, lse, in.p);
        const auto r = randomVector(static_cast<std::size_t>(out.numel()), 77);
        Tensor dout = be.upload(r, out.shape());
        // Pre-filled gradients: the op must overwrite every column of its heads.
        Tensor dq = be.upload(randomVector(static_cast<std::size_t>(in.q.numel()), 5), in.q.shape());
        Tensor dk = c.packed ? dq : be.upload(randomVector(static_cast<std::size_t>(in.k.numel()), 6), in.k.shape());
        Tensor dv = c.packed ? dq : be.upload(randomVector(static_cast<std::size_t>(in.v.numel()), 7), in.v.shape());
        be.attentionBackward(dout, in.q, in.k, in.v, lens, out, lse, dq, dk, dv, in.p);
        auto objective = [&]() {
            Tensor o = be.empty(out.shape()), l = be.empty(lse.shape());
            be.attentionForward(in.q, in.k, in.v, lens, o, l, in.p);
            return dotDouble(be.downloadF32(o), r);
        };
        auto check = [&](Tensor& param, const Tensor& grad, const char* what, std::int64_t rowsUsed) {
            auto numeric = numericGradient(be, param, 1e-2, objective);
            auto analytic = be.downloadF32(grad);
            // Rows past the keys in use (a cache's free rows) are not the op's: neither read nor written.
            const std::int64_t rowLen = param.dim(2), rows = param.dim(1);
            std::vector<float> a, nu;
            for (std::int64_t n = 0; n < param.dim(0); ++n)
                for (std::int64_t t = 0; t < rowsUsed; ++t)
                    for (std::int64_t e = 0; e < rowLen; ++e) {
                        a.push_back(analytic[static_cast<std::size_t>((n * rows + t) * rowLen + e)]);
                        nu.push_back(numeric[static_cast<std::size_t>((n * rows + t) * rowLen + e)]);
                    }
            const double err = normalizedError(a, nu);
            QVERIFY2(err < 2e-3, qPrintable(QString("%1: normalized error %2").arg(what).arg(err)));
        };
        if (c.packed) {
            check(in.q, dq, "dqkv", c.tq);
        } else {
            check(in.q, dq, "dq", c.tq);
            check(in.k, dk, "dk", c.tk);
            check(in.v, dv, "dv", c.tk);
        }
    }

    void decodeStepsMatchFullSequence() {
        // Causal attention of a whole sequence equals, row by row, one query at a time over the keys so far:
        // the KV cache's arithmetic.
        Backend& be = *cpuBackend();
        const std::int64_t t = 6, heads = 2, dh = 4, d = heads * dh;
        Tensor qkv = be.upload(randomVector(static_cast<std::size_t>(t * 3 * d), 3), {1, t, 3 * d});
        AttentionParams p;
        p.heads = heads;
        p.headDim = dh;
        p.kOffset = d;
        p.vOffset = 2 * d;
        p.causal = true;
        Tensor full = be.empty({1, t, d}), lse = be.empty({1, heads, t});
        be.attentionForward(qkv, qkv, qkv, nullptr, full, lse, p);
        const auto fullV = be.downloadF32(full);
        const Tensor rows = qkv.view({t, 3 * d});
        for (std::int64_t i = 0; i < t; ++i) {
            AttentionParams step = p;
            step.queryLen = 1;
            step.keyLen = i + 1;
            Tensor q = rows.slice0(i, i + 1).view({1, 1, 3 * d});
            Tensor o = be.empty({1, 1, d}), l = be.empty({1, heads, 1});
            be.attentionForward(q, qkv, qkv, nullptr, o, l, step);
            const auto ov = be.downloadF32(o);
            for (std::int64_t e = 0; e < d; ++e)
                QVERIFY(std::abs(ov[static_cast<std::size_t>(e)] - fullV[static_cast<std::size_t>(i * d + e)]) < 1e-6f);
        }
    }

    void meanPoolAndNormalize() {
        Backend& be = *cpuBackend();
        const std::int64_t n = 3, t = 4, d = 5;
        const auto xv = randomVector(static_cast<std::size_t>(n * t * d), 9);
        Tensor x = be.upload(xv, {n, t, d});
        Tensor lens = be.uploadI32({4, 2, 0}, {n});
        Tensor y = be.empty({n, d});
        be.meanPoolForward(x, &lens, y);
        const auto yv = be.downloadF32(y);
        const int lv[] = {4, 2, 0};
        for (std::int64_t b = 0; b < n; ++b)
            for (std::int64_t c = 0; c < d; ++c) {
                double s = 0;
                for (int i = 0; i < lv[b]; ++i) s += xv[static_cast<std::size_t>((b * t + i) * d + c)];
                const double want = lv[b] ? s / lv[b] : 0.0;
                QVERIFY(std::abs(yv[static_cast<std::size_t>(b * d + c)] - want) < 1e-6);
            }
        const auto r = randomVector(static_cast<std::size_t>(n * d), 4);
        Tensor dx = be.empty({n, t, d});
        be.meanPoolBackward(be.upload(r, {n, d}), &lens, dx);
        auto objective = [&]() {
            Tensor o = be.empty({n, d});
            be.meanPoolForward(x, &lens, o);
            return dotDouble(be.downloadF32(o), r);
        };
        QVERIFY(normalizedError(be.downloadF32(dx), numericGradient(be, x, 1e-2, objective)) < 1e-4);

        // L2 normalisation: unit rows, and the gradient (the clamped branch for a zero row).
        std::vector<float> zv = randomVector(static_cast<std::size_t>(n * d), 12);
        std::fill_n(zv.begin() + 2 * d, d, 0.0f);
        Tensor z = be.upload(zv, {n, d}), u = be.empty({n, d}), norm = be.empty({n});
        be.l2NormalizeForward(z, u, norm, 1e-12f);
        const auto uv = be.downloadF32(u);
        for (std::int64_t b = 0; b < 2; ++b) {
            double s = 0;
            for (std::int64_t c = 0; c < d; ++c) s += uv[static_cast<std::size_t>(b * d + c)] * uv[static_cast<std::size_t>(b * d + c)];
            QVERIFY(std::abs(s - 1.0) < 1e-6);
        }
        for (std::int64_t c = 0; c < d; ++c) QCOMPARE(uv[static_cast<std::size_t>(2 * d + c)], 0.0f);
        Tensor zSmooth = be.upload(randomVector(static_cast<std::size_t>(n * d), 13), {n, d});
        be.l2NormalizeForward(zSmooth, u, norm, 1e-12f);
        Tensor dz = be.empty({n, d});
        be.l2NormalizeBackward(be.upload(r, {n, d}), u, norm, dz, 1e-12f);
        auto obj2 = [&]() {
            Tensor o = be.empty({n, d}), nn = be.empty({n});
            be.l2NormalizeForward(zSmooth, o, nn, 1e-12f);
            return dotDouble(be.downloadF32(o), r);
        };
        const double err = normalizedError(be.downloadF32(dz), numericGradient(be, zSmooth, 1e-3, obj2));
        QVERIFY2(err < 2e-3, qPrintable(QString("l2 normalize: %1").arg(err)));
    }

    void badArgumentsAreRefused() {
        Backend& be = *cpuBackend();
        Tensor qkv = be.zeros({2, 4, 12});
        Tensor out = be.empty({2, 4, 4}), lse = be.empty({2, 2, 4});
        AttentionParams p;
        p.heads = 2;
        p.headDim = 2;
        p.kOffset = 4;
        p.vOffset = 10; // columns [10, 14) pass the row of 12
        QVERIFY(errorOf<BackendError>([&] { be.attentionForward(qkv, qkv, qkv, nullptr, out, lse, p); })
                    .find("do not fit") != std::string::npos);
        p.vOffset = 8;
        Tensor badLens = be.uploadI32({1, 2, 3}, {3});
        QVERIFY(errorOf<BackendError>([&] { be.attentionForward(qkv, qkv, qkv, &badLens, out, lse, p); })
                    .find("key_lengths") != std::string::npos);
        p.queryLen = 4;
        p.keyLen = 2;
        p.causal = true;
        Tensor k = be.zeros({2, 2, 12});
        QVERIFY(errorOf<BackendError>([&] { be.attentionForward(qkv, k, k, nullptr, out, lse, p); })
                    .find("causal") != std::string::npos);
    }
};

QTEST_GUILESS_MAIN(TestCpuAttention)
#include "test_cpu_attention.moc"
