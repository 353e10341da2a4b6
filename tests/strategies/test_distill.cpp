// Knowledge distillation: the backend's distillation loss against a direct double-precision formula and
// its gradient against finite differences; alpha = 0 at T = 1 is cross-entropy bit for bit (the op, and
// whole training runs); the teacher's weights never change; cached and per-batch teacher logits train
// the same student up to float rounding; distill.logits stores the distilled and the scratch student, trained on the same
// batches in the same order; feature matching's gradient against finite differences, and beta = 0 adds
// nothing; validation refuses a bad temperature, alpha, student or matched layer with the field's pointer.
#include "engine/core/errors.h"
#include "engine/core/rng.h"
#include "engine/experiment/spec.h"
#include "engine/strategies/distill/distillation_loss.h"
#include "tests/strategies/strategy_fixture.h"

#include <QTemporaryDir>
#include <QtTest>

#include <cmath>
#include <cstring>
#include <fstream>

using namespace lathe;
using json = nlohmann::json;
using lathe::test::ContextFixture;
using lathe::test::experimentWith;

namespace {

Backend& cpu() { return *cpuBackend(); }

std::vector<float> randomValues(std::size_t n, std::uint64_t seed, float lo, float hi) {
    Rng rng(seed);
    std::vector<float> v(n);
    for (auto& x : v) x = lo + (hi - lo) * static_cast<float>(rng.uniform());
    return v;
}

Tensor upload(const std::vector<float>& v, const Shape& s) {
    Tensor t = cpu().empty(s);
    cpu().copyFromHost(t, v.data());
    return t;
}

// The distillation loss of one row in double precision, straight from its definition.
double referenceLoss(const double* s, const double* t, int c, int label, double T, double alpha) {
    auto logSoftmax = [c](const double* x, double scale, std::vector<double>& out) {
        double mx = -1e300;
        for (int j = 0; j < c; ++j) mx = std::max(mx, x[j] * scale);
        double sum = 0;
        for (int j = 0; j < c; ++j) sum += std::exp(x[j] * scale - mx);
        out.resize(static_cast<std::size_t>(c));
        for (int j = 0; j < c; ++j) out[static_cast<std::size_t>(j)] = x[j] * scale - mx - std::log(sum);
    };
    std::vector<double> lq, lp, ls;
    logSoftmax(s, 1.0 / T, lq);
    logSoftmax(t, 1.0 / T, lp);
    logSoftmax(s, 1.0, ls);
    double kl = 0;
    for (int j = 0; j < c; ++j) kl += std::exp(lp[static_cast<std::size_t>(j)]) * (lp[static_cast<std::size_t>(j)] - lq[static_cast<std::size_t>(j)]);
    return alpha * T * T * kl + (1 - alpha) * -ls[static_cast<std::size_t>(label)];
}

std::vector<std::vector<float>> parametersOf(Model& m) {
    std::vector<std::vector<float>> out;
    for (const auto& np : m.namedParameters()) out.push_back(cpu().downloadF32(np.param->value));
    return out;
}

std::unique_ptr<Model> zooModel(const std::string& name, std::uint64_t seed) {
    auto m = Model::fromArchitecture(zooArchitecture(name));
    m->initialize(cpu(), seed);
    return m;
}

TrainParams shortTraining() {
    TrainParams p;
    p.epochs = 2;
    p.batchSize = 32;
    p.seed = 7;
    p.logInterval = 3;
    return p;
}

std::vector<ValidationIssue> validate(const json& doc, const QString& folder = {}) {
    return folder.isEmpty() ? validateExperiment(doc)
                            : validateExperiment(doc, (folder + "/kd.json").toStdString());
}

QString issuesText(const std::vector<ValidationIssue>& issues) {
    QString s;
    for (const auto& i : issues) s += QString::fromStdString(i.pointer + ": " + i.message + "\n");
    return s;
}

bool hasIssue(const std::vector<ValidationIssue>& issues, const std::string& pointer, const std::string& part) {
    for (const auto& i : issues)
        if (i.pointer == pointer && i.message.find(part) != std::string::npos) return true;
    return false;
}

} // namespace

class TestDistill : public QObject {
    Q_OBJECT

private slots:
    void lossMatchesFormulaAndFiniteDifferences_data() {
        QTest::addColumn<double>("temperature");
        QTest::addColumn<double>("alpha");
        QTest::newRow("T1 a0.5") << 1.0 << 0.5;
        QTest::newRow("T2 a0.9") << 2.0 << 0.9;
        QTest::newRow("T4 a1") << 4.0 << 1.0;
        QTest::newRow("T8 a0.3") << 8.0 << 0.3;
        QTest::newRow("T4 a0") << 4.0 << 0.0;
    }

    void lossMatchesFormulaAndFiniteDifferences() {
        QFETCH(double, temperature);
        QFETCH(double, alpha);
        constexpr int n = 6, c = 10;
        const auto s = randomValues(n * c, 1, -6, 6), t = randomValues(n * c, 2, -8, 8);
        std::vector<std::int32_t> lab(n);
        for (int r = 0; r < n; ++r) lab[static_cast<std::size_t>(r)] = (r * 7 + 3) % c;
        Tensor labels = cpu().empty({n}, DType::I32);
        cpu().copyFromHost(labels, lab.data());
        Tensor losses = cpu().empty({n}), parts = cpu().empty({n, 2}), d = cpu().empty({n, c});
        const float gradScale = 1.0f / n;
        cpu().distillationLoss(upload(s, {n, c}), upload(t, {n, c}), labels, static_cast<float>(temperature),
                               static_cast<float>(alpha), losses, parts, d, gradScale);
        const auto gotLoss = cpu().downloadF32(losses), gotParts = cpu().downloadF32(parts), gotD = cpu().downloadF32(d);

        // Loss against the definition (float arithmetic inside the op: relative 1e-5).
        std::vector<double> sd(s.begin(), s.end()), td(t.begin(), t.end());
        for (int r = 0; r < n; ++r) {
            const double want = referenceLoss(&sd[r * c], &td[r * c], c, lab[static_cast<std::size_t>(r)], temperature, alpha);
            QVERIFY2(std::fabs(gotLoss[static_cast<std::size_t>(r)] - want) <= 1e-5 * std::max(1.0, std::fabs(want)),
                     qPrintable(QString("row %1: %2 vs %3").arg(r).arg(gotLoss[static_cast<std::size_t>(r)]).arg(want)));
            const double soft = referenceLoss(&sd[r * c], &td[r * c], c, 0, temperature, 1.0);
            const double hard = referenceLoss(&sd[r * c], &td[r * c], c, lab[static_cast<std::size_t>(r)], temperature, 0.0);
            QVERIFY(std::fabs(gotParts[static_cast<std::size_t>(2 * r)] - soft) <= 1e-5 * std::max(1.0, soft));
            QVERIFY(std::fabs(gotParts[static_cast<std::size_t>(2 * r + 1)] - hard) <= 1e-5 * std::max(1.0, hard));
        }
        // Gradient of gradScale * sum(losses) against central differences of the double formula
        // (h = 1e-4: truncation ~1e-8, far below the 2e-6 tolerance on gradients of size ~0.1).
        constexpr double h = 1e-4;
        for (int r = 0; r < n; ++r)
            for (int j = 0; j < c; ++j) {
                std::vector<double> plus(sd.begin() + r * c, sd.begin() + (r + 1) * c), minus = plus;
                plus[static_cast<std::size_t>(j)] += h;
                minus[static_cast<std::size_t>(j)] -= h;
                const int l = lab[static_cast<std::size_t>(r)];
                const double fd = gradScale * (referenceLoss(plus.data(), &td[r * c], c, l, temperature, alpha) -
                                               referenceLoss(minus.data(), &td[r * c], c, l, temperature, alpha)) / (2 * h);
                const float got = gotD[static_cast<std::size_t>(r * c + j)];
                QVERIFY2(std::fabs(got - fd) <= 2e-6, qPrintable(QString("d[%1,%2] = %3, finite differences %4")
                                                                    .arg(r).arg(j).arg(got).arg(fd)));
            }
    }

    void opRefusesBadArguments() {
        const Tensor s = upload(randomValues(20, 20, -1, 1), {2, 10}), t = upload(randomValues(20, 21, -1, 1), {2, 10});
        Tensor labels = cpu().empty({2}, DType::I32), losses = cpu().empty({2}), parts = cpu().empty({2, 2});
        Tensor d = cpu().empty({2, 10});
        const std::int32_t good[2] = {0, 9}, bad[2] = {0, 10};
        cpu().copyFromHost(labels, good);
        auto message = [&](float temperature, float alpha, const Tensor& teacher) -> std::string {
            try {
                cpu().distillationLoss(s, teacher, labels, temperature, alpha, losses, parts, d, 0.5f);
            } catch (const BackendError& e) {
                return e.what();
            }
            return {};
        };
        QVERIFY(message(2.0f, 0.5f, t).empty());
        QVERIFY(message(0.0f, 0.5f, t).find("temperature 0.000000 is not > 0") != std::string::npos);
        QVERIFY(message(2.0f, 1.5f, t).find("alpha 1.500000 is outside [0, 1]") != std::string::npos);
        QVERIFY(message(2.0f, 0.5f, upload(randomValues(18, 22, -1, 1), {2, 9})).find("teacher") != std::string::npos);
        cpu().copyFromHost(labels, bad);
        QVERIFY(message(2.0f, 0.5f, t).find("label 10 at row 1") != std::string::npos);
    }

    void alphaZeroIsCrossEntropyBitForBit() {
        // The op: alpha = 0 at T = 1 writes softmaxCrossEntropy's losses and gradient exactly.
        constexpr int n = 33, c = 10;
        const Tensor s = upload(randomValues(n * c, 3, -9, 9), {n, c}), t = upload(randomValues(n * c, 4, -9, 9), {n, c});
        std::vector<std::int32_t> lab(n);
        for (int r = 0; r < n; ++r) lab[static_cast<std::size_t>(r)] = r % c;
        Tensor labels = cpu().empty({n}, DType::I32);
        cpu().copyFromHost(labels, lab.data());
        Tensor l1 = cpu().empty({n}), d1 = cpu().empty({n, c}), l2 = cpu().empty({n}), d2 = cpu().empty({n, c});
        Tensor parts = cpu().empty({n, 2});
        cpu().softmaxCrossEntropy(s, labels, l1, d1, 1.0f / n);
        cpu().distillationLoss(s, t, labels, 1.0f, 0.0f, l2, parts, d2, 1.0f / n);
        QCOMPARE(std::memcmp(l1.data(), l2.data(), l1.bytes()), 0);
        QCOMPARE(std::memcmp(d1.data(), d2.data(), d1.bytes()), 0);

        // Whole training: the same student trained with cross-entropy and with the distillation loss at
        // alpha = 0, T = 1 ends with identical weights.
        const DatasetSplits data{test::bands(200, 5), test::bands(40, 6)};
        auto teacher = zooModel("mlp-784-256-128-10", 1);
        auto a = zooModel("mlp-784-64-10", 2), b = zooModel("mlp-784-64-10", 2);
        train(*a, cpu(), data.train, shortTraining());
        DistillationLoss kd(*teacher, *b, cpu(), data.train, data.train.size(), {1.0f, 0.0f, TeacherTargets::Cached}, 96);
        OptimizerState state;
        train(*b, cpu(), data.train, shortTraining(), {}, kd, state);
        QVERIFY(parametersOf(*a) == parametersOf(*b));
    }

    void teacherUnchangedAndTargetsAgree() {
        // The teacher is only read; cached logits and a teacher forward per batch train the same student.
        const DatasetSplits data{test::bands(200, 7), test::bands(40, 8)};
        auto teacher = zooModel("cnn-2conv", 3); // has dropout: inference mode must not apply it
        const auto before = parametersOf(*teacher);
        auto a = zooModel("mlp-784-32-10", 4), b = zooModel("mlp-784-32-10", 4);
        OptimizerState sa, sb;
        DistillationLoss cached(*teacher, *a, cpu(), data.train, data.train.size(), {4.0f, 0.7f, TeacherTargets::Cached}, 96);
        train(*a, cpu(), data.train, shortTraining(), {}, cached, sa);
        DistillationLoss perBatch(*teacher, *b, cpu(), data.train, data.train.size(), {4.0f, 0.7f, TeacherTargets::OnTheFly}, 96);
        train(*b, cpu(), data.train, shortTraining(), {}, perBatch, sb);
        QVERIFY(parametersOf(*teacher) == before);
        const auto pa = parametersOf(*a), pb = parametersOf(*b);
        double worst = 0;
        for (std::size_t i = 0; i < pa.size(); ++i)
            for (std::size_t j = 0; j < pa[i].size(); ++j) worst = std::max(worst, double(std::fabs(pa[i][j] - pb[i][j])));
        // Not bit for bit: the teacher's GEMMs round differently for a cache batch of 256 rows than for a
        // training batch of 32 (1.5e-8 measured after these 2 epochs).
        QVERIFY2(worst <= 1e-6, qPrintable(QString("largest weight difference %1").arg(worst)));
        const auto parts = perBatch.takeIntervalParts(cpu());
        QVERIFY(parts.rows > 0);
        QVERIFY(parts.soft > 0 && parts.hard > 0);
    }

    void featureGradientMatchesFiniteDifferences() {
        // The feature part's gradient for the student feature against central differences of the loss
        // (the projection frozen: lr 0, so every call sees the same P).
        const DatasetSplits data{test::bands(8, 9), test::bands(8, 10)};
        auto teacher = zooModel("mlp-784-256-128-10", 5), student = zooModel("mlp-784-64-10", 6);
        DistillationSettings s{2.0f, 0.5f, TeacherTargets::OnTheFly, FeatureMatch{2, 4, 3.0f, 0.0f, 1}};
        DistillationLoss loss(*teacher, *student, cpu(), data.train, 8, s, 64);
        QCOMPARE(loss.featureLayer(), 2);
        constexpr int n = 4, ds = 64;
        std::vector<std::int64_t> idx{0, 1, 2, 3};
        std::vector<float> xHost(static_cast<std::size_t>(n * 784));
        std::vector<std::int32_t> yHost(n);
        makeBatch(data.train, idx, student->preprocess(), xHost.data(), yHost.data());
        const Tensor x = upload(xHost, {n, 1, 28, 28});
        Tensor labels = cpu().empty({n}, DType::I32);
        cpu().copyFromHost(labels, yHost.data());
        const Tensor logits = upload(randomValues(n * 10, 11, -3, 3), {n, 10});
        auto lossAt = [&](const std::vector<float>& feature, std::vector<float>* grad) {
            Tensor f = upload(feature, {n, ds}), df, losses = cpu().empty({n}), d = cpu().empty({n, 10});
            loss.compute(cpu(), logits, LossBatch{x, labels, 1, idx, &f, &df}, losses, d, 1.0f / n);
            if (grad) *grad = cpu().downloadF32(df);
            double sum = 0;
            for (const float v : cpu().downloadF32(losses)) sum += v;
            return sum / n;
        };
        const auto feature = randomValues(n * ds, 12, 0, 2);
        std::vector<float> grad;
        lossAt(feature, &grad);
        QCOMPARE(grad.size(), feature.size());
        const float h = 1e-2f; // float losses: a wide step keeps rounding (~1e-7 relative) below the tolerance
        double worst = 0;
        for (std::size_t i = 0; i < feature.size(); i += 7) {
            auto plus = feature, minus = feature;
            plus[i] += h;
            minus[i] -= h;
            const double fd = (lossAt(plus, nullptr) - lossAt(minus, nullptr)) / (2 * h);
            worst = std::max(worst, std::fabs(fd - grad[i]));
        }
        double largest = 0;
        for (const float g : grad) largest = std::max(largest, double(std::fabs(g)));
        // measured: largest gradient 0.034, largest error 6.6e-6
        QVERIFY2(worst <= 1e-3 * largest, qPrintable(QString("largest gradient error %1 of %2").arg(worst).arg(largest)));
        const auto parts = loss.takeIntervalParts(cpu());
        QVERIFY(parts.feature > 0);
    }

    void zeroFeatureWeightChangesNothing() {
        // beta = 0: the feature path runs (projection, gradient into the model) but adds exactly nothing,
        // so training equals logit distillation computed per batch, bit for bit.
        const DatasetSplits data{test::bands(200, 13), test::bands(40, 14)};
        auto teacher = zooModel("mlp-784-256-128-10", 7);
        auto a = zooModel("mlp-784-64-10", 8), b = zooModel("mlp-784-64-10", 8);
        OptimizerState sa, sb;
        DistillationLoss plain(*teacher, *a, cpu(), data.train, 200, {4.0f, 0.7f, TeacherTargets::OnTheFly, std::nullopt}, 96);
        train(*a, cpu(), data.train, shortTraining(), {}, plain, sa);
        DistillationLoss features(*teacher, *b, cpu(), data.train, 200,
                                  {4.0f, 0.7f, TeacherTargets::OnTheFly, FeatureMatch{2, 4, 0.0f, 1e-3f, 1}}, 96);
        train(*b, cpu(), data.train, shortTraining(), {}, features, sb);
        QVERIFY(parametersOf(*a) == parametersOf(*b));
    }

    void featureDistillationTrains() {
        ContextFixture fx("mlp-784-256-128-10");
        train(*fx.model, cpu(), fx.data.train, shortTraining());
        ParamValues v = defaultValues(*StrategyRegistry::instance().find("distill.features"));
        v.set("student", std::string("mlp-784-32-10"));
        v.set("epochs", std::int64_t(2));
        v.set("batch_size", std::int64_t(32));
        StrategyRegistry::instance().create("distill.features", v)->apply(fx.ctx);
        QCOMPARE(fx.ctx.model().name(), std::string("mlp-784-32-10"));
        const auto feature = fx.sink.series("loss_feature");
        QCOMPARE(feature.size(), fx.sink.series("loss").size());
        QVERIFY(feature.back().second < feature.front().second); // the projection and the student learn to match
        QVERIFY(fx.summary.count("distill_gain"));
    }

    void strategyStoresDistilledAndScratchStudents() {
        ContextFixture fx("mlp-784-256-128-10");
        train(*fx.model, cpu(), fx.data.train, shortTraining());
        ParamValues v = defaultValues(*StrategyRegistry::instance().find("distill.logits"));
        v.set("student", std::string("mlp-784-32-10"));
        v.set("epochs", std::int64_t(2));
        v.set("batch_size", std::int64_t(32));
        StrategyRegistry::instance().create("distill.logits", v)->apply(fx.ctx);
        QCOMPARE(fx.ctx.model().name(), std::string("mlp-784-32-10"));
        for (const char* k : {"accuracy", "accuracy_scratch", "distill_gain", "teacher_accuracy"})
            QVERIFY2(fx.summary.count(k), k);
        QCOMPARE(fx.summary["distill_gain"], fx.summary["accuracy"] - fx.summary["accuracy_scratch"]);
        const EvalResult now = evaluate(fx.ctx.model(), cpu(), fx.data.test);
        QCOMPARE(now.accuracy, fx.summary["accuracy"]);
        // Both students stream their curves on the same steps and epochs.
        const auto loss = fx.sink.series("loss"), scratch = fx.sink.series("loss_scratch");
        QVERIFY(!loss.empty());
        QCOMPARE(loss.size(), scratch.size());
        for (std::size_t i = 0; i < loss.size(); ++i) QCOMPARE(loss[i].first, scratch[i].first);
        QCOMPARE(fx.sink.series("loss_soft").size(), loss.size());
        QCOMPARE(fx.sink.series("loss_hard").size(), loss.size());
        QCOMPARE(fx.sink.series("val_accuracy").size(), std::size_t(2));
        QCOMPARE(fx.sink.series("val_accuracy_scratch").size(), std::size_t(2));
        QCOMPARE(fx.trainStep, loss.back().first); // the run's step counter moved on with the distilled student
    }

    void scratchSeesTheSameBatchesInTheSameOrder() {
        // With alpha = 0 and T = 1 the distilled student is trained on cross-entropy too, so if the scratch
        // student starts from the same weights and sees the same batches in the same order, every loss
        // sample and both accuracies agree exactly.
        ContextFixture fx("mlp-784-256-128-10");
        ParamValues v = defaultValues(*StrategyRegistry::instance().find("distill.logits"));
        v.set("student", std::string("mlp-784-64-10"));
        v.set("alpha", 0.0);
        v.set("temperature", 1.0);
        v.set("epochs", std::int64_t(2));
        v.set("batch_size", std::int64_t(16));
        StrategyRegistry::instance().create("distill.logits", v)->apply(fx.ctx);
        QCOMPARE(fx.summary["distill_gain"], 0.0);
        QCOMPARE(fx.summary["accuracy"], fx.summary["accuracy_scratch"]);
        const auto loss = fx.sink.series("loss"), scratch = fx.sink.series("loss_scratch");
        QVERIFY(loss.size() >= 4);
        QVERIFY(loss == scratch);
    }

    void progressiveChainsStudents() {
        ContextFixture fx("mlp-784-256-128-10");
        ParamValues v = defaultValues(*StrategyRegistry::instance().find("distill.progressive"));
        v.set("students", std::string("mlp-784-64-10, mlp-784-32-10"));
        v.set("epochs", std::int64_t(1));
        v.set("batch_size", std::int64_t(32));
        StrategyRegistry::instance().create("distill.progressive", v)->apply(fx.ctx);
        QCOMPARE(fx.ctx.model().name(), std::string("mlp-784-32-10"));
        QVERIFY(fx.notes["distill_rounds"].find("mlp-784-64-10") != std::string::npos);
        QVERIFY(fx.notes["distill_rounds"].find("mlp-784-32-10") != std::string::npos);
        QCOMPARE(fx.sink.series("val_accuracy").size(), std::size_t(2));       // one epoch per round
        QCOMPARE(fx.sink.series("val_accuracy_scratch").size(), std::size_t(1)); // the last student only
    }

    void validationNamesTheField() {
        json step = {{"strategy", "distill.logits"}, {"params", {{"student", "mlp-784-64-10"}, {"temperature", 0}}}};
        auto issues = validate(experimentWith(step));
        QVERIFY2(hasIssue(issues, "/steps/0/params/temperature", ""), qPrintable(issuesText(issues)));
        step["params"] = {{"student", "mlp-784-64-10"}, {"alpha", 1.5}};
        issues = validate(experimentWith(step));
        QVERIFY2(hasIssue(issues, "/steps/0/params/alpha", ""), qPrintable(issuesText(issues)));
        step["params"] = {{"student", "resnet-50"}};
        issues = validate(experimentWith(step));
        QVERIFY2(hasIssue(issues, "/steps/0/params/student", "unknown model \"resnet-50\" (known: mlp-784-256-128-10"),
                 qPrintable(issuesText(issues)));
        step["params"] = {{"student", "mlp-784-46-10"}};
        issues = validate(experimentWith(step));
        QVERIFY2(hasIssue(issues, "/steps/0/params/student", "did you mean \"mlp-784-64-10\""), qPrintable(issuesText(issues)));
        step["params"] = {{"student", "mlp-784-64-10"}};
        QVERIFY2(validate(experimentWith(step)).empty(), qPrintable(issuesText(validate(experimentWith(step)))));
        // Feature matching: the layers must come before each model's last (the MLP teacher has 6 layers).
        step = {{"strategy", "distill.features"}, {"params", {{"student", "mlp-784-64-10"}, {"teacher_layer", 5}}}};
        issues = validate(experimentWith(step));
        QVERIFY2(hasIssue(issues, "/steps/0/params/teacher_layer", "mlp-784-256-128-10 has layers 0..5"),
                 qPrintable(issuesText(issues)));
        step["params"] = {{"student", "mlp-784-64-10"}, {"student_layer", 3}};
        issues = validate(experimentWith(step));
        QVERIFY2(hasIssue(issues, "/steps/0/params/student_layer", "mlp-784-64-10 has layers 0..3"),
                 qPrintable(issuesText(issues)));
    }

    void validationRefusesAStudentThatDoesNotFit() {
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        // A student for 3x32x32 images with 100 classes, against a Fashion-MNIST teacher.
        const json arch = {{"name", "wide-student"},
                           {"input", {{"shape", {3, 32, 32}}}},
                           {"classes", 100},
                           {"layers", {{{"type", "flatten"}}, {{"type", "linear"}, {"in", 3072}, {"out", 100}}}}};
        std::ofstream(dir.filePath("wide.json").toStdString()) << arch.dump();
        json step = {{"strategy", "distill.logits"}, {"params", {{"student", "wide.json"}}}};
        auto issues = validate(experimentWith(step), dir.path());
        QVERIFY2(hasIssue(issues, "/steps/0/params/student", "[3, 32, 32]") &&
                     hasIssue(issues, "/steps/0/params/student", "[1, 28, 28]"),
                 qPrintable(issuesText(issues)));
        // In a chain the second student is checked against the first.
        step = {{"strategy", "distill.progressive"}, {"params", {{"students", "mlp-784-64-10, wide.json"}}}};
        issues = validate(experimentWith(step), dir.path());
        QVERIFY2(hasIssue(issues, "/steps/0/params/students", "student 2") &&
                     hasIssue(issues, "/steps/0/params/students", "mlp-784-64-10"),
                 qPrintable(issuesText(issues)));
        // A later step sees the student: a second distillation into a model the student cannot teach.
        json doc = experimentWith({{"strategy", "distill.logits"}, {"params", {{"student", "mlp-784-32-10"}}}});
        doc["steps"].push_back({{"strategy", "distill.logits"}, {"params", {{"student", "wide.json"}}}});
        issues = validate(doc, dir.path());
        QVERIFY2(hasIssue(issues, "/steps/1/params/student", "mlp-784-32-10"), qPrintable(issuesText(issues)));
    }
};

QTEST_GUILESS_MAIN(TestDistill)
#include "test_distill.moc"
