// The model zoo: the Fashion-MNIST baselines of the dataset paper's benchmark table, small students for
// distillation, the byte-level language models, and the pretrained models io/pretrained.h loads, as
// architecture JSON (in io/, beside the architecture reader, since a pretrained entry's JSON comes from its files).
#include "engine/io/zoo.h"

#include "engine/core/errors.h"
#include "engine/data/text_corpus.h"
#include "engine/io/pretrained.h"
#include "engine/nn/transformer.h"

namespace lathe {
namespace {

// Fashion-MNIST pixel statistics after scaling to [0, 1] (training split).
constexpr double kFashionMean = 0.2860;
constexpr double kFashionStd = 0.3530;

nlohmann::json fashionInput() {
    return {{"shape", {1, 28, 28}}, {"scale", 1.0 / 255.0}, {"mean", kFashionMean}, {"std", kFashionStd}};
}

// A multilayer perceptron 784 -> hidden... -> 10 with ReLU between, named after its widths.
nlohmann::json mlp(const std::vector<int>& hidden) {
    std::string name = "mlp-784";
    nlohmann::json layers = nlohmann::json::array({{{"type", "flatten"}}});
    int in = 784;
    for (const int h : hidden) {
        layers.push_back({{"type", "linear"}, {"in", in}, {"out", h}});
        layers.push_back({{"type", "relu"}});
        name += "-" + std::to_string(h);
        in = h;
    }
    layers.push_back({{"type", "linear"}, {"in", in}, {"out", 10}});
    return {{"name", name + "-10"}, {"input", fashionInput()}, {"classes", 10}, {"layers", layers}};
}

// Two conv+pool blocks and a fully connected head; dropout before the classifier keeps the
// test accuracy from sagging once the training loss gets small.
nlohmann::json cnn() {
    return {{"name", "cnn-2conv"},
            {"input", fashionInput()},
            {"classes", 10},
            {"layers",
             {{{"type", "conv2d"}, {"in", 1}, {"out", 32}, {"kernel", 3}, {"padding", 1}},
              {{"type", "relu"}},
              {{"type", "maxpool2d"}, {"kernel", 2}},
              {{"type", "conv2d"}, {"in", 32}, {"out", 64}, {"kernel", 3}, {"padding", 1}},
              {{"type", "relu"}},
              {{"type", "maxpool2d"}, {"kernel", 2}},
              {{"type", "flatten"}},
              {{"type", "linear"}, {"in", 3136}, {"out", 128}},
              {{"type", "relu"}},
              {{"type", "dropout"}, {"p", 0.3}},
              {{"type", "linear"}, {"in", 128}, {"out", 10}}}}};
}

// cnn-2conv with a BatchNorm2d after each convolution (conv-BN-ReLU blocks; the convolutions lose their bias,
// which the norm's shift replaces, as in torchvision's models), so the two compare layer for layer.
nlohmann::json cnnBn() {
    nlohmann::json arch = cnn();
    arch["name"] = "cnn-bn";
    nlohmann::json layers = nlohmann::json::array();
    for (auto& l : arch["layers"]) {
        if (l["type"] != "conv2d") {
            layers.push_back(l);
            continue;
        }
        l["bias"] = false;
        layers.push_back(l);
        layers.push_back({{"type", "batchnorm2d"}, {"features", l["out"]}});
    }
    arch["layers"] = layers;
    return arch;
}

// A thin CNN student (16,554 parameters, 4% of cnn-2conv): one 3x3 convolution, then a
// depthwise-separable block (3x3 depthwise, 1x1 pointwise) in the MobileNet manner, and a linear head.
nlohmann::json cnnDws() {
    return {{"name", "cnn-dws"},
            {"input", fashionInput()},
            {"classes", 10},
            {"layers",
             {{{"type", "conv2d"}, {"in", 1}, {"out", 16}, {"kernel", 3}, {"padding", 1}},
              {{"type", "relu"}},
              {{"type", "maxpool2d"}, {"kernel", 2}},
              {{"type", "conv2d"}, {"in", 16}, {"out", 16}, {"kernel", 3}, {"padding", 1}, {"groups", 16}},
              {{"type", "relu"}},
              {{"type", "conv2d"}, {"in", 16}, {"out", 32}, {"kernel", 1}},
              {{"type", "relu"}},
              {{"type", "maxpool2d"}, {"kernel", 2}},
              {{"type", "flatten"}},
              {{"type", "linear"}, {"in", 32 * 7 * 7}, {"out", 10}}}}};
}

// A character (byte) level GPT: token + learned position embeddings, pre-LN causal blocks with GELU MLPs, a final
// LayerNorm and an output head tied to the token embedding; 256 byte ids, `context` positions.
nlohmann::json gptChar(const std::string& name, std::int64_t dim, std::int64_t heads, int layers,
                       std::int64_t context) {
    nlohmann::json ls = nlohmann::json::array();
    // GPT-2's 0.02 for both tables: N(0, 1) embeddings through the tied head start with logits of size ~sqrt(D).
    ls.push_back({{"type", "embedding"}, {"num", 256}, {"dim", dim}, {"std", 0.02}});
    ls.push_back({{"type", "position_embedding"}, {"num", context}, {"dim", dim}, {"std", 0.02}});
    TransformerBlockSpec b;
    b.dim = dim;
    b.heads = heads;
    b.mlp = 4 * dim;
    b.causal = true;
    b.norm = LayerNormPlacement::Pre;
    for (int i = 0; i < layers; ++i) ls.push_back(transformerBlock(b));
    ls.push_back({{"type", "layernorm"}, {"dim", dim}});
    ls.push_back({{"type", "tied_linear"}, {"in", dim}, {"out", 256}, {"weight", "layers.0.weight"}});
    return {{"name", name},
            {"input", {{"shape", {context}}, {"dtype", "i32"}}},
            {"classes", 256},
            {"output", {context, 256}},
            {"layers", ls}};
}

} // namespace

// The baselines, then the small students of distillation experiments, then the language models.
std::vector<std::string> zooNames() {
    std::vector<std::string> names = {"mlp-784-256-128-10", "cnn-2conv", "cnn-bn", "mlp-784-64-10", "mlp-784-32-10", "cnn-dws",
                                      "gpt-char-tiny", "gpt-char-small"};
    for (const auto& p : pretrainedModels()) names.push_back(p.name); // pretrained (engine/io/pretrained.h)
    return names;
}

nlohmann::json zooArchitecture(const std::string& name) {
    if (const PretrainedInfo* p = findPretrained(name); p && p->name == name) return pretrainedArchitecture(*p);
    if (name == "mlp-784-256-128-10") return mlp({256, 128});
    if (name == "mlp-784-64-10") return mlp({64});
    if (name == "mlp-784-32-10") return mlp({32});
    if (name == "cnn-2conv") return cnn();
    if (name == "cnn-dws") return cnnDws();
    if (name == "cnn-bn") return cnnBn();
    if (name == "gpt-char-tiny") return gptChar(name, 128, 4, 5, kTextContext);   // 1.03 M parameters
    if (name == "gpt-char-small") return gptChar(name, 320, 5, 8, kTextContext);  // 9.97 M parameters
    std::string known;
    for (const auto& n : zooNames()) known += (known.empty() ? "" : ", ") + n;
    throw ConfigError("unknown model \"" + name + "\" (known: " + known + ")");
}

} // namespace lathe
