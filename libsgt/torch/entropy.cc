// Entropy readings, the training-signal EMA, the probe, and window loading. See entropy.h.
#include "libsgt/torch/entropy.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "libsgt/core/token_file.h"

namespace sgt {

void EntropyAccumulator::Add(const EntropyCapture& c) {
  if (count_ == 0) {
    sum_.assign(c.passes.size(), {});
    for (size_t l = 0; l < c.passes.size(); ++l) {
      for (const torch::Tensor& t : c.passes[l]) sum_[l].push_back(t.clone());
    }
  } else {
    for (size_t l = 0; l < c.passes.size(); ++l) {
      for (size_t p = 0; p < c.passes[l].size(); ++p) sum_[l][p].add_(c.passes[l][p]);
    }
  }
  ++count_;
}

EntropyReading EntropyAccumulator::Mean(const LoopPlan& plan) const {
  EntropyReading r;
  r.passes.resize(sum_.size());
  r.pass_heads.resize(sum_.size());
  // One flat copy to the host instead of one per pass.
  std::vector<torch::Tensor> flat;
  for (const auto& layer : sum_) {
    for (const torch::Tensor& t : layer) flat.push_back(t.to(torch::kDouble).reshape({-1}));
  }
  if (flat.empty()) return r;
  torch::Tensor all = (torch::cat(flat) / static_cast<double>(count_)).cpu().contiguous();
  const double* v = all.data_ptr<double>();
  for (size_t l = 0; l < sum_.size(); ++l) {
    for (size_t p = 0; p < sum_[l].size(); ++p) {
      const int64_t n = sum_[l][p].numel();
      r.passes[l].emplace_back(v, v + n);
      v += n;
      if (p == 0) {
        r.pass_heads[l].emplace_back();
        for (int64_t i = 0; i < n; ++i) r.pass_heads[l].back().push_back(i);
      } else if (l < plan.size() && !plan[l].whole_block) {
        r.pass_heads[l].push_back(plan[l].head_ids);
      } else {
        r.pass_heads[l].push_back(r.pass_heads[l][0]);
      }
    }
  }
  return r;
}

EntropySnapshot GrowthSignal(const EntropyReading& r, const GrowthState& state,
                             LoopedHeadEntropy mode) {
  EntropySnapshot s;
  s.head.resize(r.passes.size());
  for (size_t l = 0; l < r.passes.size(); ++l) {
    s.head[l] = r.passes[l].at(0);
    const size_t last = r.passes[l].size() - 1;
    const LoopedLayer* looped = state.Find(static_cast<int64_t>(l));
    if (mode != LoopedHeadEntropy::kLastLoop || last == 0 || looped == nullptr) continue;
    // Only S_l: inside a fade window the loop also runs the unkept heads, which keep loop 0.
    const std::vector<int64_t>& kept = looped->heads;
    const std::vector<int64_t>& ids = r.pass_heads[l][last];
    for (size_t j = 0; j < ids.size(); ++j) {
      if (std::binary_search(kept.begin(), kept.end(), ids[j])) {
        s.head[l][ids[j]] = r.passes[l][last][j];
      }
    }
  }
  return s;
}

void EntropyEma::Update(const EntropySnapshot& s) {
  if (!value_.has_value()) {
    value_ = s;
    return;
  }
  for (size_t l = 0; l < s.head.size(); ++l) {
    for (size_t i = 0; i < s.head[l].size(); ++i) {
      double& e = value_->head[l][i];
      e = decay_ * e + (1.0 - decay_) * s.head[l][i];
    }
  }
}

std::string EntropyEma::ToJson() const {
  nlohmann::json j = nlohmann::json::object();
  if (value_.has_value()) j["head"] = value_->head;
  return j.dump();
}

bool EntropyEma::FromJson(const std::string& text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return false;
  value_.reset();
  if (!j.contains("head")) return true;
  try {
    EntropySnapshot s;
    s.head = j["head"].get<std::vector<std::vector<double>>>();
    value_ = std::move(s);
  } catch (const nlohmann::json::exception&) {
    return false;
  }
  return true;
}

EntropyReading MeasureProbe(Transformer& model, const torch::Tensor& windows, const LoopPlan& plan,
                            int64_t chunk) {
  torch::NoGradGuard no_grad;
  EntropyAccumulator acc;
  EntropyCapture capture;
  // Chunks are equal-sized when chunk divides P; a ragged last chunk is weighted by its size so
  // the result is the mean over sequences.
  const int64_t P = windows.size(0);
  const int64_t chunks = (P + chunk - 1) / chunk;
  for (int64_t b = 0; b < P; b += chunk) {
    const int64_t n = std::min(chunk, P - b);
    model->forward(windows.narrow(0, b, n), plan, &capture, /*want_logits=*/false);
    for (auto& layer : capture.passes) {
      for (torch::Tensor& t : layer)
        t.mul_(static_cast<double>(n * chunks) / static_cast<double>(P));
    }
    acc.Add(capture);
  }
  return acc.Mean(plan);
}

torch::Tensor LoadWindows(const TokenFile& file, const std::vector<int64_t>& starts,
                          int64_t window) {
  torch::Tensor out = torch::empty({static_cast<int64_t>(starts.size()), window}, torch::kLong);
  int64_t* dst = out.data_ptr<int64_t>();
  for (size_t i = 0; i < starts.size(); ++i) file.CopyTo(starts[i], window, dst + i * window);
  return out;
}

}  // namespace sgt
