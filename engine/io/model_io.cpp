// Models as safetensors files: parameters and buffers under their PyTorch names, the architecture JSON in the
// metadata. Loading checks the file against the architecture tensor by tensor before using it.
#include "engine/io/model_io.h"

#include "engine/backends/registry.h"
#include "engine/core/errors.h"
#include "engine/io/bert_model.h"
#include "engine/io/pretrained.h"
#include "engine/io/safetensors.h"
#include "engine/io/zoo.h"

#include <fstream>
#include <set>
#include <sstream>

namespace lathe {
namespace {

std::string quoted(const std::string& s) { return "\"" + s + "\""; }

nlohmann::json parseArchitectureText(const std::string& text, const std::string& where) {
    try {
        return nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
        throw DataError(where + ": invalid architecture JSON: " + e.what());
    }
}

// A parameter or buffer (whose current value is `expected`) is filled from a file tensor of its own dtype,
// or, for f32 ones, from f16/bf16 (PyTorch exports made with .half() or .bfloat16()): the widening is exact.
Tensor hostValueFor(const Tensor& expected, const std::string& name, const Tensor& src, const std::string& path) {
    const DType want = expected.dtype();
    if (src.shape() != expected.shape())
        throw DataError(path + ": tensor " + quoted(name) + " has shape " + shapeToString(src.shape()) +
                        ", the architecture expects " + shapeToString(expected.shape()));
    if (src.dtype() == want) return src;
    if (want == DType::F32 && (src.dtype() == DType::F16 || src.dtype() == DType::BF16)) {
        Tensor out = Tensor::host(src.shape(), DType::F32);
        traits(src.dtype()).toFloat(src.data(), out.ptr<float>(), static_cast<std::size_t>(src.numel()));
        return out;
    }
    throw DataError(path + ": tensor " + quoted(name) + " has dtype " + dtypeName(src.dtype()) +
                    ", the architecture expects " + dtypeName(want) +
                    (want == DType::F32 ? " (f16 and bf16 are converted)" : ""));
}

} // namespace

nlohmann::json readArchitectureFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw DataError(path + ": cannot open the architecture JSON");
    std::ostringstream ss;
    ss << in.rdbuf();
    return parseArchitectureText(ss.str(), path);
}

void saveModel(Model& model, const std::string& path) {
    Backend* be = model.backend();
    if (!be) throw DataError(path + ": the model has no weights yet (it was never initialised or loaded)");
    std::vector<std::pair<std::string, Tensor>> tensors;
    for (const auto& np : model.namedParameters()) tensors.emplace_back(np.name, be->download(np.param->value));
    for (const auto& nb : model.namedBuffers()) {
        const Tensor& v = nb.buffer->value;
        tensors.emplace_back(nb.name, v.isHost() ? v : be->download(v));
    }
    std::map<std::string, std::string> metadata;
    metadata[kArchitectureKey] = model.architecture().dump();
    // What the safetensors Python package writes for torch state dicts; some loaders look for it.
    metadata["format"] = "pt";
    writeSafetensors(path, tensors, metadata);
}

std::unique_ptr<Model> loadModel(const std::string& path, const std::string& architecturePath) {
    SafetensorsFile file = readSafetensors(path);

    // An explicit architecture file wins over the embedded one (it lets a user re-read a file with
    // a corrected architecture); without either, there is nothing to build.
    nlohmann::json arch;
    std::string archSource;
    if (!architecturePath.empty()) {
        arch = readArchitectureFile(architecturePath);
        archSource = architecturePath;
    } else if (auto it = file.metadata.find(kArchitectureKey); it != file.metadata.end()) {
        archSource = path + ": __metadata__/" + kArchitectureKey;
        arch = parseArchitectureText(it->second, archSource);
    } else {
        throw DataError(path + ": no architecture: the file has no \"" + std::string(kArchitectureKey) +
                        "\" metadata (a file exported from PyTorch needs an architecture JSON given beside it)");
    }

    std::unique_ptr<Model> model;
    try {
        model = Model::fromArchitecture(arch);
    } catch (const ConfigError& e) {
        if (architecturePath.empty()) throw DataError(archSource + ": " + e.what());
        throw ConfigError(archSource + ": " + e.what());
    }

    // The state: parameters, then buffers (running statistics), as PyTorch's state_dict holds both.
    std::vector<std::pair<std::string, Tensor*>> state;
    for (const auto& np : model->namedParameters()) state.emplace_back(np.name, &np.param->value);
    for (const auto& nb : model->namedBuffers()) state.emplace_back(nb.name, &nb.buffer->value);
    std::set<std::string> expected;
    std::string expectedList;
    for (const auto& [name, value] : state) {
        expected.insert(name);
        expectedList += (expectedList.empty() ? "" : ", ") + name;
    }
    for (const auto& [name, t] : file.tensors)
        if (!expected.count(name))
            throw DataError(path + ": unexpected tensor " + quoted(name) + " (the architecture " +
                            quoted(model->name()) + " has no such parameter or buffer; it has " + expectedList + ")");
    for (const auto& [name, value] : state) {
        const Tensor* src = file.find(name);
        if (!src)
            throw DataError(path + ": missing tensor " + quoted(name) + " (the architecture expects " +
                            std::string(dtypeName(value->dtype())) + shapeToString(value->shape()) + ")");
        *value = hostValueFor(*value, name, *src, path);
    }
    // Host values set from outside are uploaded by to(); on the CPU that is one copy per tensor.
    model->to(*cpuBackend());
    return model;
}

std::unique_ptr<Model> loadModel(const ModelRef& ref, std::uint64_t seed, Backend& be) {
    const bool fresh = ref.path.empty() && !ref.architecturePath.empty() && ref.zoo.empty();
    if (!fresh && ref.zoo.empty() == ref.path.empty())
        throw ConfigError("a model is a zoo name, a .safetensors path or an architecture file (got " +
                          (ref.zoo.empty() ? std::string("none") : "both \"" + ref.zoo + "\" and \"" + ref.path + "\"") +
                          ")");
    std::unique_ptr<Model> model;
    const PretrainedInfo* pretrained = ref.zoo.empty() ? nullptr : findPretrained(ref.zoo);
    if (!ref.path.empty() && ref.architecturePath == kBertArchitecture) {
        model = loadBertModel(ref.path, bertModelName(ref.path)); // a Hugging Face BERT checkpoint
    } else if (pretrained && pretrained->name == ref.zoo) {
        model = loadPretrained(*pretrained); // its own weights, never fresh ones
    } else if (!ref.path.empty()) {
        model = loadModel(ref.path, ref.architecturePath);
    } else if (fresh) {
        try {
            model = Model::fromArchitecture(readArchitectureFile(ref.architecturePath));
        } catch (const ConfigError& e) {
            throw ConfigError(ref.architecturePath + ": " + e.what());
        }
        model->initialize(be, seed);
    } else {
        model = Model::fromArchitecture(zooArchitecture(ref.zoo));
        model->initialize(be, seed);
    }
    model->to(be);
    return model;
}

} // namespace lathe
