// ModelEditor: path lookup through blocks, edits with undo on a shape error, placement of new parameters,
// the structured shrinking of a Linear pair or of a Conv2d's filters with their consumer's inputs, and the
// removal of attention heads with their projections' rows and columns.
#include "engine/nn/model_edit.h"

#include "engine/backends/registry.h"
#include "engine/core/errors.h"

#include <algorithm>
#include <charconv>

namespace lathe {
namespace {

using LayerList = std::vector<std::unique_ptr<Layer>>;

void renumber(LayerList& list) {
    for (std::size_t i = 0; i < list.size(); ++i) {
        list[i]->index = static_cast<int>(i);
        if (auto* sub = list[i]->sublayers()) renumber(*sub);
    }
}

Parameter* findParameter(Layer& layer, const std::string& localName) {
    for (Parameter* p : layer.parameters())
        if (p->name == localName) return p;
    return nullptr;
}

Buffer* findBuffer(Layer& layer, const std::string& localName) {
    for (Buffer* b : layer.buffers())
        if (b->name == localName) return b;
    return nullptr;
}

void listInto(const LayerList& list, const std::string& prefix, int depth, Shape s, std::vector<LayerInfo>& out) {
    for (std::size_t i = 0; i < list.size(); ++i) {
        Layer& l = *list[i];
        LayerInfo info;
        info.path = prefix + "layers." + std::to_string(i);
        info.type = l.type();
        info.inputShape = s;
        info.outputShape = l.outputShape(s);
        for (Parameter* p : l.parameters()) info.parameterCount += p->value.numel();
        info.depth = depth;
        out.push_back(info);
        if (auto* sub = l.sublayers()) listInto(*sub, info.path + ".", depth + 1, s, out);
        s = info.outputShape;
    }
}

// A (rows, cols) F32 host tensor holding the given rows and columns of src (rows x cols as laid out in src).
Tensor gather2d(const Tensor& src, const std::vector<std::int64_t>& rows, const std::vector<std::int64_t>& cols) {
    const std::int64_t srcCols = src.dim(1);
    Tensor out = Tensor::host({static_cast<std::int64_t>(rows.size()), static_cast<std::int64_t>(cols.size())},
                              DType::F32);
    const float* s = src.ptr<float>();
    float* d = out.ptr<float>();
    for (std::int64_t r : rows)
        for (std::int64_t c : cols) *d++ = s[r * srcCols + c];
    return out;
}

// A host F32 tensor of `shape` holding, for each of `outer` groups of src laid out as (outer, n, block), the
// blocks `keep` of the middle dimension: filters of a conv weight (outer 1), input channels of a consumer conv
// (block KH*KW), a channel's H*W columns of a Linear after a flatten (block H*W), entries of a bias (block 1).
Tensor gatherBlocks(const Tensor& src, std::int64_t outer, std::int64_t n, std::int64_t block,
                    const std::vector<std::int64_t>& keep, const Shape& shape) {
    Tensor out = Tensor::host(shape, DType::F32);
    if (out.numel() != outer * static_cast<std::int64_t>(keep.size()) * block || src.numel() != outer * n * block)
        throw ConfigError("model edit: gather of " + shapeToString(src.shape()) + " into " + shapeToString(shape) +
                          " does not add up");
    const float* s = src.ptr<float>();
    float* d = out.ptr<float>();
    for (std::int64_t o = 0; o < outer; ++o)
        for (std::int64_t c : keep) d = std::copy_n(s + (o * n + c) * block, block, d);
    return out;
}

// Why `keep` cannot select units of a layer with `out` of them ("" when it can).
std::string keepProblem(const std::vector<std::int64_t>& keep, std::int64_t out) {
    if (keep.empty()) return "keep at least one unit";
    for (std::size_t i = 0; i < keep.size(); ++i)
        if (keep[i] < 0 || keep[i] >= out || (i > 0 && keep[i] <= keep[i - 1]))
            return "keep must hold ascending, distinct indices in [0, " + std::to_string(out) + ")";
    return {};
}

std::vector<std::int64_t> iota(std::int64_t n) {
    std::vector<std::int64_t> v(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) v[static_cast<std::size_t>(i)] = i;
    return v;
}

} // namespace

ModelEditor::Slot ModelEditor::resolve(const std::string& path) const {
    auto bad = [&](const std::string& why) -> ConfigError {
        return ConfigError("model " + m_model.name() + ": layer path \"" + path + "\": " + why);
    };
    std::vector<std::string> parts;
    std::size_t begin = 0;
    while (true) {
        const std::size_t dot = path.find('.', begin);
        parts.push_back(path.substr(begin, dot == std::string::npos ? std::string::npos : dot - begin));
        if (dot == std::string::npos) break;
        begin = dot + 1;
    }
    if (parts.size() < 2 || parts.size() % 2 != 0) throw bad("expected layers.<i>[.layers.<j>...]");
    LayerList* list = &m_model.m_layers;
    Slot slot;
    for (std::size_t k = 0; k < parts.size(); k += 2) {
        if (parts[k] != "layers") throw bad("expected \"layers\", got \"" + parts[k] + "\"");
        std::size_t i = 0;
        const auto& t = parts[k + 1];
        const auto r = std::from_chars(t.data(), t.data() + t.size(), i);
        if (t.empty() || r.ec != std::errc() || r.ptr != t.data() + t.size()) throw bad("\"" + t + "\" is not an index");
        if (i >= list->size())
            throw bad("index " + t + " is out of range (" + std::to_string(list->size()) + " layers there)");
        slot = {list, i};
        if (k + 2 < parts.size()) {
            Layer& l = *(*list)[i];
            list = l.sublayers();
            if (!list) throw bad("the " + l.type() + " at \"" + parts[k] + "." + t + "\" has no sub-layers");
        }
    }
    return slot;
}

std::vector<LayerInfo> ModelEditor::list() const {
    std::vector<LayerInfo> out;
    Shape s = {1};
    s.insert(s.end(), m_model.inputShape().begin(), m_model.inputShape().end());
    listInto(m_model.m_layers, "", 0, s, out);
    return out;
}

Layer& ModelEditor::layer(const std::string& path) const {
    const Slot s = resolve(path);
    return *(*s.list)[s.index];
}

std::unique_ptr<Layer> ModelEditor::create(const nlohmann::json& config, std::uint64_t seed) const {
    auto l = makeLayer(config);
    Rng rng(seed);
    l->initialize(m_model.backend() ? *m_model.backend() : *cpuBackend(), rng);
    return l;
}

void ModelEditor::commit(const std::function<void()>& undo) {
    m_model.releaseCache();
    renumber(m_model.m_layers);
    try {
        Shape s = {1};
        s.insert(s.end(), m_model.inputShape().begin(), m_model.inputShape().end());
        for (std::size_t i = 0; i < m_model.m_layers.size(); ++i) {
            try {
                s = m_model.m_layers[i]->outputShape(s);
            } catch (const ConfigError& e) {
                throw ConfigError("layers." + std::to_string(i) + ": " + e.what());
            }
        }
        Shape expected = {1};
        expected.insert(expected.end(), m_model.outputShape().begin(), m_model.outputShape().end());
        if (s != expected)
            throw ConfigError("the model's output per sample would be " + shapeToString(s) + ", expected " +
                              shapeToString(expected));
        m_model.bindSharedParameters();
    } catch (const ConfigError& e) {
        undo();
        renumber(m_model.m_layers);
        throw ConfigError("model " + m_model.name() + ": edit undone: " + e.what());
    }
    Backend* be = m_model.backend();
    if (!be) return; // placed later by Model::initialize or Model::to
    for (auto& l : m_model.m_layers) {
        for (Parameter* p : l->parameters()) {
            if (!p->value.defined()) throw BackendError("model edit: a parameter " + p->name + " has no value");
            if (p->value.device() != be->device()) {
                if (!p->value.isHost())
                    throw BackendError("model edit: a new layer's " + p->name + " is on " +
                                       p->value.device().toString() + ", the model on " + be->name());
                p->value = be->upload(p->value);
            }
            if (!p->grad.defined() || p->grad.shape() != p->value.shape() || p->grad.device() != be->device())
                p->grad = be->zeros(p->value.shape(), p->value.dtype());
        }
    }
    for (const auto& nb : m_model.namedBuffers()) Model::placeBuffer(*nb.buffer, nb.name, be, *be);
    m_model.zeroGrad();
}

std::unique_ptr<Layer> ModelEditor::replace(const std::string& path, std::unique_ptr<Layer> layer) {
    if (!layer) throw ConfigError("model edit: replace \"" + path + "\" with no layer");
    const Slot s = resolve(path);
    std::unique_ptr<Layer> old = std::move((*s.list)[s.index]);
    (*s.list)[s.index] = std::move(layer);
    commit([&] { (*s.list)[s.index] = std::move(old); });
    return old;
}

void ModelEditor::insertBefore(const std::string& path, std::unique_ptr<Layer> layer) {
    if (!layer) throw ConfigError("model edit: insert no layer before \"" + path + "\"");
    const Slot s = resolve(path);
    s.list->insert(s.list->begin() + static_cast<std::ptrdiff_t>(s.index), std::move(layer));
    commit([&] { s.list->erase(s.list->begin() + static_cast<std::ptrdiff_t>(s.index)); });
}

void ModelEditor::insertAfter(const std::string& path, std::unique_ptr<Layer> layer) {
    if (!layer) throw ConfigError("model edit: insert no layer after \"" + path + "\"");
    const Slot s = resolve(path);
    s.list->insert(s.list->begin() + static_cast<std::ptrdiff_t>(s.index + 1), std::move(layer));
    commit([&] { s.list->erase(s.list->begin() + static_cast<std::ptrdiff_t>(s.index + 1)); });
}

std::unique_ptr<Layer> ModelEditor::remove(const std::string& path) {
    const Slot s = resolve(path);
    if (s.list->size() == 1)
        throw ConfigError("model " + m_model.name() + ": \"" + path +
                          "\" is the only layer of its sequence; remove or replace the enclosing block instead");
    std::unique_ptr<Layer> old = std::move((*s.list)[s.index]);
    s.list->erase(s.list->begin() + static_cast<std::ptrdiff_t>(s.index));
    commit([&] { s.list->insert(s.list->begin() + static_cast<std::ptrdiff_t>(s.index), std::move(old)); });
    return old;
}

std::string ModelEditor::replaceInSequence(const std::string& path, const Slot& s, std::size_t j,
                                           std::vector<std::pair<std::size_t, std::unique_ptr<Layer>>> layers) {
    std::vector<std::pair<std::size_t, std::unique_ptr<Layer>>> old;
    for (auto& [at, layer] : layers) {
        old.emplace_back(at, std::move((*s.list)[at]));
        (*s.list)[at] = std::move(layer);
    }
    commit([&] {
        for (auto& [at, layer] : old) (*s.list)[at] = std::move(layer);
    });
    return path.substr(0, path.rfind('.') + 1) + std::to_string(j);
}

std::string ModelEditor::shrinkLinearOutputs(const std::string& path, const std::vector<std::int64_t>& keep) {
    auto fail = [&](const std::string& why) -> ConfigError {
        return ConfigError("model " + m_model.name() + ": shrink \"" + path + "\": " + why);
    };
    const Slot s = resolve(path);
    Layer& a = *(*s.list)[s.index];
    if (a.type() != "linear") throw fail("expected a linear layer, found " + a.type());
    const nlohmann::json ca = a.config();
    const std::int64_t in = ca["in"].get<std::int64_t>(), out = ca["out"].get<std::int64_t>();
    if (const std::string why = keepProblem(keep, out); !why.empty()) throw fail(why);

    std::size_t j = s.index + 1;
    for (; j < s.list->size(); ++j) {
        const std::string t = (*s.list)[j]->type();
        if (t == "linear") break;
        if (t != "relu" && t != "gelu" && t != "dropout")
            throw fail("a " + t + " layer stands between it and the next linear (only relu, gelu, dropout may)");
    }
    if (j == s.list->size()) throw fail("no linear layer follows it in the same sequence to take the shrunk inputs");
    Layer& b = *(*s.list)[j];
    const nlohmann::json cb = b.config();
    const std::int64_t outB = cb["out"].get<std::int64_t>();
    Backend* be = m_model.backend();
    if (!be) throw fail("the model has no weights yet (initialise or load it first)");

    auto download = [&](Layer& l, const char* name) -> Tensor {
        Parameter* p = findParameter(l, name);
        if (!p) return Tensor();
        if (p->value.dtype() != DType::F32) throw fail(std::string("the ") + name + " is not f32");
        return be->download(p->value);
    };
    const Tensor wa = download(a, "weight"), ba = download(a, "bias"); // (out, in), (out)
    const Tensor wb = download(b, "weight"), bb = download(b, "bias"); // (outB, out), (outB)
    const auto k = static_cast<std::int64_t>(keep.size());

    nlohmann::json na = ca, nb = cb;
    na["out"] = k;
    nb["in"] = k;
    std::unique_ptr<Layer> newA = makeLayer(na), newB = makeLayer(nb);
    findParameter(*newA, "weight")->value = gather2d(wa, keep, iota(in)); // (k, in)
    if (ba.defined()) findParameter(*newA, "bias")->value = gather2d(ba.view({out, 1}), keep, {0}).view({k});
    findParameter(*newB, "weight")->value = gather2d(wb, iota(outB), keep); // (outB, k)
    if (bb.defined()) findParameter(*newB, "bias")->value = bb;

    std::vector<std::pair<std::size_t, std::unique_ptr<Layer>>> layers;
    layers.emplace_back(s.index, std::move(newA));
    layers.emplace_back(j, std::move(newB));
    return replaceInSequence(path, s, j, std::move(layers));
}

std::string ModelEditor::shrinkConvOutputs(const std::string& path, const std::vector<std::int64_t>& keep) {
    auto fail = [&](const std::string& why) -> ConfigError {
        return ConfigError("model " + m_model.name() + ": shrink \"" + path + "\": " + why);
    };
    const Slot s = resolve(path);
    Layer& a = *(*s.list)[s.index];
    if (a.type() != "conv2d") throw fail("expected a conv2d layer, found " + a.type());
    const nlohmann::json ca = a.config();
    const std::int64_t out = ca["out"].get<std::int64_t>();
    if (ca.value("groups", std::int64_t(1)) != 1)
        throw fail("a grouped or depthwise conv2d ties its filters to its input channels; only groups 1 is shrunk");
    if (const std::string why = keepProblem(keep, out); !why.empty()) throw fail(why);

    // The consumer: the next conv2d, or the next linear after a flatten; the batch norms on the way shrink too.
    std::size_t j = s.index + 1, flattenAt = 0;
    bool flattened = false;
    std::vector<std::size_t> norms;
    for (; j < s.list->size(); ++j) {
        const std::string t = (*s.list)[j]->type();
        if (t == "conv2d" && !flattened) break;
        if (t == "linear" && flattened) break;
        if (t == "flatten" && !flattened) {
            flattened = true;
            flattenAt = j;
            continue;
        }
        if (t == "batchnorm2d" && !flattened) {
            norms.push_back(j);
            continue;
        }
        if (t != "relu" && t != "gelu" && t != "dropout" && !(t == "maxpool2d" && !flattened))
            throw fail("a " + t + " layer stands between it and its consumer (only relu, gelu, dropout, maxpool2d, " +
                       "batchnorm2d and one flatten before a linear may)");
    }
    if (j == s.list->size())
        throw fail("no conv2d, or flatten then linear, follows it in the same sequence to take the shrunk channels");
    Layer& b = *(*s.list)[j];
    const nlohmann::json cb = b.config();
    if (b.type() == "conv2d" && cb.value("groups", std::int64_t(1)) != 1)
        throw fail("its consumer at index " + std::to_string(j) + " is a grouped or depthwise conv2d (groups " +
                   std::to_string(cb["groups"].get<std::int64_t>()) + "), whose channels cannot be cut apart here");
    Backend* be = m_model.backend();
    if (!be) throw fail("the model has no weights yet (initialise or load it first)");

    // Columns per channel of the consumer: KH*KW for a conv, H*W of the map reaching the flatten for a linear.
    std::int64_t block = 0;
    if (flattened) {
        const std::string prefix = path.substr(0, path.rfind('.') + 1);
        for (const LayerInfo& info : list())
            if (info.path == prefix + std::to_string(flattenAt)) {
                if (info.inputShape.size() != 4 || info.inputShape[1] != out)
                    throw fail("the flatten at index " + std::to_string(flattenAt) + " receives " +
                               shapeToString(info.inputShape) + ", expected (1, " + std::to_string(out) + ", H, W)");
                block = info.inputShape[2] * info.inputShape[3];
            }
        if (block == 0) throw fail("the shape at the flatten is unknown");
        if (cb["in"].get<std::int64_t>() != out * block)
            throw fail("the linear after the flatten takes " + std::to_string(cb["in"].get<std::int64_t>()) +
                       " inputs, not " + std::to_string(out) + " channels x " + std::to_string(block));
    }

    auto download = [&](Layer& l, const char* name) -> Tensor {
        Parameter* p = findParameter(l, name);
        if (!p) return Tensor();
        if (p->value.dtype() != DType::F32) throw fail(std::string("the ") + name + " is not f32");
        return be->download(p->value);
    };
    const Tensor wa = download(a, "weight"), ba = download(a, "bias"); // (out, C, KH, KW), (out)
    const Tensor wb = download(b, "weight"), bb = download(b, "bias"); // (O, out, KH', KW') or (O, out*H*W)
    const auto k = static_cast<std::int64_t>(keep.size());
    if (!flattened) block = wb.dim(2) * wb.dim(3); // KH' * KW'

    nlohmann::json na = ca, nb = cb;
    na["out"] = k;
    nb["in"] = flattened ? k * block : k;
    std::unique_ptr<Layer> newA = makeLayer(na), newB = makeLayer(nb);
    Shape sa = wa.shape();
    sa[0] = k;
    findParameter(*newA, "weight")->value = gatherBlocks(wa, 1, out, wa.numel() / out, keep, sa);
    if (ba.defined()) findParameter(*newA, "bias")->value = gatherBlocks(ba, 1, out, 1, keep, {k});
    Shape sb = wb.shape();
    sb[1] = flattened ? k * block : k;
    findParameter(*newB, "weight")->value = gatherBlocks(wb, wb.dim(0), out, block, keep, sb);
    if (bb.defined()) findParameter(*newB, "bias")->value = bb;

    std::vector<std::pair<std::size_t, std::unique_ptr<Layer>>> layers;
    layers.emplace_back(s.index, std::move(newA));
    layers.emplace_back(j, std::move(newB));
    // A batch norm keeps the kept channels' scale, shift and running statistics (its batch count unchanged).
    for (const std::size_t at : norms) {
        Layer& n = *(*s.list)[at];
        nlohmann::json cn = n.config();
        cn["features"] = k;
        std::unique_ptr<Layer> newN = makeLayer(cn);
        for (Parameter* p : n.parameters())
            findParameter(*newN, p->name)->value = gatherBlocks(be->download(p->value), 1, out, 1, keep, {k});
        for (Buffer* b : n.buffers()) {
            const Tensor host = b->value.isHost() ? b->value : be->download(b->value);
            findBuffer(*newN, b->name)->value =
                b->value.rank() == 1 ? gatherBlocks(host, 1, out, 1, keep, {k}) : host;
        }
        layers.emplace_back(at, std::move(newN));
    }
    return replaceInSequence(path, s, j, std::move(layers));
}

void ModelEditor::pruneAttentionHeads(const std::string& path, const std::vector<std::int64_t>& keepHeads) {
    auto fail = [&](const std::string& why) -> ConfigError {
        return ConfigError("model " + m_model.name() + ": prune heads of \"" + path + "\": " + why);
    };
    const Slot s = resolve(path);
    Layer& att = *(*s.list)[s.index];
    if (att.type() != "attention") throw fail("expected an attention layer, found " + att.type());
    const nlohmann::json ca = att.config();
    const std::int64_t heads = ca["heads"].get<std::int64_t>();
    if (const std::string why = keepProblem(keepHeads, heads); !why.empty())
        throw fail(why == "keep at least one unit" ? "an attention layer keeps at least one head" : why);
    if (s.index == 0 || (*s.list)[s.index - 1]->type() != "linear")
        throw fail("the layer right before it must be the fused QKV linear (D -> 3D), found " +
                   (s.index == 0 ? std::string("nothing") : (*s.list)[s.index - 1]->type()));
    if (s.index + 1 >= s.list->size() || (*s.list)[s.index + 1]->type() != "linear")
        throw fail("the layer right after it must be the output projection linear, found " +
                   (s.index + 1 >= s.list->size() ? std::string("nothing") : (*s.list)[s.index + 1]->type()));
    Layer& qkv = *(*s.list)[s.index - 1];
    Layer& proj = *(*s.list)[s.index + 1];
    const nlohmann::json cq = qkv.config(), cp = proj.config();
    const std::int64_t in = cq["in"].get<std::int64_t>(), d = cq["out"].get<std::int64_t>() / 3;
    const std::int64_t outP = cp["out"].get<std::int64_t>();
    if (cq["out"].get<std::int64_t>() != 3 * d || d % heads != 0 || cp["in"].get<std::int64_t>() != d)
        throw fail("expected linear(in, 3 D), attention with D divisible by heads = " + std::to_string(heads) +
                   ", linear(D, out); found linear(" + std::to_string(in) + ", " + cq["out"].dump() + ") and linear(" +
                   cp["in"].dump() + ", " + std::to_string(outP) + ")");
    Backend* be = m_model.backend();
    if (!be) throw fail("the model has no weights yet (initialise or load it first)");
    auto download = [&](Layer& l, const char* name) -> Tensor {
        Parameter* p = findParameter(l, name);
        if (!p) return Tensor();
        if (p->value.dtype() != DType::F32) throw fail(std::string("the projections' ") + name + " is not f32");
        return be->download(p->value);
    };
    const Tensor wq = download(qkv, "weight"), bq = download(qkv, "bias");   // (3D, in), (3D)
    const Tensor wp = download(proj, "weight"), bp = download(proj, "bias"); // (out, D), (out)

    // Q, K and V are the three column blocks of the attention's input, each head Dh consecutive columns of a block.
    const std::int64_t dh = d / heads, k = static_cast<std::int64_t>(keepHeads.size());
    std::vector<std::int64_t> rows, cols;
    for (std::int64_t block = 0; block < 3; ++block)
        for (std::int64_t h : keepHeads)
            for (std::int64_t c = 0; c < dh; ++c) rows.push_back(block * d + h * dh + c);
    for (std::int64_t h : keepHeads)
        for (std::int64_t c = 0; c < dh; ++c) cols.push_back(h * dh + c);

    nlohmann::json nq = cq, na = ca, np = cp;
    nq["out"] = 3 * k * dh;
    na["heads"] = k;
    np["in"] = k * dh;
    std::unique_ptr<Layer> newQ = makeLayer(nq), newA = makeLayer(na), newP = makeLayer(np);
    findParameter(*newQ, "weight")->value = gather2d(wq, rows, iota(in)); // (3 k Dh, in)
    if (bq.defined())
        findParameter(*newQ, "bias")->value =
            gather2d(bq.view({3 * d, 1}), rows, {0}).view({static_cast<std::int64_t>(rows.size())});
    findParameter(*newP, "weight")->value = gather2d(wp, iota(outP), cols); // (out, k Dh)
    if (bp.defined()) findParameter(*newP, "bias")->value = bp;

    std::vector<std::pair<std::size_t, std::unique_ptr<Layer>>> layers;
    layers.emplace_back(s.index - 1, std::move(newQ));
    layers.emplace_back(s.index, std::move(newA));
    layers.emplace_back(s.index + 1, std::move(newP));
    replaceInSequence(path, s, s.index + 1, std::move(layers));
}

} // namespace lathe
