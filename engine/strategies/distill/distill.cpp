// The `distill` family: knowledge distillation of the current model (the teacher) into a student given
// by the step — `distill.logits` (one student), `distill.features` (the same plus matching one layer's
// output through a learned projection) and `distill.progressive` (teacher -> intermediate -> ... ->
// student, each round's student teaching the next). Every run also trains the final student from
// scratch with the same initial weights, epochs, seed and batch order, and stores both, so the gain of
// distillation is measured on every run rather than assumed: summary accuracy (distilled),
// accuracy_scratch, distill_gain (their difference) and teacher_accuracy. After the step the student is
// the current model, so later steps (quantize, prune, measure) act on it.
#include "engine/strategies/distill/distillation_loss.h"
#include "engine/strategies/train/training.h"

#include "engine/core/rng.h"
#include "engine/io/model_io.h"
#include "engine/io/zoo.h"

#include <algorithm>
#include <memory>
#include <optional>
#include <sstream>

namespace lathe {
namespace {

struct DistillParams {
    std::string students;  // one model (distill.logits), or a comma-separated chain (distill.progressive)
    float temperature = 2.0f;
    float alpha = 0.5f;
    TeacherTargets targets = TeacherTargets::Cached;
    std::int64_t seed = 0; // 0: from the run's seed
    // distill.features: the weight of the feature MSE and the layers matched (-1: the last layer's input)
    float beta = 1.0f;
    std::int64_t studentLayer = -1, teacherLayer = -1;
    TrainParams train;
};

enum class Kind { Logits, Progressive, Features };

std::string trim(const std::string& s) {
    const auto b = s.find_first_not_of(" \t");
    if (b == std::string::npos) return {};
    return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

std::vector<std::string> splitStudents(const std::string& list) {
    std::vector<std::string> out;
    std::stringstream ss(list);
    std::string item;
    while (std::getline(ss, item, ',')) out.push_back(trim(item));
    return out;
}

bool isZooName(const std::string& s) {
    const auto names = zooNames();
    return std::find(names.begin(), names.end(), s) != names.end();
}

// A student as the step writes it: a zoo name, an architecture JSON (fresh weights) or a .safetensors
// model (its weights as the starting point).
ModelRef studentRef(const std::string& s) {
    ModelRef ref;
    if (isZooName(s)) ref.zoo = s;
    else if (s.ends_with(".json")) ref.architecturePath = s;
    else ref.path = s;
    return ref;
}

// Why a student cannot learn from this teacher on this data, or "".
std::string mismatch(const ModelSignature& teacher, const ModelSignature& student,
                     const std::optional<ModelSignature>& data) {
    if (student.input != teacher.input)
        return "the student " + student.name + " takes input " + shapeToString(student.input) + " but the teacher " +
               teacher.name + " takes " + shapeToString(teacher.input);
    if (student.classes != teacher.classes)
        return "the student " + student.name + " has " + std::to_string(student.classes) + " classes but the teacher " +
               teacher.name + " has " + std::to_string(teacher.classes);
    if (data && numel(student.input) != numel(data->input))
        return "the student " + student.name + " takes input " + shapeToString(student.input) + " but " + data->name +
               " has samples of shape " + shapeToString(data->input);
    if (data && student.classes < data->classes)
        return "the student " + student.name + " has " + std::to_string(student.classes) + " classes but " +
               data->name + " has " + std::to_string(data->classes);
    return {};
}

ModelSignature signatureOf(const Model& m) {
    return {m.name(), m.inputShape(), m.numClasses(), static_cast<int>(m.layers().size()), m.architecture()};
}

// A matched layer index as the step gives it (-1: the last layer's input) for a model of `layers` layers.
int resolveLayer(std::int64_t given, int layers) { return given < 0 ? layers - 2 : static_cast<int>(given); }

// Validation: every student named must exist and fit its teacher (the experiment's model, then the
// previous student) and the data; the last student is the model later steps receive.

void checkStudents(const DistillParams& p, ModelCheck& check, Kind kind) {
    const bool chain = kind == Kind::Progressive;
    const std::optional<ModelSignature> teacher = check.model;
    const auto list = chain ? splitStudents(p.students) : std::vector<std::string>{trim(p.students)};
    const char* field = chain ? "students" : "student";
    for (std::size_t i = 0; i < list.size(); ++i) {
        const std::string& s = list[i];
        const std::string where = chain ? "student " + std::to_string(i + 1) + " of \"" + p.students + "\": " : "";
        if (s.empty()) {
            check.issue(field, where + "empty: name a zoo model, an architecture .json or a .safetensors model");
            check.model.reset();
            return;
        }
        std::optional<ModelSignature> student;
        try {
            if (isZooName(s)) {
                student = signatureOf(*Model::fromArchitecture(zooArchitecture(s)));
            } else if (s.ends_with(".json")) {
                const std::string path = check.resolvePath ? check.resolvePath(s) : s;
                student = signatureOf(*Model::fromArchitecture(readArchitectureFile(path)));
            } else if (!s.ends_with(".safetensors")) {
                check.issue(field, where + unknownNameMessage("model", s, zooNames(),
                                                              "or an architecture .json or a .safetensors model"));
                check.model.reset();
                return;
            } // a .safetensors student is read at the run
        } catch (const Error& e) {
            check.issue(field, where + e.what());
            check.model.reset();
            return;
        }
        if (!student) {
            check.model.reset();
            continue;
        }
        if (check.model) {
            if (const std::string why = mismatch(*check.model, *student, check.data); !why.empty())
                check.issue(field, where + why);
        }
        check.model = student;
    }
    if (kind != Kind::Features) return;
    // The matched layers must exist and come before each model's last layer.
    auto checkLayer = [&](const char* name, std::int64_t given, const std::optional<ModelSignature>& m) {
        if (!m || m->layers == 0) return;
        const int at = resolveLayer(given, m->layers);
        if (at < 0 || at + 1 >= m->layers)
            check.issue(name, m->name + " has layers 0.." + std::to_string(m->layers - 1) + ": the matched layer must come "
                                  "before the last one (0.." + std::to_string(m->layers - 2) + ", or -1 for the last "
                                  "layer's input), got " + std::to_string(given));
    };
    checkLayer("student_layer", p.studentLayer, check.model);
    checkLayer("teacher_layer", p.teacherLayer, teacher);
}

class Distill final : public Strategy {
public:
    Distill(std::string name, DistillParams p, Kind kind)
        : m_name(std::move(name)), m_params(std::move(p)), m_kind(kind), m_chain(kind == Kind::Progressive) {}

    void apply(StepContext& ctx) override {
        const auto students = m_chain ? splitStudents(m_params.students)
                                      : std::vector<std::string>{trim(m_params.students)};
        Backend& be = ctx.backend();
        const EvalResult teacherEval = evaluate(ctx.model(), be, ctx.evalData(), 256, ctx.cancel);
        ctx.summary()["teacher_accuracy"] = teacherEval.accuracy;
        ctx.info(m_name + ": teacher " + ctx.model().name() + " accuracy " + std::to_string(teacherEval.accuracy));
        // Hooks of earlier steps (e.g. pruning masks) hold the teacher's weights, not a student's.
        if (ctx.trainHooks && !ctx.trainHooks->empty()) {
            ctx.info(m_name + ": the training hooks of earlier steps stay with the teacher");
            ctx.trainHooks->clear();
        }

        std::string rounds;
        for (std::size_t round = 0; round < students.size(); ++round) {
            const bool last = round + 1 == students.size();
            const std::string what = m_chain ? m_name + " round " + std::to_string(round + 1) + "/" +
                                                   std::to_string(students.size())
                                             : m_name;
            const ModelRef ref = studentRef(students[round]);
            std::unique_ptr<Model> student = loadStudent(ctx, ref);
            const ModelSignature dataSig{ctx.data().train.name, ctx.data().train.sampleShape, ctx.data().train.numClasses};
            if (const std::string why = mismatch(signatureOf(ctx.model()), signatureOf(*student), dataSig); !why.empty())
                throw ConfigError(m_name + ": " + why);

            TrainParams p = m_params.train;
            p.seed = m_params.seed > 0 ? mix64(static_cast<std::uint64_t>(m_params.seed) + round)
                                       : mix64(ctx.seed ^ (0xd157111ull + 131ull * static_cast<std::uint64_t>(ctx.stepIndex) + round));
            if (last) trainScratch(ctx, ref, p);

            // The distilled student: its own training phase on a context whose model is the student.
            std::unique_ptr<Model> slot = std::move(student);
            StepContext sc = ctx;
            sc.modelSlot = &slot;
            sc.trainHooks = nullptr;
            const std::int64_t samples =
                p.limit > 0 ? std::min<std::int64_t>(p.limit, ctx.data().train.size()) : ctx.data().train.size();
            DistillationSettings s{m_params.temperature, m_params.alpha, m_params.targets, std::nullopt};
            if (m_kind == Kind::Features) {
                s.targets = TeacherTargets::OnTheFly;
                const int layers = static_cast<int>(slot->layers().size()), tLayers = static_cast<int>(ctx.model().layers().size());
                s.features = FeatureMatch{resolveLayer(m_params.studentLayer, layers),
                                          resolveLayer(m_params.teacherLayer, tLayers), m_params.beta, p.lr,
                                          mix64(p.seed ^ 0xfea7ull)};
            }
            { // the loss holds the teacher in an inference scope: closed before the teacher is replaced below
                DistillationLoss loss(ctx.model(), *slot, be, ctx.data().train, samples, s,
                                      static_cast<std::int64_t>(p.logInterval) * p.batchSize, ctx.cancel);
                TrainingPhaseOptions options;
                options.loss = &loss;
                options.optimizerState = OptimizerStateMode::Fresh;
                options.onInterval = [&](std::int64_t step, double tMs) {
                    const auto parts = loss.takeIntervalParts(be);
                    if (parts.rows == 0) return;
                    ctx.sink().push(makeSample(ctx.runId, "loss_soft", step, tMs, parts.soft));
                    ctx.sink().push(makeSample(ctx.runId, "loss_hard", step, tMs, parts.hard));
                    if (s.features)
                        ctx.sink().push(makeSample(ctx.runId, "loss_feature", step, tMs, parts.feature));
                };
                const std::string targets = s.targets == TeacherTargets::Cached
                                                ? "cached once for " + std::to_string(samples) + " samples"
                                                : std::string("computed per batch");
                const std::string features =
                    s.features ? ", matching the output of its layer " + std::to_string(s.features->studentLayer) +
                                     " to the teacher's layer " + std::to_string(s.features->teacherLayer) +
                                     " through a learned projection, beta = " + std::to_string(s.features->beta)
                               : std::string();
                ctx.info(what + ": " + slot->name() + " (" + std::to_string(slot->parameterCount()) +
                         " parameters) learns from " + ctx.model().name() + " at T = " +
                         std::to_string(s.temperature) + ", alpha = " + std::to_string(s.alpha) +
                         ", teacher logits " + targets + features);
                runTrainingPhase(sc, p, what, options);
            }
            const EvalResult e = evaluate(*slot, be, ctx.evalData(), 256, ctx.cancel);
            rounds += (rounds.empty() ? "" : "; ") + slot->name() + " " + std::to_string(e.accuracy);
            ctx.replaceModel(std::move(slot)); // the teacher goes; the student teaches the next round
            if (last) {
                auto& sum = ctx.summary();
                sum["accuracy"] = e.accuracy;
                sum["distill_gain"] = e.accuracy - sum["accuracy_scratch"];
                ctx.info(m_name + ": distilled accuracy " + std::to_string(e.accuracy) + ", from scratch " +
                         std::to_string(sum["accuracy_scratch"]) + ", gain " + std::to_string(sum["distill_gain"]));
            }
        }
        if (m_chain) ctx.notes()["distill_rounds"] = rounds;
    }

private:
    // A fresh student (zoo name or architecture) takes its initial weights from the step's seed when one is
    // given; a .safetensors student keeps its weights.
    std::unique_ptr<Model> loadStudent(StepContext& ctx, const ModelRef& ref) const {
        std::unique_ptr<Model> m = ctx.loadModel(ref);
        if (m_params.seed > 0 && ref.path.empty()) m->initialize(ctx.backend(), static_cast<std::uint64_t>(m_params.seed));
        return m;
    }

    // The same student from the same initial weights, trained alone on the labels with the same epochs,
    // seed and batch order; streamed as "*_scratch" series next to the distilled student's.
    void trainScratch(StepContext& ctx, const ModelRef& ref, const TrainParams& p) {
        std::unique_ptr<Model> scratch = loadStudent(ctx, ref);
        std::int64_t step = ctx.trainStep ? *ctx.trainStep : 0, epoch = ctx.trainEpoch ? *ctx.trainEpoch : 0;
        StepContext sc = ctx;
        sc.modelSlot = &scratch;
        sc.training = nullptr;
        sc.trainHooks = nullptr;
        sc.trainStep = &step;
        sc.trainEpoch = &epoch;
        TrainingPhaseOptions options;
        options.seriesSuffix = "_scratch";
        runTrainingPhase(sc, p, m_name + " (scratch baseline)", options);
        const EvalResult e = evaluate(*scratch, ctx.backend(), ctx.evalData(), 256, ctx.cancel);
        ctx.summary()["accuracy_scratch"] = e.accuracy;
        ctx.info(m_name + ": " + scratch->name() + " trained from scratch: accuracy " + std::to_string(e.accuracy));
    }

    std::string m_name;
    DistillParams m_params;
    Kind m_kind;
    bool m_chain;
};

SchemaBuilder<DistillParams> distillSchema(const char* name, const char* summary, Kind kind) {
    SchemaBuilder<DistillParams> b(name, "distill", summary);
    if (kind == Kind::Progressive)
        b.text("students", &DistillParams::students, "mlp-784-64-10, mlp-784-32-10",
               "the chain after the teacher, comma-separated: each a zoo model, an architecture .json (fresh "
               "weights) or a .safetensors model; each round's student teaches the next");
    else
        b.text("student", &DistillParams::students, "mlp-784-64-10",
               "a zoo model, an architecture .json (fresh weights) or a .safetensors model (its weights as the start)");
    // Defaults from docs/benchmarks/distillation.md: T = 2, alpha = 0.5 and enough epochs for the scratch
    // student to overfit did best on Fashion-MNIST; alpha = 0.9 or 10 epochs gave no gain.
    b.number("temperature", &DistillParams::temperature, 2.0,
             {.min = 0, .max = 100, .minExclusive = true, .help = "T: softens both softmaxes; the soft loss is scaled by T^2"});
    b.number("alpha", &DistillParams::alpha, 0.5,
             {.min = 0, .max = 1, .help = "weight of the soft (teacher) loss; 1 - alpha weighs cross-entropy on the labels"});
    if (kind == Kind::Features) {
        b.number("beta", &DistillParams::beta, 1.0,
                 {.min = 0, .max = 1000, .help = "weight of the feature MSE (per sample, mean over the teacher feature)"});
        b.integer("student_layer", &DistillParams::studentLayer, -1,
                  {.min = -1, .max = 10000, .help = "the student layer whose output is matched (index in the "
                                                    "architecture's layers; -1: the last layer's input)"});
        b.integer("teacher_layer", &DistillParams::teacherLayer, -1,
                  {.min = -1, .max = 10000, .help = "the teacher layer it is matched to (-1: the last layer's input)"});
    } else {
        b.choice("teacher_logits", &DistillParams::targets,
                 {{"cache", TeacherTargets::Cached}, {"on_the_fly", TeacherTargets::OnTheFly}}, TeacherTargets::Cached,
                 "cache: one teacher pass over the training samples before training (the teacher runs without "
                 "dropout, so its logits never change; fastest when the student trains several epochs); on_the_fly: "
                 "a teacher forward per batch. Both give the same logits up to float rounding");
    }
    b.integer("seed", &DistillParams::seed, 0,
              {.min = 0, .max = 4e18, .help = "the students' initial weights and batch order (0: from the run's seed); "
                                              "a sweep over it repeats the comparison with the same teacher"});
    b.include(trainingFields(name, "", 20, 0.001), &DistillParams::train);
    b.checkModel([kind](const DistillParams& p, ModelCheck& c) { checkStudents(p, c, kind); });
    return b;
}

} // namespace
} // namespace lathe

LATHE_STRATEGY_FAMILY(distill) {
    using namespace lathe;
    registry.add(distillSchema("distill.logits",
                               "train a student on the current model's soft targets (and the labels), beside the same "
                               "student trained from scratch",
                               Kind::Logits),
                 [](const DistillParams& p) { return std::make_unique<Distill>("distill.logits", p, Kind::Logits); });
    registry.add(distillSchema("distill.features",
                               "distill.logits plus matching a student layer's output to a teacher layer's through a "
                               "learned linear projection (MSE), beside the same student trained from scratch",
                               Kind::Features),
                 [](const DistillParams& p) { return std::make_unique<Distill>("distill.features", p, Kind::Features); });
    registry.add(distillSchema("distill.progressive",
                               "distill through a chain of ever smaller students (teacher -> intermediate -> student), "
                               "the last beside the same student trained from scratch",
                               Kind::Progressive),
                 [](const DistillParams& p) {
                     return std::make_unique<Distill>("distill.progressive", p, Kind::Progressive);
                 });
}
