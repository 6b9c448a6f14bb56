// ADM UNet / EncoderUNet on plain ATen ops with guided-diffusion parameter names. See unet.h.
#include <daug/adm/unet.h>

#include <daug/error.h>
#include <daug/int_range.h>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cmath>
#include <optional>

namespace daug::adm {

namespace {


/// Collects parameters by name. Initial values are drawn on the CPU from the CPU generator (`host`), then moved to
/// the model device (`opt`) and made leaves requiring grad: CPU and CUDA runs with one seed start from the same
/// weights.
struct Params {
  NamedTensors list;
  at::TensorOptions opt;
  const at::TensorOptions host = at::TensorOptions().dtype(at::kFloat).device(at::kCPU);
  bool training = false;
  bool checkpoint = false;  // gradient checkpointing of the input/middle/output blocks (set_gradient_checkpointing)
  at::MemoryFormat format = at::MemoryFormat::Contiguous;  // of the torso's activations (set_memory_format)
  at::ScalarType compute = at::kFloat;  // dtype of the torso (input/middle/output blocks); heads stay float32

  at::Tensor add(const std::string& name, at::Tensor init) {
    at::Tensor t = init.to(opt).detach();
    t.set_requires_grad(true);
    list.emplace_back(name, t);
    return t;
  }
  // PyTorch default init for Conv/Linear: U(−1/√fan_in, 1/√fan_in) for weight and bias.
  at::Tensor uniform(const std::string& name, at::IntArrayRef shape, int64_t fan_in, bool zero) {
    if (zero) return add(name, at::zeros(shape, host));
    const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
    return add(name, at::empty(shape, host).uniform_(-bound, bound));
  }
  // The accessors UNetModel and EncoderUNetModel share.
  std::vector<at::Tensor> tensors() const {
    std::vector<at::Tensor> r;
    for (const auto& kv : list) r.push_back(kv.second);
    return r;
  }
  int64_t numel() const {
    int64_t n = 0;
    for (const auto& kv : list) n += kv.second.numel();
    return n;
  }
  // `model` ("UNet", "EncoderUNet") names the network in the error.
  void set_compute(at::ScalarType dtype, const char* model) {
    DAUG_CHECK(dtype == at::kFloat || dtype == at::kHalf || dtype == at::kBFloat16, model,
               " compute dtype must be float32, float16 or bfloat16");
    compute = dtype;
  }
};


struct Conv2d {
  at::Tensor w, b;
  int64_t stride = 1, pad = 0;
  Conv2d() = default;
  Conv2d(Params& P, const std::string& name, int64_t in, int64_t out, int64_t k, int64_t stride_, bool zero = false)
      : stride(stride_), pad(k / 2) {
    w = P.uniform(name + ".weight", {out, in, k, k}, in * k * k, zero);
    b = P.uniform(name + ".bias", {out}, in * k * k, zero);
  }
  // Weights are float32 masters; a reduced-precision torso (set_compute_dtype) casts them on the fly.
  at::Tensor operator()(const at::Tensor& x) const {
    if (x.scalar_type() == w.scalar_type()) return at::conv2d(x, w, b, {stride, stride}, {pad, pad});
    return at::conv2d(x, w.to(x.scalar_type()), b.to(x.scalar_type()), {stride, stride}, {pad, pad});
  }
};

/// conv_nd(1, in, out, 1): weight [out, in, 1], applied to [N, in, T] as a batched matmul.
struct Conv1x1 {
  at::Tensor w, b;
  Conv1x1() = default;
  Conv1x1(Params& P, const std::string& name, int64_t in, int64_t out, bool zero = false) {
    w = P.uniform(name + ".weight", {out, in, 1}, in, zero);
    b = P.uniform(name + ".bias", {out}, in, zero);
  }
  at::Tensor operator()(const at::Tensor& x) const {
    const auto dt = x.scalar_type();
    return at::matmul(w.squeeze(-1).to(dt), x) + b.unsqueeze(-1).to(dt);
  }
};

struct Linear {
  at::Tensor w, b;
  Linear() = default;
  Linear(Params& P, const std::string& name, int64_t in, int64_t out) {
    w = P.uniform(name + ".weight", {out, in}, in, false);
    b = P.uniform(name + ".bias", {out}, in, false);
  }
  at::Tensor operator()(const at::Tensor& x) const { return at::linear(x, w, b); }
};

/// GroupNorm32: 32 groups, eps 1e-5, computed in float32 and cast back (nn.py).
struct GroupNorm32 {
  at::Tensor w, b;
  GroupNorm32() = default;
  GroupNorm32(Params& P, const std::string& name, int64_t ch) {
    w = P.add(name + ".weight", at::ones({ch}, P.host));
    b = P.add(name + ".bias", at::zeros({ch}, P.host));
  }
  at::Tensor operator()(const at::Tensor& x) const {
    return at::group_norm(x.to(at::kFloat), 32, w.to(at::kFloat), b.to(at::kFloat), 1e-5).to(x.scalar_type());
  }
};

at::Tensor upsample2x(const at::Tensor& x) {  // nearest, scale 2
  const auto n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  at::Tensor r = x.unsqueeze(3).unsqueeze(5).expand({n, c, h, 2, w, 2}).reshape({n, c, 2 * h, 2 * w});
  // Keep a channels-last torso channels-last (an exact copy either way).
  return x.is_contiguous() ? r : r.contiguous(x.suggest_memory_format());
}
at::Tensor downsample2x(const at::Tensor& x) { return at::avg_pool2d(x, {2, 2}, {2, 2}); }

/// q, k, v per head [B·H, ch, T] → attention output [B, H·ch, T]; scale ch^(-1/4) on both, softmax in float32.
at::Tensor attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t bs, int64_t length) {
  const double scale = 1.0 / std::sqrt(std::sqrt(static_cast<double>(q.size(1))));
  at::Tensor weight = at::bmm((q * scale).transpose(1, 2), k * scale);  // bct,bcs->bts
  weight = at::softmax(weight.to(at::kFloat), -1).to(weight.scalar_type());
  at::Tensor a = at::bmm(v, weight.transpose(1, 2));  // bts,bcs->bct
  return a.reshape({bs, -1, length});
}

/// QKVAttentionLegacy: qkv channels laid out [h0: q,k,v | h1: q,k,v | ...].
at::Tensor qkv_attention_legacy(const at::Tensor& qkv, int64_t heads) {
  const int64_t bs = qkv.size(0), width = qkv.size(1), length = qkv.size(2);
  const int64_t ch = width / (3 * heads);
  auto parts = qkv.reshape({bs * heads, ch * 3, length}).split(ch, 1);
  return attend(parts[0], parts[1], parts[2], bs, length);
}

/// QKVAttention (new order): qkv channels laid out [q_all | k_all | v_all].
at::Tensor qkv_attention_new(const at::Tensor& qkv, int64_t heads) {
  const int64_t bs = qkv.size(0), width = qkv.size(1), length = qkv.size(2);
  const int64_t ch = width / (3 * heads);
  auto parts = qkv.chunk(3, 1);
  return attend(parts[0].reshape({bs * heads, ch, length}), parts[1].reshape({bs * heads, ch, length}),
                parts[2].reshape({bs * heads, ch, length}), bs, length);
}

struct Layer {
  virtual ~Layer() = default;
  virtual at::Tensor forward(const at::Tensor& x, const at::Tensor& emb, bool training) const = 0;
};

struct ConvLayer : Layer {
  Conv2d conv;
  explicit ConvLayer(Conv2d c) : conv(std::move(c)) {}
  at::Tensor forward(const at::Tensor& x, const at::Tensor&, bool) const override { return conv(x); }
};

// guided-diffusion Downsample (up = false: stride-2 3×3 conv `<name>.op`, or 2×2 average pooling) and Upsample
// (up = true: nearest 2×, then optionally a 3×3 conv `<name>.conv`).
struct Resample : Layer {
  bool up, use_conv;
  Conv2d conv;
  Resample(Params& P, const std::string& name, int64_t ch, bool use_conv_, int64_t out, bool up_)
      : up(up_), use_conv(use_conv_) {
    if (use_conv) conv = up ? Conv2d(P, name + ".conv", ch, out, 3, 1) : Conv2d(P, name + ".op", ch, out, 3, 2);
  }
  at::Tensor forward(const at::Tensor& x, const at::Tensor&, bool) const override {
    at::Tensor h = up ? upsample2x(x) : x;
    return use_conv ? conv(h) : up ? h : downsample2x(h);
  }
};

struct ResBlock : Layer {
  GroupNorm32 in_norm, out_norm;
  Conv2d in_conv, out_conv, skip;
  Linear emb_lin;
  bool has_skip = false, scale_shift = false;
  int updown = 0;  // 1 up, 2 down
  double dropout = 0.0;

  ResBlock(Params& P, const std::string& n, int64_t ch, int64_t emb_ch, double dropout_, int64_t out_ch,
           bool use_scale_shift_norm, bool up, bool down)
      : scale_shift(use_scale_shift_norm), updown(up ? 1 : (down ? 2 : 0)), dropout(dropout_) {
    in_norm = GroupNorm32(P, n + ".in_layers.0", ch);
    in_conv = Conv2d(P, n + ".in_layers.2", ch, out_ch, 3, 1);
    emb_lin = Linear(P, n + ".emb_layers.1", emb_ch, use_scale_shift_norm ? 2 * out_ch : out_ch);
    out_norm = GroupNorm32(P, n + ".out_layers.0", out_ch);
    out_conv = Conv2d(P, n + ".out_layers.3", out_ch, out_ch, 3, 1, /*zero=*/true);
    if (out_ch != ch) {
      has_skip = true;
      skip = Conv2d(P, n + ".skip_connection", ch, out_ch, 1, 1);
    }
  }

  at::Tensor forward(const at::Tensor& x_in, const at::Tensor& emb, bool training) const override {
    at::Tensor x = x_in;
    at::Tensor h = at::silu(in_norm(x));
    if (updown == 1) {
      h = upsample2x(h);
      x = upsample2x(x);
    } else if (updown == 2) {
      h = downsample2x(h);
      x = downsample2x(x);
    }
    h = in_conv(h);
    at::Tensor e = emb_lin(at::silu(emb)).to(h.scalar_type()).unsqueeze(-1).unsqueeze(-1);
    if (scale_shift) {
      auto ss = e.chunk(2, 1);
      h = out_norm(h) * (1 + ss[0]) + ss[1];
      h = at::silu(h);
    } else {
      h = at::silu(out_norm(h + e));
    }
    if (dropout > 0.0) h = at::dropout(h, dropout, training);
    h = out_conv(h);
    return (has_skip ? skip(x) : x) + h;
  }
};

struct AttentionBlock : Layer {
  GroupNorm32 norm;
  Conv1x1 qkv, proj_out;
  int64_t heads = 1;
  bool new_order = false;

  AttentionBlock(Params& P, const std::string& n, int64_t ch, int64_t num_heads, int64_t num_head_channels,
                 bool new_order_)
      : heads(num_head_channels == -1 ? num_heads : ch / num_head_channels), new_order(new_order_) {
    norm = GroupNorm32(P, n + ".norm", ch);
    qkv = Conv1x1(P, n + ".qkv", ch, 3 * ch);
    proj_out = Conv1x1(P, n + ".proj_out", ch, ch, /*zero=*/true);
  }

  at::Tensor forward(const at::Tensor& x_in, const at::Tensor&, bool) const override {
    const auto sizes = x_in.sizes().vec();
    at::Tensor x = x_in.reshape({sizes[0], sizes[1], -1});
    at::Tensor q = qkv(norm(x));
    at::Tensor h = new_order ? qkv_attention_new(q, heads) : qkv_attention_legacy(q, heads);
    at::Tensor out = (x + proj_out(h)).reshape(sizes);
    return x_in.is_contiguous() ? out : out.contiguous(x_in.suggest_memory_format());
  }
};

struct Sequential {
  std::vector<std::unique_ptr<Layer>> layers;
  std::vector<at::Tensor> params;  // the block's parameters (set by Trunk::collect_block_params), for checkpointing
  bool stochastic = false;         // uses the global RNG in training (dropout): checkpointing replays the RNG state
  at::Tensor forward(at::Tensor h, const at::Tensor& emb, bool training) const {
    for (const auto& l : layers) h = l->forward(h, emb, training);
    return h;
  }
};

/// Gradient checkpointing of one block (LibTorch has no torch.utils.checkpoint): forward runs the block without
/// recording a graph and keeps only its inputs; backward re-runs it with grad enabled (replaying the RNG state when
/// the block draws random numbers) and backpropagates the incoming gradient through the recomputed graph. The
/// parameters are inputs of this node, so their gradients flow like any other (backward() accumulates them,
/// autograd::grad can ask for them) and match the plain forward's exactly (the same ops in the same order).
struct CheckpointBlock : torch::autograd::Function<CheckpointBlock> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const Sequential* block,
                                                bool training, const at::Tensor& h, const at::Tensor& emb,
                                                at::TensorList /*params: inputs of the node, used by backward*/) {
    ctx->saved_data["block"] = reinterpret_cast<int64_t>(block);
    ctx->saved_data["training"] = training;
    ctx->saved_data["h_grad"] = h.requires_grad();
    ctx->saved_data["emb_grad"] = emb.requires_grad();
    if (training && block->stochastic) {
      at::Generator gen = at::globalContext().defaultGenerator(h.device());
      std::lock_guard<std::mutex> lock(gen.mutex());
      ctx->saved_data["rng"] = gen.get_state();
    }
    ctx->save_for_backward({h, emb});
    return {block->forward(h, emb, training)};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_out) {
    const auto* block = reinterpret_cast<const Sequential*>(ctx->saved_data["block"].toInt());
    const bool training = ctx->saved_data["training"].toBool();
    auto saved = ctx->get_saved_variables();
    at::Tensor h = saved[0].detach().requires_grad_(ctx->saved_data["h_grad"].toBool());
    at::Tensor emb = saved[1].detach().requires_grad_(ctx->saved_data["emb_grad"].toBool());
    std::optional<at::Tensor> rng_now;
    at::Generator gen = at::globalContext().defaultGenerator(h.device());
    if (ctx->saved_data.count("rng")) {  // replay the forward's random draws, then put the generator back
      std::lock_guard<std::mutex> lock(gen.mutex());
      rng_now = gen.get_state();
      gen.set_state(ctx->saved_data["rng"].toTensor());
    }
    at::Tensor out;
    {
      at::AutoGradMode on(true);
      out = block->forward(h, emb, training);
    }
    if (rng_now) {
      std::lock_guard<std::mutex> lock(gen.mutex());
      gen.set_state(*rng_now);
    }
    // Inputs that take part in the graph; the others get an undefined gradient.
    std::vector<at::Tensor> wrt;
    std::vector<size_t> where;  // index in the returned list: 0 block, 1 training, 2 h, 3 emb, 4.. params
    // needs_input_grad (indexed over the tensor inputs only: h, emb, params): autograd::grad w.r.t. x alone (the
    // guidance) skips the parameter gradients.
    if (h.requires_grad() && ctx->needs_input_grad(0)) wrt.push_back(h), where.push_back(2);
    if (emb.requires_grad() && ctx->needs_input_grad(1)) wrt.push_back(emb), where.push_back(3);
    for (size_t i = 0; i < block->params.size(); ++i)
      if (block->params[i].requires_grad() && ctx->needs_input_grad(2 + i))
        wrt.push_back(block->params[i]), where.push_back(4 + i);
    torch::autograd::variable_list result(4 + block->params.size());
    if (!wrt.empty() && out.requires_grad()) {
      auto g = torch::autograd::grad({out}, wrt, {grad_out[0]}, /*retain_graph=*/false, /*create_graph=*/false,
                                     /*allow_unused=*/true);
      for (size_t k = 0; k < g.size(); ++k) result[where[k]] = g[k];
    }
    return result;
  }
};

/// Runs `block` checkpointed when asked and a graph is being recorded (sampling under no-grad is unaffected).
at::Tensor run_block(const Sequential& block, const at::Tensor& h, const at::Tensor& emb, bool training,
                     bool checkpoint) {
  if (!checkpoint || !at::GradMode::is_enabled()) return block.forward(h, emb, training);
  // TensorList (not std::vector): only then does autograd count each parameter as an input of the node.
  return CheckpointBlock::apply(&block, training, h, emb, at::TensorList(block.params))[0];
}

/// The parts UNetModel and EncoderUNetModel share: time embedding, input blocks, middle block.
struct Trunk {
  UNetConfig cfg;
  Params P;
  Linear te0, te2;
  std::vector<Sequential> input_blocks;
  Sequential middle;
  std::vector<int64_t> input_block_chans;
  int64_t ch = 0, ds = 1, time_embed_dim = 0;

  Trunk(const UNetConfig& c, const at::Device& device) : cfg(c) {
    P.opt = at::TensorOptions().dtype(at::kFloat).device(device);
    time_embed_dim = cfg.model_channels * 4;
    te0 = Linear(P, "time_embed.0", cfg.model_channels, time_embed_dim);
    te2 = Linear(P, "time_embed.2", time_embed_dim, time_embed_dim);
  }

  int64_t mult_ch(double m) const { return static_cast<int64_t>(m * static_cast<double>(cfg.model_channels)); }

  void build_encoder_half() {
    const auto attn = cfg.attention_ds();
    auto has_attn = [&](int64_t d) { return std::find(attn.begin(), attn.end(), d) != attn.end(); };
    ch = mult_ch(cfg.channel_mult[0]);
    {
      Sequential s;
      s.layers.push_back(std::make_unique<ConvLayer>(Conv2d(P, "input_blocks.0.0", cfg.in_channels, ch, 3, 1)));
      input_blocks.push_back(std::move(s));
    }
    input_block_chans = {ch};
    ds = 1;
    for (size_t level = 0; level < cfg.channel_mult.size(); ++level) {
      for (int64_t r = 0; r < cfg.num_res_blocks; ++r) {
        const std::string n = "input_blocks." + std::to_string(input_blocks.size());
        Sequential s;
        const int64_t out = mult_ch(cfg.channel_mult[level]);
        s.layers.push_back(std::make_unique<ResBlock>(P, n + ".0", ch, time_embed_dim, cfg.dropout, out,
                                                      cfg.use_scale_shift_norm, false, false));
        ch = out;
        if (has_attn(ds))
          s.layers.push_back(std::make_unique<AttentionBlock>(P, n + ".1", ch, cfg.num_heads, cfg.num_head_channels,
                                                              cfg.use_new_attention_order));
        input_blocks.push_back(std::move(s));
        input_block_chans.push_back(ch);
      }
      if (level + 1 != cfg.channel_mult.size()) {
        const std::string n = "input_blocks." + std::to_string(input_blocks.size()) + ".0";
        Sequential s;
        if (cfg.resblock_updown)
          s.layers.push_back(std::make_unique<ResBlock>(P, n, ch, time_embed_dim, cfg.dropout, ch,
                                                        cfg.use_scale_shift_norm, false, true));
        else
          s.layers.push_back(std::make_unique<Resample>(P, n, ch, cfg.conv_resample, ch, /*up=*/false));
        input_blocks.push_back(std::move(s));
        input_block_chans.push_back(ch);
        ds *= 2;
      }
    }
    middle.layers.push_back(std::make_unique<ResBlock>(P, "middle_block.0", ch, time_embed_dim, cfg.dropout, ch,
                                                       cfg.use_scale_shift_norm, false, false));
    middle.layers.push_back(std::make_unique<AttentionBlock>(P, "middle_block.1", ch, cfg.num_heads,
                                                             cfg.num_head_channels, cfg.use_new_attention_order));
    middle.layers.push_back(std::make_unique<ResBlock>(P, "middle_block.2", ch, time_embed_dim, cfg.dropout, ch,
                                                       cfg.use_scale_shift_norm, false, false));
  }

  // Gives each block its parameters (by guided-diffusion name prefix: "input_blocks.3.", "middle_block.", ...).
  static void collect(const NamedTensors& list, Sequential& s, const std::string& prefix, double dropout) {
    for (const auto& [k, v] : list)
      if (k.rfind(prefix, 0) == 0) s.params.push_back(v);
    s.stochastic = dropout > 0.0;
  }
  void collect_block_params() {
    for (size_t i = 0; i < input_blocks.size(); ++i)
      collect(P.list, input_blocks[i], "input_blocks." + std::to_string(i) + ".", cfg.dropout);
    collect(P.list, middle, "middle_block.", cfg.dropout);
  }

  at::Tensor embed_time(const at::Tensor& t, const at::Tensor& x) const {
    DAUG_CHECK(t.dim() == 1 && t.size(0) == x.size(0), "timesteps must have shape [", x.size(0), "], but got ",
               t.sizes());
    return te2(at::silu(te0(timestep_embedding(t.to(x.device()), cfg.model_channels))));
  }

  void check_input(const at::Tensor& x, const char* what) const {
    DAUG_CHECK(x.dim() == 4 && x.size(1) == cfg.in_channels && x.size(2) % (int64_t{1} << (cfg.channel_mult.size() - 1)) == 0 &&
                   x.size(3) % (int64_t{1} << (cfg.channel_mult.size() - 1)) == 0,
               what, ": input must be [N, ", cfg.in_channels, ", H, W] with H and W divisible by ",
               (int64_t{1} << (cfg.channel_mult.size() - 1)), ", but got ", x.sizes());
  }
};

}  // namespace

// ---------------------------------------------------------------------------------------------------------

std::vector<int64_t> UNetConfig::attention_ds() const {
  std::vector<int64_t> r;
  for (int64_t res : attention_resolutions) r.push_back(image_size / res);
  return r;
}

void UNetConfig::validate(const std::string& where, bool encoder) const {
  auto fail = [&](const std::string& msg) { throw ConfigError(where + ": " + msg); };
  if (image_size < 1) fail("image_size must be >= 1, but got " + std::to_string(image_size));
  if (in_channels < 1) fail("in_channels must be >= 1, but got " + std::to_string(in_channels));
  if (out_channels < 1) fail("out_channels must be >= 1, but got " + std::to_string(out_channels));
  if (model_channels < 1) fail("num_channels must be >= 1, but got " + std::to_string(model_channels));
  if (num_res_blocks < 1) fail("num_res_blocks must be >= 1, but got " + std::to_string(num_res_blocks));
  if (channel_mult.empty()) fail("channel_mult must not be empty");
  const int64_t down = int64_t{1} << (channel_mult.size() - 1);
  if (image_size % down != 0)
    fail("image_size " + std::to_string(image_size) + " must be divisible by 2^(levels-1) = " + std::to_string(down) +
         " for " + std::to_string(channel_mult.size()) + " channel_mult levels");
  for (int64_t r : attention_resolutions)
    if (r < 1) fail("attention_resolutions must be >= 1, but got " + std::to_string(r));
  if (dropout < 0 || dropout >= 1) fail("dropout must be in [0, 1), but got " + std::to_string(dropout));
  for (double m : channel_mult) {
    const double c = m * static_cast<double>(model_channels);
    if (m <= 0 || c != std::floor(c))
      fail("channel_mult entries must be > 0 and give whole channel counts with num_channels " +
           std::to_string(model_channels) + ", but got " + std::to_string(m));
    if (static_cast<int64_t>(c) % 32 != 0)
      fail("every level's channel count must be divisible by 32 (GroupNorm32), but num_channels " +
           std::to_string(model_channels) + " x channel_mult " + std::to_string(m) + " = " +
           std::to_string(static_cast<int64_t>(c)));
  }
  // Attention runs at the levels whose ds is listed, in the middle block (last level) and in the attention pool.
  const auto attn = attention_ds();
  for (size_t level = 0; level < channel_mult.size(); ++level) {
    const int64_t ds = int64_t{1} << level;
    const bool last = level + 1 == channel_mult.size();
    if (!last && std::find(attn.begin(), attn.end(), ds) == attn.end()) continue;
    const int64_t ch = static_cast<int64_t>(channel_mult[level] * static_cast<double>(model_channels));
    if (num_head_channels > 0 && ch % num_head_channels != 0)
      fail("attention at level " + std::to_string(level) + ": channels " + std::to_string(ch) +
           " are not divisible by num_head_channels " + std::to_string(num_head_channels));
    if (num_head_channels <= 0 && (num_heads < 1 || ch % num_heads != 0))
      fail("attention at level " + std::to_string(level) + ": channels " + std::to_string(ch) +
           " are not divisible by num_heads " + std::to_string(num_heads));
  }
  if (encoder) {
    if (pool != "attention" && pool != "adaptive")
      fail("pool must be one of: attention, adaptive, but got '" + pool + "'");
    if (pool == "attention" && num_head_channels <= 0)
      fail("pool = \"attention\" needs num_head_channels > 0 (guided-diffusion asserts it), but got " +
           std::to_string(num_head_channels));
    if (num_classes != 0) fail("the encoder is not class-conditional (num_classes must be 0)");
  } else {
    if (num_classes < 0) fail("num_classes must be >= 0 (0 = unconditional), but got " + std::to_string(num_classes));
  }
}

namespace {
// What the UNet and classifier presets share: all of `tiny` but the heads (32 px, 32 channels, mult {1, 2}, one res
// block, attention at 16), the image size and channel multipliers of wolleb256/daug512, one input channel and the
// legacy attention order. An unknown name throws ConfigError naming `kind`.
UNetConfig preset_shape(const std::string& name, const std::string& kind) {
  UNetConfig c;
  if (name == "tiny") {
    c.image_size = 32;
    c.model_channels = 32;
    c.channel_mult = {1, 2};
    c.num_res_blocks = 1;
    c.attention_resolutions = {16};
  } else if (name == "wolleb256" || name == "daug512") {
    c.image_size = name == "daug512" ? 512 : 256;
    c.channel_mult = {1, 1, 2, 2, 4, 4};
  } else {
    throw ConfigError("unknown " + kind + " preset '" + name + "'; known: tiny, wolleb256, daug512");
  }
  c.in_channels = 1;
  c.use_new_attention_order = false;
  return c;
}
}  // namespace

UNetConfig unet_preset(const std::string& name) {
  UNetConfig c = preset_shape(name, "UNet");
  if (name != "tiny") {
    c.model_channels = 128;
    c.num_res_blocks = 2;
    c.attention_resolutions = {16};
  }
  c.out_channels = 2;  // learn_sigma
  c.num_classes = 2;
  c.num_heads = 1;
  c.num_head_channels = -1;
  c.use_scale_shift_norm = false;
  c.resblock_updown = false;
  c.dropout = 0.0;
  return c;
}

UNetConfig encoder_preset(const std::string& name) {
  UNetConfig c = preset_shape(name, "classifier");
  if (name == "tiny") {
    c.num_head_channels = 32;
  } else {
    c.model_channels = 32;
    c.num_res_blocks = 4;
    c.attention_resolutions = {32, 16, 8};
    c.num_head_channels = 64;
  }
  c.out_channels = 7;
  c.num_classes = 0;
  c.use_scale_shift_norm = true;
  c.resblock_updown = true;
  c.pool = "attention";
  return c;
}

at::Tensor qkv_attention(const at::Tensor& qkv, int64_t heads, bool new_order) {
  DAUG_CHECK(qkv.dim() == 3 && heads >= 1 && qkv.size(1) % (3 * heads) == 0, "qkv must be [N, 3*H*ch, T] with H = ",
             heads, ", but got ", qkv.sizes());
  return new_order ? qkv_attention_new(qkv, heads) : qkv_attention_legacy(qkv, heads);
}

at::Tensor timestep_embedding(const at::Tensor& t, int64_t dim, double max_period) {
  const int64_t half = dim / 2;
  at::Tensor freqs =
      (-std::log(max_period) * at::arange(0, half, t.options().dtype(at::kFloat)) / static_cast<double>(half)).exp();
  at::Tensor args = t.to(at::kFloat).unsqueeze(1) * freqs.unsqueeze(0);
  at::Tensor emb = at::cat({args.cos(), args.sin()}, -1);
  if (dim % 2) emb = at::cat({emb, at::zeros_like(emb.narrow(1, 0, 1))}, -1);
  return emb;
}

// ---------------------------------------------------------------------------------------------------------

struct UNetModel::Impl : Trunk {
  at::Tensor label_emb;
  std::vector<Sequential> output_blocks;
  GroupNorm32 out_norm;
  Conv2d out_conv;

  Impl(const UNetConfig& c, const at::Device& device) : Trunk(c, device) {
    cfg.validate("UNet", false);
    if (cfg.num_classes > 0)
      label_emb = P.add("label_emb.weight", at::randn({cfg.num_classes, time_embed_dim}, P.host));
    build_encoder_half();
    const auto attn = cfg.attention_ds();
    auto has_attn = [&](int64_t d) { return std::find(attn.begin(), attn.end(), d) != attn.end(); };
    const int64_t heads_up = cfg.num_heads_upsample == -1 ? cfg.num_heads : cfg.num_heads_upsample;
    for (int64_t level = static_cast<int64_t>(cfg.channel_mult.size()) - 1; level >= 0; --level) {
      for (int64_t i = 0; i <= cfg.num_res_blocks; ++i) {
        const int64_t ich = input_block_chans.back();
        input_block_chans.pop_back();
        const std::string n = "output_blocks." + std::to_string(output_blocks.size());
        Sequential s;
        const int64_t out = mult_ch(cfg.channel_mult[level]);
        s.layers.push_back(std::make_unique<ResBlock>(P, n + ".0", ch + ich, time_embed_dim, cfg.dropout, out,
                                                      cfg.use_scale_shift_norm, false, false));
        ch = out;
        if (has_attn(ds))
          s.layers.push_back(std::make_unique<AttentionBlock>(P, n + "." + std::to_string(s.layers.size()), ch,
                                                              heads_up, cfg.num_head_channels,
                                                              cfg.use_new_attention_order));
        if (level && i == cfg.num_res_blocks) {
          const std::string un = n + "." + std::to_string(s.layers.size());
          if (cfg.resblock_updown)
            s.layers.push_back(std::make_unique<ResBlock>(P, un, ch, time_embed_dim, cfg.dropout, ch,
                                                          cfg.use_scale_shift_norm, true, false));
          else
            s.layers.push_back(std::make_unique<Resample>(P, un, ch, cfg.conv_resample, ch, /*up=*/true));
          ds /= 2;
        }
        output_blocks.push_back(std::move(s));
      }
    }
    out_norm = GroupNorm32(P, "out.0", ch);
    out_conv = Conv2d(P, "out.2", mult_ch(cfg.channel_mult[0]), cfg.out_channels, 3, 1, /*zero=*/true);
    collect_block_params();
    for (size_t i = 0; i < output_blocks.size(); ++i)
      collect(P.list, output_blocks[i], "output_blocks." + std::to_string(i) + ".", cfg.dropout);
  }
};

UNetModel::UNetModel(const UNetConfig& cfg, const at::Device& device) : impl_(std::make_unique<Impl>(cfg, device)) {}
UNetModel::~UNetModel() = default;

at::Tensor UNetModel::forward(const at::Tensor& x, const at::Tensor& t, const at::Tensor& y) const {
  const Impl& m = *impl_;
  m.check_input(x, "UNet");
  at::Tensor emb = m.embed_time(t, x);
  if (m.cfg.num_classes > 0) {
    DAUG_CHECK(y.defined() && y.dim() == 1 && y.size(0) == x.size(0),
               "the UNet is class-conditional (num_classes = ", m.cfg.num_classes, "): labels y must have shape [",
               x.size(0), "]", y.defined() ? std::string(", but got a tensor of another shape") : ", but got none");
    // Host labels are checked here for free; labels already on a device are the caller's to check (the ddpm
    // generator checks them once per call): reading them back would make every step wait for the device.
    if (y.is_cpu())
      DAUG_CHECK(int_range(y).within(0, m.cfg.num_classes - 1), "UNet labels must be in [0, ", m.cfg.num_classes - 1,
                 "]");
    at::Tensor yl = y.to(x.device(), at::kLong, /*non_blocking=*/true);
    emb = emb + at::embedding(m.label_emb, yl);
  } else {
    DAUG_CHECK(!y.defined(), "the UNet is unconditional (num_classes = 0), but labels y were given");
  }
  std::vector<at::Tensor> hs;
  at::Tensor h = x.to(m.P.compute).contiguous(m.P.format);  // guided-diffusion: h = x.type(self.dtype)
  const bool ckpt = m.P.checkpoint;
  for (const auto& b : m.input_blocks) {
    h = run_block(b, h, emb, m.P.training, ckpt);
    hs.push_back(h);
  }
  h = run_block(m.middle, h, emb, m.P.training, ckpt);
  for (const auto& b : m.output_blocks) {
    h = at::cat({h, hs.back()}, 1);
    hs.pop_back();
    h = run_block(b, h, emb, m.P.training, ckpt);
  }
  return m.out_conv(at::silu(m.out_norm(h.to(x.scalar_type())))).contiguous();
}

const UNetConfig& UNetModel::config() const { return impl_->cfg; }
NamedTensors UNetModel::named_parameters() const { return impl_->P.list; }
std::vector<at::Tensor> UNetModel::parameters() const { return impl_->P.tensors(); }
int64_t UNetModel::num_parameters() const { return impl_->P.numel(); }
void UNetModel::set_training(bool on) { impl_->P.training = on; }
void UNetModel::set_compute_dtype(at::ScalarType dtype) { impl_->P.set_compute(dtype, "UNet"); }
at::ScalarType UNetModel::compute_dtype() const { return impl_->P.compute; }
bool UNetModel::training() const { return impl_->P.training; }
void UNetModel::set_gradient_checkpointing(bool on) { impl_->P.checkpoint = on; }
bool UNetModel::gradient_checkpointing() const { return impl_->P.checkpoint; }
void UNetModel::set_memory_format(at::MemoryFormat f) { impl_->P.format = f; }
at::MemoryFormat UNetModel::memory_format() const { return impl_->P.format; }

// ---------------------------------------------------------------------------------------------------------

struct EncoderUNetModel::Impl : Trunk {
  GroupNorm32 out_norm;
  // attention pool (out.2)
  at::Tensor pos_emb;
  Conv1x1 qkv_proj, c_proj;
  int64_t pool_heads = 1;
  // adaptive pool (out.3)
  Conv2d adaptive_conv;

  Impl(const UNetConfig& c, const at::Device& device) : Trunk(c, device) {
    cfg.validate("EncoderUNet", true);
    build_encoder_half();
    out_norm = GroupNorm32(P, "out.0", ch);
    if (cfg.pool == "attention") {
      const int64_t spatial = cfg.image_size / ds;
      pos_emb = P.add("out.2.positional_embedding",
                      at::randn({ch, spatial * spatial + 1}, P.host) / std::sqrt(static_cast<double>(ch)));
      qkv_proj = Conv1x1(P, "out.2.qkv_proj", ch, 3 * ch);
      c_proj = Conv1x1(P, "out.2.c_proj", ch, cfg.out_channels);
      pool_heads = ch / cfg.num_head_channels;
    } else {
      adaptive_conv = Conv2d(P, "out.3", ch, cfg.out_channels, 1, 1, /*zero=*/true);
    }
    collect_block_params();
  }
};

EncoderUNetModel::EncoderUNetModel(const UNetConfig& cfg, const at::Device& device)
    : impl_(std::make_unique<Impl>(cfg, device)) {}
EncoderUNetModel::~EncoderUNetModel() = default;

at::Tensor EncoderUNetModel::forward(const at::Tensor& x, const at::Tensor& t) const {
  const Impl& m = *impl_;
  m.check_input(x, "EncoderUNet");
  at::Tensor emb = m.embed_time(t, x);
  at::Tensor h = x.to(m.P.compute).contiguous(m.P.format);
  for (const auto& b : m.input_blocks) h = run_block(b, h, emb, m.P.training, m.P.checkpoint);
  h = run_block(m.middle, h, emb, m.P.training, m.P.checkpoint);
  h = at::silu(m.out_norm(h.to(x.scalar_type()))).contiguous();
  if (m.cfg.pool == "adaptive") return m.adaptive_conv(h.mean({2, 3}, /*keepdim=*/true)).flatten(1);
  // AttentionPool2d: tokens [mean, HW...] + positional embedding, new-order QKV attention, output at token 0.
  const int64_t b = h.size(0), c = h.size(1);
  at::Tensor seq = h.reshape({b, c, -1});
  DAUG_CHECK(seq.size(2) + 1 == m.pos_emb.size(1), "EncoderUNet attention pool: the feature map has ",
             seq.size(2), " positions, but the positional embedding was built for ", m.pos_emb.size(1) - 1,
             " (image_size ", m.cfg.image_size, "); the input must be ", m.cfg.image_size, "x", m.cfg.image_size);
  seq = at::cat({seq.mean(-1, /*keepdim=*/true), seq}, -1);
  seq = seq + m.pos_emb.unsqueeze(0).to(seq.scalar_type());
  at::Tensor a = qkv_attention_new(m.qkv_proj(seq), m.pool_heads);
  return m.c_proj(a).select(2, 0);
}

const UNetConfig& EncoderUNetModel::config() const { return impl_->cfg; }
NamedTensors EncoderUNetModel::named_parameters() const { return impl_->P.list; }
std::vector<at::Tensor> EncoderUNetModel::parameters() const { return impl_->P.tensors(); }
int64_t EncoderUNetModel::num_parameters() const { return impl_->P.numel(); }
void EncoderUNetModel::set_training(bool on) { impl_->P.training = on; }
void EncoderUNetModel::set_compute_dtype(at::ScalarType dtype) { impl_->P.set_compute(dtype, "EncoderUNet"); }
bool EncoderUNetModel::training() const { return impl_->P.training; }
void EncoderUNetModel::set_gradient_checkpointing(bool on) { impl_->P.checkpoint = on; }
bool EncoderUNetModel::gradient_checkpointing() const { return impl_->P.checkpoint; }
void EncoderUNetModel::set_memory_format(at::MemoryFormat f) { impl_->P.format = f; }
at::MemoryFormat EncoderUNetModel::memory_format() const { return impl_->P.format; }

}  // namespace daug::adm
