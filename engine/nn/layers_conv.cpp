// Conv2d (weight (out, in / groups, kh, kw), NCHW) and MaxPool2d, both delegating the arithmetic to the backend.
#include "engine/nn/config_fields.h"
#include "engine/nn/layers_common.h"

namespace lathe::nnimpl {
namespace {

std::string pairJson(std::int64_t h, std::int64_t w) {
    return h == w ? std::to_string(h) : "[" + std::to_string(h) + ", " + std::to_string(w) + "]";
}

nlohmann::json pairValue(std::int64_t h, std::int64_t w) {
    if (h == w) return h;
    return nlohmann::json::array({h, w});
}

class Conv2d final : public Layer {
public:
    Conv2d(std::int64_t in, std::int64_t out, std::pair<std::int64_t, std::int64_t> kernel,
           std::pair<std::int64_t, std::int64_t> stride, std::pair<std::int64_t, std::int64_t> padding,
           std::int64_t groups, bool bias)
        : m_in(in), m_out(out), m_kernel(kernel), m_stride(stride), m_padding(padding), m_groups(groups),
          m_hasBias(bias) {
        m_weight.name = "weight";
        m_weight.value = hostZeros(weightShape());
        if (bias) {
            m_bias.name = "bias";
            m_bias.value = hostZeros({out});
        }
    }

    std::string type() const override { return "conv2d"; }
    nlohmann::json config() const override {
        nlohmann::json c = {{"type", "conv2d"}, {"in", m_in}, {"out", m_out},
                            {"kernel", pairValue(m_kernel.first, m_kernel.second)}};
        if (m_stride != std::make_pair<std::int64_t, std::int64_t>(1, 1))
            c["stride"] = pairValue(m_stride.first, m_stride.second);
        if (m_padding != std::make_pair<std::int64_t, std::int64_t>(0, 0))
            c["padding"] = pairValue(m_padding.first, m_padding.second);
        if (m_groups != 1) c["groups"] = m_groups;
        if (!m_hasBias) c["bias"] = false;
        return c;
    }

    // PyTorch's layout: (out, in / groups, kh, kw).
    Shape weightShape() const { return {m_out, m_in / m_groups, m_kernel.first, m_kernel.second}; }

    Conv2dGeometry geometry(const Shape& input) const {
        if (input.size() != 4 || input[1] != m_in)
            shapeError("conv2d", "(N, " + std::to_string(m_in) + ", H, W)", input);
        Conv2dGeometry g;
        g.batch = input[0];
        g.inChannels = m_in;
        g.height = input[2];
        g.width = input[3];
        g.outChannels = m_out;
        g.kernelH = m_kernel.first;
        g.kernelW = m_kernel.second;
        g.strideH = m_stride.first;
        g.strideW = m_stride.second;
        g.padH = m_padding.first;
        g.padW = m_padding.second;
        g.groups = m_groups;
        if (g.height + 2 * g.padH < g.kernelH || g.width + 2 * g.padW < g.kernelW)
            shapeError("conv2d with kernel " + pairJson(g.kernelH, g.kernelW) + " and padding " +
                           pairJson(g.padH, g.padW),
                       "an input at least as large as the kernel", input);
        return g;
    }

    Shape outputShape(const Shape& input) const override {
        const auto g = geometry(input);
        return {g.batch, g.outChannels, g.outH(), g.outW()};
    }

    Tensor forward(Backend& be, const Tensor& x, const ForwardContext& ctx) override {
        const auto g = geometry(x.shape());
        Tensor y = be.empty({g.batch, g.outChannels, g.outH(), g.outW()}); // (N, K, OH, OW)
        be.conv2dForward(x, m_weight.value, y, g);
        if (m_hasBias) be.biasAdd(y, m_bias.value);
        if (ctx.training) m_x = x;
        return y;
    }

    Tensor backward(Backend& be, const Tensor& dy) override {
        requireCache(m_x, "conv2d");
        const auto g = geometry(m_x.shape());
        be.conv2dBackwardWeight(m_x, dy, m_weight.grad, g, true);
        if (m_hasBias) be.biasGrad(dy, m_bias.grad, true);
        Tensor dx = be.empty(m_x.shape()); // (N, C, H, W)
        be.conv2dBackwardData(dy, m_weight.value, dx, g);
        return dx;
    }

    std::vector<Parameter*> parameters() override {
        if (m_hasBias) return {&m_weight, &m_bias};
        return {&m_weight};
    }

    void initialize(Backend& be, Rng& rng) override {
        // PyTorch's fan_in of a grouped convolution: the input channels one output channel sees.
        const float bound = kaimingBound(m_in / m_groups * m_kernel.first * m_kernel.second);
        m_weight.value = uniformTensor(be, rng, weightShape(), bound);
        if (m_hasBias) m_bias.value = uniformTensor(be, rng, {m_out}, bound);
    }

    void releaseCache() override { m_x = Tensor(); }

private:
    std::int64_t m_in, m_out;
    std::pair<std::int64_t, std::int64_t> m_kernel, m_stride, m_padding;
    std::int64_t m_groups;
    bool m_hasBias;
    Parameter m_weight, m_bias;
    Tensor m_x; // (N, C, H, W)
};

class MaxPool2d final : public Layer {
public:
    MaxPool2d(std::pair<std::int64_t, std::int64_t> kernel, std::pair<std::int64_t, std::int64_t> stride,
              std::pair<std::int64_t, std::int64_t> padding)
        : m_kernel(kernel), m_stride(stride), m_padding(padding) {}

    std::string type() const override { return "maxpool2d"; }
    nlohmann::json config() const override {
        nlohmann::json c = {{"type", "maxpool2d"}, {"kernel", pairValue(m_kernel.first, m_kernel.second)}};
        if (m_stride != m_kernel) c["stride"] = pairValue(m_stride.first, m_stride.second);
        if (m_padding != std::make_pair<std::int64_t, std::int64_t>(0, 0))
            c["padding"] = pairValue(m_padding.first, m_padding.second);
        return c;
    }

    Pool2dGeometry geometry(const Shape& input) const {
        if (input.size() != 4) shapeError("maxpool2d", "(N, C, H, W)", input);
        Pool2dGeometry g;
        g.batch = input[0];
        g.channels = input[1];
        g.height = input[2];
        g.width = input[3];
        g.kernelH = m_kernel.first;
        g.kernelW = m_kernel.second;
        g.strideH = m_stride.first;
        g.strideW = m_stride.second;
        g.padH = m_padding.first;
        g.padW = m_padding.second;
        if (g.height + 2 * g.padH < g.kernelH || g.width + 2 * g.padW < g.kernelW)
            shapeError("maxpool2d with kernel " + pairJson(g.kernelH, g.kernelW),
                       "an input at least as large as the kernel", input);
        return g;
    }

    Shape outputShape(const Shape& input) const override {
        const auto g = geometry(input);
        return {g.batch, g.channels, g.outH(), g.outW()};
    }

    Tensor forward(Backend& be, const Tensor& x, const ForwardContext& ctx) override {
        const auto g = geometry(x.shape());
        const Shape out = {g.batch, g.channels, g.outH(), g.outW()};
        Tensor y = be.empty(out);                     // (N, C, OH, OW)
        Tensor argmax = be.empty(out, DType::I32);    // (N, C, OH, OW) flat index in the (H, W) plane
        be.maxPool2dForward(x, y, argmax, g);
        if (ctx.training) {
            m_argmax = argmax;
            m_inputShape = x.shape();
        }
        return y;
    }

    Tensor backward(Backend& be, const Tensor& dy) override {
        requireCache(m_argmax, "maxpool2d");
        const auto g = geometry(m_inputShape);
        Tensor dx = be.empty(m_inputShape); // (N, C, H, W)
        be.maxPool2dBackward(dy, m_argmax, dx, g);
        return dx;
    }

    void releaseCache() override { m_argmax = Tensor(); }

private:
    std::pair<std::int64_t, std::int64_t> m_kernel, m_stride, m_padding;
    Tensor m_argmax;
    Shape m_inputShape;
};

} // namespace

std::unique_ptr<Layer> makeConv2d(const nlohmann::json& c, const std::string& ptr) {
    nnconfig::onlyKeys(c, ptr, {"type", "in", "out", "kernel", "stride", "padding", "groups", "bias"});
    const std::int64_t one = 1, zero = 0;
    const std::int64_t in = nnconfig::integer(c, "in", ptr, 1), out = nnconfig::integer(c, "out", ptr, 1);
    const std::int64_t groups = nnconfig::integerOr(c, "groups", ptr, 1, 1);
    // As nn.Conv2d: both channel counts split evenly into the groups.
    if (in % groups != 0 || out % groups != 0)
        nnconfig::fail(ptr + "/groups", "must divide both in (" + std::to_string(in) + ") and out (" +
                                            std::to_string(out) + "), got " + std::to_string(groups));
    return std::make_unique<Conv2d>(in, out, nnconfig::pair2(c, "kernel", ptr, 1),
                                    nnconfig::pair2(c, "stride", ptr, 1, &one),
                                    nnconfig::pair2(c, "padding", ptr, 0, &zero), groups,
                                    nnconfig::boolean(c, "bias", ptr, true));
}

std::unique_ptr<Layer> makeMaxPool2d(const nlohmann::json& c, const std::string& ptr) {
    nnconfig::onlyKeys(c, ptr, {"type", "kernel", "stride", "padding"});
    const std::int64_t zero = 0;
    const auto kernel = nnconfig::pair2(c, "kernel", ptr, 1);
    // PyTorch: stride defaults to the kernel size.
    const auto stride = c.contains("stride") ? nnconfig::pair2(c, "stride", ptr, 1) : kernel;
    const auto padding = nnconfig::pair2(c, "padding", ptr, 0, &zero);
    if (padding.first * 2 > kernel.first || padding.second * 2 > kernel.second)
        nnconfig::fail(ptr + "/padding", "must be at most half the kernel size (as in PyTorch)");
    return std::make_unique<MaxPool2d>(kernel, stride, padding);
}

} // namespace lathe::nnimpl
