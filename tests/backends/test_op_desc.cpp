// Op descriptors: how they read, how a table finds them, and the CPU backend's table (what it claims
// it runs, that it runs it, and that it names the descriptor it refuses).
#include "engine/backends/cpu/cpu_backend.h"
#include "engine/backends/op_desc.h"
#include "engine/core/errors.h"
#include "tests/support/test_support.h"

#include <QtTest>

#include <algorithm>

using namespace lathe;

Q_DECLARE_METATYPE(lathe::OpDesc)

class TestOpDesc : public QObject {
    Q_OBJECT

private slots:
    void readsAsTheOp_data() {
        QTest::addColumn<OpDesc>("desc");
        QTest::addColumn<QString>("text");
        QTest::newRow("w8a8") << OpDesc::gemm(DType::I8, DType::I8, DType::F32, DType::I32)
                              << "gemm i8 x i8 -> i32 (dequant f32)";
        QTest::newRow("int8 to int32") << OpDesc::gemm(DType::I8, DType::I8, DType::I32, DType::I32)
                                       << "gemm i8 x i8 -> i32";
        QTest::newRow("f16") << OpDesc::uniform(Op::Gemm, DType::F16) << "gemm f16 x f16 -> f16 (acc f32)";
        QTest::newRow("f32") << OpDesc::uniform(Op::Gemm, DType::F32) << "gemm f32 x f32 -> f32";
        QTest::newRow("weight-only int4")
            << OpDesc::gemm(DType::F16, DType::Q4_0, DType::F16, DType::F32, OpLayout::BlockQuantizedWeights)
            << "gemm f16 x q4_0 -> f16 (acc f32) [block-quantized weights]";
        QTest::newRow("2:4") << OpDesc::gemm(DType::F16, DType::F16, DType::F16, DType::F32, OpLayout::Sparse24)
                             << "gemm f16 x f16 -> f16 (acc f32) [2:4 sparse weights]";
        QTest::newRow("csr") << OpDesc::uniform(Op::SpmmCsr, DType::F32)
                             << "spmm_csr f32 x f32 -> f32 [csr sparse weights]";
        QTest::newRow("spmm 2:4") << OpDesc::uniform(Op::Spmm24, DType::F32)
                                  << "spmm_24 f32 x f32 -> f32 [2:4 sparse weights]";
        QTest::newRow("convert") << OpDesc::convert(DType::F32, DType::NF4) << "convert f32 -> nf4";
        QTest::newRow("fill") << OpDesc::uniform(Op::Fill, DType::F8E4M3) << "fill -> f8e4m3";
        QTest::newRow("argmax") << OpDesc::uniform(Op::ArgmaxRows, DType::BF16) << "argmax_rows bf16 -> i32";
        QTest::newRow("cross-entropy") << OpDesc::uniform(Op::SoftmaxCrossEntropy, DType::F32)
                                       << "softmax_cross_entropy f32 x i32 -> f32";
        QTest::newRow("embedding") << OpDesc::uniform(Op::EmbeddingForward, DType::F32)
                                   << "embedding_forward i32 x f32 -> f32";
        QTest::newRow("layernorm") << OpDesc::uniform(Op::LayerNormForward, DType::F32)
                                   << "layernorm_forward f32 x f32 x f32 -> f32";
    }
    void readsAsTheOp() {
        QFETCH(OpDesc, desc);
        QFETCH(QString, text);
        QCOMPARE(QString::fromStdString(desc.toString()), text);
    }

    void equalityCoversEveryField() {
        const OpDesc base = OpDesc::gemm(DType::I8, DType::I8, DType::F32, DType::I32);
        QVERIFY(base == OpDesc::gemm(DType::I8, DType::I8, DType::F32, DType::I32));
        QVERIFY(!(base == OpDesc::gemm(DType::I8, DType::U8, DType::F32, DType::I32)));
        QVERIFY(!(base == OpDesc::gemm(DType::I8, DType::I8, DType::I32, DType::I32)));
        QVERIFY(!(base == OpDesc::gemm(DType::I8, DType::I8, DType::F32, DType::F32)));
        QVERIFY(!(base == OpDesc::gemm(DType::I8, DType::I8, DType::F32, DType::I32, OpLayout::Sparse24)));
        QVERIFY(!(base == OpDesc::gemm(DType::I8, DType::I8, DType::F32, DType::I32, OpLayout::Csr)));
        QVERIFY(!(base == OpDesc(Op::Conv2dForward, {DType::I8, DType::I8}, DType::F32, DType::I32)));
        QVERIFY(!(OpDesc(Op::Add, {DType::F32}, DType::F32) == OpDesc(Op::Add, {DType::F32, DType::F32}, DType::F32)));
        QVERIFY_THROWS_EXCEPTION(BackendError,
                                 OpDesc(Op::Add, {DType::F32, DType::F32, DType::F32, DType::F32}, DType::F32));
    }

    void tableFindsWhatWasAdded() {
        OpTable t;
        t.add(OpDesc::uniform(Op::Gemm, DType::F32));
        t.add(OpDesc::uniform(Op::Gemm, DType::F32)); // no duplicates
        t.addUniform({Op::Add, Op::Mul}, {DType::F16, DType::BF16});
        QCOMPARE(t.all().size(), std::size_t{5});
        QVERIFY(t.contains(OpDesc::uniform(Op::Mul, DType::BF16)));
        QVERIFY(!t.contains(OpDesc::uniform(Op::Mul, DType::F32)));
        QVERIFY(!t.contains(OpDesc::gemm(DType::F32, DType::F32, DType::F32, DType::F16)));
        QVERIFY(!t.contains(OpDesc{}));
        QCOMPARE(t.all().front().op, Op::Gemm); // grouped in op order
    }

    void cpuRunsWhatItClaims() {
        // Every convert the CPU claims runs on a real tensor of whole blocks, and every block format
        // is claimed: the table is the implementation's list, not a wish list.
        auto be = makeCpuBackend(1);
        int converts = 0;
        for (const OpDesc& d : be->supportedOps()) {
            QVERIFY2(be->supports(d), d.toString().c_str());
            if (d.op != Op::Convert) continue;
            const Shape shape{2, 64};
            Tensor src = be->empty(shape, d.inputs[0]), dst = be->empty(shape, d.output);
            be->fill(src, 3.0f);
            be->convert(src, dst);
            const auto values = be->downloadF32(dst);
            QVERIFY2(values.front() != 0.0f, d.toString().c_str());
            ++converts;
        }
        QCOMPARE(converts, int(kDTypeCount * kDTypeCount));
    }

    void cpuNamesTheDescriptorItRefuses() {
        auto be = makeCpuBackend(1);
        Tensor a = be->zeros({4, 32}, DType::I8), b = be->zeros({32, 4}, DType::I8), c = be->zeros({4, 4});
        QCOMPARE(QString::fromStdString(
                     test::errorOf<BackendError>([&] { be->gemm(a, Trans::No, b, Trans::No, c, 1.0f, 0.0f); })),
                 QString("cpu does not support gemm i8 x i8 -> f32"));
        Tensor q = be->zeros({4, 32}, DType::Q4_0), x = be->zeros({4, 4});
        Tensor w = be->zeros({4, 32});
        QCOMPARE(QString::fromStdString(
                     test::errorOf<BackendError>([&] { be->gemm(w, Trans::No, q, Trans::Yes, x, 1.0f, 0.0f); })),
                 QString("cpu does not support gemm f32 x q4_0 -> f32"));
        Tensor h = be->zeros({8}, DType::F16), h2 = be->zeros({8}, DType::F16);
        QCOMPARE(QString::fromStdString(test::errorOf<BackendError>([&] { be->relu(h, h2); })),
                 QString("cpu does not support relu f16 -> f16"));
    }
};

QTEST_GUILESS_MAIN(TestOpDesc)
#include "test_op_desc.moc"
